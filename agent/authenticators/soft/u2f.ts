/**
 * CTAP1/U2F over CTAPHID_MSG (FIDO U2F Raw Message Formats v1.2; CTAP 2.1 §10 and §11.2.9.1.1):
 * U2F_REGISTER, U2F_AUTHENTICATE (check-only 0x07, enforce-user-presence 0x03, and dont-enforce 0x08, which
 * is answered like 0x03: the soft authenticator never signs over U2F without a prompt) and U2F_VERSION, with
 * short and extended ISO 7816-4 APDU encodings.
 *
 * Key handles are credential ids in the same wrapped format as CTAP2 non-resident credentials, bound to the
 * application parameter (== rpIdHash), so — as §10 requires — a U2F-registered credential also works with
 * CTAP2 getAssertion when rpId hashes to the application parameter, and a CTAP2 ES256 credential works here.
 */
import { sign as nodeSign, type KeyObject } from 'node:crypto';
import type { RequestContext } from '../../../protocol/authenticator.ts';
import {
  SW_CLA_NOT_SUPPORTED,
  SW_CONDITIONS_NOT_SATISFIED,
  SW_INS_NOT_SUPPORTED,
  SW_NO_ERROR,
  SW_WRONG_DATA,
  SW_WRONG_LENGTH,
  U2F_AUTH_CHECK_ONLY,
  U2F_AUTH_DONT_ENFORCE_USER_PRESENCE,
  U2F_AUTH_ENFORCE_USER_PRESENCE,
  U2F_AUTHENTICATE,
  U2F_REGISTER,
  U2F_VERSION,
} from '../../../protocol/ctap2.ts';
import { visibleInScope, wrapCredentialId } from './credential-id.ts';
import { AES_GCM_NONCE_LENGTH, COSE_ALG_ES256, generateCredentialKey, signWith } from './crypto.ts';
import type { SoftDevice } from './device.ts';
import { CtapError } from './errors.ts';
import { CRED_PROTECT_UV_OPTIONAL, CRED_PROTECT_UV_REQUIRED } from './state.ts';

/** U2F_REGISTER response reserved byte (§4.3). */
const U2F_REGISTER_ID = 0x05;
const U2F_VERSION_STRING = 'U2F_V2';

export interface Apdu {
  readonly cla: number;
  readonly ins: number;
  readonly p1: number;
  readonly p2: number;
  readonly data: Uint8Array;
}

function sw(code: number, data?: Uint8Array): Uint8Array {
  const n = data?.length ?? 0;
  const out = new Uint8Array(n + 2);
  if (data) out.set(data, 0);
  out[n] = code >> 8;
  out[n + 1] = code & 0xff;
  return out;
}

/**
 * ISO 7816-4 command APDU: CLA INS P1 P2 [Lc data] [Le], short (Lc 1 byte) or extended (00 Lc1 Lc2, Le 2 bytes).
 * Returns null when the length fields are inconsistent (→ SW_WRONG_LENGTH).
 */
export function parseApdu(a: Uint8Array): Apdu | null {
  if (a.length < 4) return null;
  const head = { cla: a[0], ins: a[1], p1: a[2], p2: a[3] };
  const empty = new Uint8Array(0);
  if (a.length === 4) return { ...head, data: empty }; // case 1
  if (a.length === 5) return { ...head, data: empty }; // case 2S (Le only)
  if (a[4] !== 0) {
    // Short Lc.
    const lc = a[4];
    if (a.length === 5 + lc || a.length === 6 + lc) return { ...head, data: a.subarray(5, 5 + lc) };
    return null;
  }
  // Extended: 00 then 2-byte Lc (or 2-byte Le when nothing follows).
  if (a.length === 7) return { ...head, data: empty }; // case 2E (or Lc = 0 with no Le)
  if (a.length < 7) return null;
  const lc = (a[5] << 8) | a[6];
  // U2F raw message formats §3.1.3 encode "no data" as Lc = 0000 followed by Le (python-fido2, libfido2 do).
  if (a.length === 7 + lc || a.length === 9 + lc) return { ...head, data: a.subarray(7, 7 + lc) };
  return null;
}

async function presence(device: SoftDevice, ctx: RequestContext, action: 'u2fRegister' | 'u2fAuthenticate'): Promise<boolean> {
  try {
    await device.requirePresence(ctx, { action, origin: ctx.origin });
    return true;
  } catch (e) {
    if (e instanceof CtapError) return false;
    throw e;
  }
}

