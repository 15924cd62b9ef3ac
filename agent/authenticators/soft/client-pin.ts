/**
 * authenticatorClientPIN (CTAP 2.1 PS 2021-06-15 §6.5): getPINRetries, getKeyAgreement, setPIN, changePIN, getPinToken
 * and getPinUvAuthTokenUsingPinWithPermissions, over PIN/UV auth protocols 1 and 2.
 *
 * PIN rules: stored as LEFT(SHA-256(pin), 16); 8 retries, decremented (and saved) before every comparison;
 * 3 consecutive mismatches → CTAP2_ERR_PIN_AUTH_BLOCKED until power cycle (restart); 0 retries →
 * CTAP2_ERR_PIN_BLOCKED (only authenticatorReset helps). New PINs: 64-byte zero-padded, at least minPINLength
 * code points, at most 63 bytes. There is no built-in UV, so the UV subcommands are invalid.
 */
import { encode, type CborValue } from '../../../protocol/cbor.ts';
import {
  CLIENT_PIN_CHANGE_PIN,
  CLIENT_PIN_GET_KEY_AGREEMENT,
  CLIENT_PIN_GET_PIN_RETRIES,
  CLIENT_PIN_GET_PIN_TOKEN,
  CLIENT_PIN_GET_PIN_UV_AUTH_TOKEN_USING_PIN_WITH_PERMISSIONS,
  CLIENT_PIN_PARAM_KEY_AGREEMENT,
  CLIENT_PIN_PARAM_NEW_PIN_ENC,
  CLIENT_PIN_PARAM_PERMISSIONS,
  CLIENT_PIN_PARAM_PIN_HASH_ENC,
  CLIENT_PIN_PARAM_PIN_UV_AUTH_PARAM,
  CLIENT_PIN_PARAM_PIN_UV_AUTH_PROTOCOL,
  CLIENT_PIN_PARAM_RP_ID,
  CLIENT_PIN_PARAM_SUBCOMMAND,
  CLIENT_PIN_RESP_KEY_AGREEMENT,
  CLIENT_PIN_RESP_PIN_RETRIES,
  CLIENT_PIN_RESP_PIN_UV_AUTH_TOKEN,
  CLIENT_PIN_RESP_POWER_CYCLE_STATE,
  CLIENT_PIN_SET_PIN,
  PERMISSION_CM,
  PERMISSION_GA,
  PERMISSION_MC,
} from '../../../protocol/client-pin.ts';
import {
  CTAP1_ERR_INVALID_PARAMETER,
  CTAP2_ERR_INVALID_SUBCOMMAND,
  CTAP2_ERR_PIN_AUTH_BLOCKED,
  CTAP2_ERR_PIN_AUTH_INVALID,
  CTAP2_ERR_PIN_BLOCKED,
  CTAP2_ERR_PIN_INVALID,
  CTAP2_ERR_PIN_NOT_SET,
  CTAP2_ERR_PIN_POLICY_VIOLATION,
  CTAP2_ERR_UNAUTHORIZED_PERMISSION,
} from '../../../protocol/ctap2.ts';
import { constantTimeEqual, sha256 } from './crypto.ts';
import type { SoftDevice } from './device.ts';
import { fail } from './errors.ts';
import type { Params } from './parse.ts';
import { selectProtocol } from './pin-auth.ts';
import type { PinUvAuthProtocol } from './pin-protocol.ts';
import { MAX_PIN_RETRIES } from './state.ts';

/** §6.5.5.6 / §6.5.5.7: 3 consecutive mismatches block PIN use until the next power cycle. */
export const MAX_CONSECUTIVE_PIN_FAILURES = 3;
/** Permissions we can grant (no bio enrollment, no large blobs, no authenticatorConfig). */
const SUPPORTED_PERMISSIONS = PERMISSION_MC | PERMISSION_GA | PERMISSION_CM;
/** §6.5.5.5: the padded PIN block is 64 bytes; the PIN itself at most 63 bytes. */
const PADDED_PIN_LENGTH = 64;

