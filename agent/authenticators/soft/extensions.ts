/**
 * Authenticator extensions (CTAP 2.1 PS 2021-06-15 §12): credProtect (§12.1), credBlob (§12.2), minPinLength
 * (§12.4) and hmac-secret (§12.5). Inputs are parsed strictly (wrong types → CTAP2_ERR_CBOR_UNEXPECTED_TYPE);
 * unknown extensions are ignored, as §6.1.2 step 15 requires. Outputs are CBOR maps placed in authenticator data.
 */
import { encode, type CborValue } from '../../../protocol/cbor.ts';
import {
  CTAP1_ERR_INVALID_PARAMETER,
  CTAP2_ERR_PIN_AUTH_INVALID,
} from '../../../protocol/ctap2.ts';
import { hmacSha256 } from './crypto.ts';
import { MAX_CRED_BLOB_LENGTH } from './credential-id.ts';
import type { SoftDevice } from './device.ts';
import { fail } from './errors.ts';
import type { Params } from './parse.ts';
import { selectProtocol } from './pin-auth.ts';
import type { PinUvAuthProtocol } from './pin-protocol.ts';
import type { CredProtect } from './state.ts';

export const EXT_CRED_PROTECT = 'credProtect';
export const EXT_CRED_BLOB = 'credBlob';
export const EXT_HMAC_SECRET = 'hmac-secret';
export const EXT_MIN_PIN_LENGTH = 'minPinLength';
export const SUPPORTED_EXTENSIONS = [EXT_CRED_PROTECT, EXT_CRED_BLOB, EXT_HMAC_SECRET, EXT_MIN_PIN_LENGTH] as const;

export interface MakeCredentialExtensions {
  readonly credProtect?: CredProtect;
  readonly credBlob?: Uint8Array;
  readonly hmacSecret: boolean;
  readonly minPinLength: boolean;
}

export function parseMakeCredentialExtensions(ext: Params | undefined): MakeCredentialExtensions {
  if (ext === undefined) return { hmacSecret: false, minPinLength: false };
  const level = ext.optUint(EXT_CRED_PROTECT);
  if (level !== undefined && (level < 1 || level > 3)) fail(CTAP1_ERR_INVALID_PARAMETER, 'credProtect level');
  return {
    credProtect: level as CredProtect | undefined,
    credBlob: ext.optBytes(EXT_CRED_BLOB),
    hmacSecret: ext.optBool(EXT_HMAC_SECRET) ?? false,
    minPinLength: ext.optBool(EXT_MIN_PIN_LENGTH) ?? false,
  };
}

/** Whether a credBlob request can be honoured (§12.2: longer than maxCredBlobLength → not stored, output false). */
export function acceptedCredBlob(ext: MakeCredentialExtensions): Uint8Array | undefined {
  return ext.credBlob !== undefined && ext.credBlob.length <= MAX_CRED_BLOB_LENGTH ? ext.credBlob : undefined;
}

/** makeCredential extension outputs, encoded; undefined when there are none (no ED flag). */
export function makeCredentialExtensionOutputs(
  device: SoftDevice,
  rpId: string,
  ext: MakeCredentialExtensions,
  credProtect: CredProtect,
): Uint8Array | undefined {
  const out = new Map<CborValue, CborValue>();
  if (ext.credProtect !== undefined) out.set(EXT_CRED_PROTECT, credProtect);
  if (ext.credBlob !== undefined) out.set(EXT_CRED_BLOB, acceptedCredBlob(ext) !== undefined);
  if (ext.hmacSecret) out.set(EXT_HMAC_SECRET, true);
  // §12.4: only RP IDs on the authenticator's list may learn the minimum PIN length.
  if (ext.minPinLength && device.config.minPinLengthRpIds.includes(rpId)) out.set(EXT_MIN_PIN_LENGTH, device.state.minPinLength);
  return out.size > 0 ? encode(out) : undefined;
}

/** A validated hmac-secret getAssertion input (§12.5): the shared secret and the decrypted salts. */
export interface HmacSecretInput {
  readonly protocol: PinUvAuthProtocol;
  readonly shared: Uint8Array;
  readonly salt1: Uint8Array;
  readonly salt2?: Uint8Array;
}

export interface GetAssertionExtensions {
  readonly hmacSecret?: Params;
  readonly credBlob: boolean;
}

export function parseGetAssertionExtensions(ext: Params | undefined): GetAssertionExtensions {
  if (ext === undefined) return { credBlob: false };
  return { hmacSecret: ext.optSub(EXT_HMAC_SECRET), credBlob: ext.optBool(EXT_CRED_BLOB) ?? false };
}

/**
 * §12.5 hmac-secret authenticator processing, up to the salts: keyAgreement(1), saltEnc(2), saltAuth(3),
 * pinUvAuthProtocol(4, default 1). A wrong saltAuth → CTAP2_ERR_PIN_AUTH_INVALID.
 */
export function prepareHmacSecret(device: SoftDevice, input: Params): HmacSecretInput {
  const keyAgreement = input.raw(1);
  const saltEnc = input.bytes(2);
  const saltAuth = input.bytes(3);
  const protocol = selectProtocol(device, input.optUint(4) ?? 1);
  const shared = protocol.decapsulate(keyAgreement);
  if (!protocol.verify(shared, saltEnc, saltAuth)) fail(CTAP2_ERR_PIN_AUTH_INVALID, 'saltAuth');
  // §12.5: "If the decryption fails, or if the result is not 32 or 64 bytes long, return CTAP1_ERR_INVALID_PARAMETER."
  const salts = protocol.decrypt(shared, saltEnc);
  if (salts === null || (salts.length !== 32 && salts.length !== 64)) fail(CTAP1_ERR_INVALID_PARAMETER, 'salt length');
  return {
    protocol,
    shared,
    salt1: salts.subarray(0, 32),
    salt2: salts.length === 64 ? salts.subarray(32, 64) : undefined,
  };
}

/** encrypt(shared, HMAC(CredRandom, salt1) [|| HMAC(CredRandom, salt2)]). */
export function hmacSecretOutput(input: HmacSecretInput, credRandom: Uint8Array): Uint8Array {
  const o1 = hmacSha256(credRandom, input.salt1);
  const plain = input.salt2 ? Buffer.concat([o1, hmacSha256(credRandom, input.salt2)]) : o1;
  return input.protocol.encrypt(input.shared, plain);
}