export async function u2f(device: SoftDevice, payload: Uint8Array, ctx: RequestContext, attestation: () => Promise<{ certificate: Uint8Array; key: KeyObject }>): Promise<Uint8Array> {
  const apdu = parseApdu(payload);
  if (apdu === null) return sw(SW_WRONG_LENGTH);
  if (apdu.cla !== 0) return sw(SW_CLA_NOT_SUPPORTED);
  const scope = ctx.origin?.credentialScope;
  switch (apdu.ins) {
    case U2F_VERSION:
      if (apdu.data.length !== 0) return sw(SW_WRONG_LENGTH);
      return sw(SW_NO_ERROR, Buffer.from(U2F_VERSION_STRING, 'ascii'));

    case U2F_REGISTER: {
      if (apdu.data.length !== 64) return sw(SW_WRONG_LENGTH);
      const challenge = apdu.data.subarray(0, 32);
      const application = apdu.data.subarray(32, 64);
      if (!(await presence(device, ctx, 'u2fRegister'))) return sw(SW_CONDITIONS_NOT_SATISFIED);
      const key = generateCredentialKey(COSE_ALG_ES256);
      const keyHandle = wrapCredentialId(device.wrapKey, device.random.bytes(AES_GCM_NONCE_LENGTH), application, scope, {
        alg: COSE_ALG_ES256,
        secret: key.secret,
        resident: false,
        hmacSecret: false,
        credProtect: CRED_PROTECT_UV_OPTIONAL,
      });
      const publicKey = Buffer.concat([Uint8Array.of(0x04), key.publicRaw]);
      const att = await attestation();
      const signature = nodeSign('sha256', Buffer.concat([Uint8Array.of(0x00), application, challenge, keyHandle, publicKey]), att.key);
      return sw(
        SW_NO_ERROR,
        Buffer.concat([Uint8Array.of(U2F_REGISTER_ID), publicKey, Uint8Array.of(keyHandle.length), keyHandle, att.certificate, signature]),
      );
    }

    case U2F_AUTHENTICATE: {
      if (apdu.data.length < 65) return sw(SW_WRONG_LENGTH);
      const challenge = apdu.data.subarray(0, 32);
      const application = apdu.data.subarray(32, 64);
      const khLength = apdu.data[64];
      if (apdu.data.length !== 65 + khLength) return sw(SW_WRONG_LENGTH);
      const keyHandle = apdu.data.subarray(65, 65 + khLength);
      const opened = device.openCredentialId(application, keyHandle);
      const w = opened !== null && visibleInScope(opened, scope) ? opened : null;
      const resident = w?.resident ? device.findResident(keyHandle) : undefined;
      // Not ours, deleted, not ECDSA, or needing UV (which U2F cannot provide): "wrong data" (§5.1).
      if (w === null || w.alg !== COSE_ALG_ES256 || w.credProtect === CRED_PROTECT_UV_REQUIRED || (w.resident && resident === undefined)) {
        return sw(SW_WRONG_DATA);
      }
      // Check-only (0x07) signs nothing: "the key handle is ours" is SW_CONDITIONS_NOT_SATISFIED (§5.1).
      if (apdu.p1 === U2F_AUTH_CHECK_ONLY) return sw(SW_CONDITIONS_NOT_SATISFIED);
      if (apdu.p1 !== U2F_AUTH_ENFORCE_USER_PRESENCE && apdu.p1 !== U2F_AUTH_DONT_ENFORCE_USER_PRESENCE) return sw(SW_WRONG_DATA);
      // "dont-enforce-user-presence-and-sign" (0x08) only allows signing without presence; the soft
      // authenticator never signs a U2F challenge without asking (no client needs 0x08 from a CTAP2
      // authenticator: a platform that wants a silent probe sends CTAP2 getAssertion with up=false). So 0x08 is
      // answered exactly like 0x03: a prompt, and the user-presence bit set in the signed data.
      if (!(await presence(device, ctx, 'u2fAuthenticate'))) return sw(SW_CONDITIONS_NOT_SATISFIED);
      const userPresent = true;
      let counter: number;
      if (resident !== undefined) {
        resident.signCount += 1;
        counter = resident.signCount;
        await device.save();
      } else {
        counter = await device.nextGlobalCounter();
      }
      const flagsAndCounter = Buffer.alloc(5);
      flagsAndCounter[0] = userPresent ? 0x01 : 0x00;
      flagsAndCounter.writeUInt32BE(counter >>> 0, 1);
      const key = device.credentialKey(keyHandle, w.alg, w.secret);
      const signature = signWith(key, Buffer.concat([application, flagsAndCounter, challenge]));
      return sw(SW_NO_ERROR, Buffer.concat([flagsAndCounter, signature]));
    }

    default:
      return sw(SW_INS_NOT_SUPPORTED);
  }
}