export async function clientPin(device: SoftDevice, params: Params): Promise<Uint8Array> {
  const sub = params.uint(CLIENT_PIN_PARAM_SUBCOMMAND);
  const protocolVersion = params.optUint(CLIENT_PIN_PARAM_PIN_UV_AUTH_PROTOCOL);
  switch (sub) {
    case CLIENT_PIN_GET_PIN_RETRIES:
      return encode(
        new Map<CborValue, CborValue>([
          [CLIENT_PIN_RESP_PIN_RETRIES, device.state.pinRetries],
          [CLIENT_PIN_RESP_POWER_CYCLE_STATE, device.consecutivePinFailures >= MAX_CONSECUTIVE_PIN_FAILURES],
        ]),
      );
    case CLIENT_PIN_GET_KEY_AGREEMENT: {
      const p = selectProtocol(device, protocolVersion);
      return encode(new Map<CborValue, CborValue>([[CLIENT_PIN_RESP_KEY_AGREEMENT, p.getPublicKey()]]));
    }
    case CLIENT_PIN_SET_PIN:
      return setPin(device, params, selectProtocol(device, protocolVersion));
    case CLIENT_PIN_CHANGE_PIN:
      return changePin(device, params, selectProtocol(device, protocolVersion));
    case CLIENT_PIN_GET_PIN_TOKEN:
    case CLIENT_PIN_GET_PIN_UV_AUTH_TOKEN_USING_PIN_WITH_PERMISSIONS:
      return getPinToken(device, params, selectProtocol(device, protocolVersion), sub);
    default:
      // Includes the UV subcommands (0x06, 0x07): we have no built-in user verification.
      fail(CTAP2_ERR_INVALID_SUBCOMMAND);
  }
}

function paddedPinLength(p: PinUvAuthProtocol): number {
  return p.version === 1 ? PADDED_PIN_LENGTH : PADDED_PIN_LENGTH + 16;
}
function pinHashEncLength(p: PinUvAuthProtocol): number {
  return p.version === 1 ? 16 : 32;
}

/** Validate a decrypted 64-byte padded PIN against the PIN policy; returns the PIN bytes and code points. */
function checkNewPin(device: SoftDevice, padded: Uint8Array): { pin: Uint8Array; codePoints: number } {
  if (padded.length !== PADDED_PIN_LENGTH) fail(CTAP1_ERR_INVALID_PARAMETER, 'padded PIN length');
  let end = padded.length;
  while (end > 0 && padded[end - 1] === 0) end--;
  // A PIN must leave at least one 0x00 of padding (max 63 bytes).
  if (end > PADDED_PIN_LENGTH - 1) fail(CTAP2_ERR_PIN_POLICY_VIOLATION);
  const pin = padded.subarray(0, end);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(pin);
  } catch {
    fail(CTAP2_ERR_PIN_POLICY_VIOLATION);
  }
  const codePoints = [...text].length;
  if (codePoints < device.state.minPinLength) fail(CTAP2_ERR_PIN_POLICY_VIOLATION);
  return { pin, codePoints };
}

function storePin(device: SoftDevice, pin: Uint8Array, codePoints: number): void {
  device.state.pin = { hash: sha256(pin).slice(0, 16), codePoints };
  device.state.pinRetries = MAX_PIN_RETRIES;
  device.state.forcePinChange = false;
}

async function setPin(device: SoftDevice, params: Params, p: PinUvAuthProtocol): Promise<Uint8Array> {
  const keyAgreement = params.raw(CLIENT_PIN_PARAM_KEY_AGREEMENT);
  const pinUvAuthParam = params.bytes(CLIENT_PIN_PARAM_PIN_UV_AUTH_PARAM);
  const newPinEnc = params.bytes(CLIENT_PIN_PARAM_NEW_PIN_ENC);
  // §6.5.5.5 setPIN: a PIN that is already set can only be changed.
  if (device.state.pin !== undefined) fail(CTAP2_ERR_PIN_AUTH_INVALID, 'PIN already set');
  const shared = p.decapsulate(keyAgreement);
  if (!p.verify(shared, newPinEnc, pinUvAuthParam)) fail(CTAP2_ERR_PIN_AUTH_INVALID);
  if (newPinEnc.length !== paddedPinLength(p)) fail(CTAP1_ERR_INVALID_PARAMETER, 'newPinEnc length');
  const padded = p.decrypt(shared, newPinEnc);
  if (padded === null) fail(CTAP2_ERR_PIN_AUTH_INVALID);
  const { pin, codePoints } = checkNewPin(device, padded);
  storePin(device, pin, codePoints);
  padded.fill(0);
  await device.save();
  device.token.reset();
  return new Uint8Array(0);
}

/**
 * The common "check the PIN hash" part of changePIN and getPinToken (§6.5.5.6 / §6.5.5.7.1): blocked checks,
 * decrement-and-save, compare, and on mismatch regenerate + count + the right error.
 */
async function checkPinHash(device: SoftDevice, p: PinUvAuthProtocol, shared: Uint8Array, pinHashEnc: Uint8Array): Promise<void> {
  const pinRecord = device.state.pin;
  if (pinRecord === undefined) fail(CTAP2_ERR_PIN_NOT_SET);
  if (pinHashEnc.length !== pinHashEncLength(p)) fail(CTAP1_ERR_INVALID_PARAMETER, 'pinHashEnc length');
  device.state.pinRetries -= 1;
  await device.save();
  const pinHash = p.decrypt(shared, pinHashEnc);
  if (pinHash === null || !constantTimeEqual(pinHash.subarray(0, 16), pinRecord.hash)) {
    p.regenerate();
    device.consecutivePinFailures += 1;
    if (device.state.pinRetries === 0) fail(CTAP2_ERR_PIN_BLOCKED);
    if (device.consecutivePinFailures >= MAX_CONSECUTIVE_PIN_FAILURES) fail(CTAP2_ERR_PIN_AUTH_BLOCKED);
    fail(CTAP2_ERR_PIN_INVALID);
  }
  device.state.pinRetries = MAX_PIN_RETRIES;
  device.consecutivePinFailures = 0;
}

function checkNotBlocked(device: SoftDevice): void {
  if (device.state.pin === undefined) fail(CTAP2_ERR_PIN_NOT_SET);
  if (device.state.pinRetries === 0) fail(CTAP2_ERR_PIN_BLOCKED);
  if (device.consecutivePinFailures >= MAX_CONSECUTIVE_PIN_FAILURES) fail(CTAP2_ERR_PIN_AUTH_BLOCKED);
}

async function changePin(device: SoftDevice, params: Params, p: PinUvAuthProtocol): Promise<Uint8Array> {
  const keyAgreement = params.raw(CLIENT_PIN_PARAM_KEY_AGREEMENT);
  const pinUvAuthParam = params.bytes(CLIENT_PIN_PARAM_PIN_UV_AUTH_PARAM);
  const newPinEnc = params.bytes(CLIENT_PIN_PARAM_NEW_PIN_ENC);
  const pinHashEnc = params.bytes(CLIENT_PIN_PARAM_PIN_HASH_ENC);
  checkNotBlocked(device);
  const shared = p.decapsulate(keyAgreement);
  if (!p.verify(shared, Buffer.concat([newPinEnc, pinHashEnc]), pinUvAuthParam)) fail(CTAP2_ERR_PIN_AUTH_INVALID);
  if (newPinEnc.length !== paddedPinLength(p)) fail(CTAP1_ERR_INVALID_PARAMETER, 'newPinEnc length');
  await checkPinHash(device, p, shared, pinHashEnc);
  const padded = p.decrypt(shared, newPinEnc);
  if (padded === null) fail(CTAP2_ERR_PIN_AUTH_INVALID);
  let pinChecked: { pin: Uint8Array; codePoints: number };
  try {
    pinChecked = checkNewPin(device, padded);
  } catch (e) {
    // The old PIN was right: the retry counter reset must still be persisted.
    await device.save();
    throw e;
  }
  storePin(device, pinChecked.pin, pinChecked.codePoints);
  padded.fill(0);
  await device.save();
  device.token.reset();
  return new Uint8Array(0);
}

async function getPinToken(device: SoftDevice, params: Params, p: PinUvAuthProtocol, sub: number): Promise<Uint8Array> {
  const keyAgreement = params.raw(CLIENT_PIN_PARAM_KEY_AGREEMENT);
  const pinHashEnc = params.bytes(CLIENT_PIN_PARAM_PIN_HASH_ENC);
  let permissions: number;
  let rpId: string | undefined;
  if (sub === CLIENT_PIN_GET_PIN_TOKEN) {
    // §6.5.5.7.1: getPinToken carries no permissions; mc and ga are implied (CTAP 2.0 compatibility).
    if (params.has(CLIENT_PIN_PARAM_PERMISSIONS) || params.has(CLIENT_PIN_PARAM_RP_ID)) fail(CTAP1_ERR_INVALID_PARAMETER);
    permissions = PERMISSION_MC | PERMISSION_GA;
  } else {
    permissions = params.uint(CLIENT_PIN_PARAM_PERMISSIONS);
    rpId = params.optText(CLIENT_PIN_PARAM_RP_ID, 255);
    if (permissions === 0) fail(CTAP1_ERR_INVALID_PARAMETER, 'no permissions');
    if ((permissions & ~SUPPORTED_PERMISSIONS) !== 0) fail(CTAP2_ERR_UNAUTHORIZED_PERMISSION);
  }
  checkNotBlocked(device);
  const shared = p.decapsulate(keyAgreement);
  await checkPinHash(device, p, shared, pinHashEnc);
  await device.save();
  // §7.4: a PIN that must be changed first does not unlock anything.
  if (device.state.forcePinChange) fail(CTAP2_ERR_PIN_POLICY_VIOLATION);
  device.token.reset();
  device.token.beginUsing(false, device.clock.now(), permissions, rpId, sub === CLIENT_PIN_GET_PIN_TOKEN);
  return encode(new Map<CborValue, CborValue>([[CLIENT_PIN_RESP_PIN_UV_AUTH_TOKEN, p.encrypt(shared, device.token.value())]]));
}
