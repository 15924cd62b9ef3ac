/**
 * Credential ids (and U2F key handles) that carry their own private key, wrapped under a device secret, so
 * non-resident credentials need no storage (the approach of OpenSK's `encrypt_to_credential_id` and of
 * most U2F tokens).
 *
 *   id = VERSION(1) || nonce(12) || AES-256-GCM_K(payload) || tag(16)
 *   payload = alg(1) || flags(1) || secret(32) || credBlob(0..32)
 *     alg:   1 = ES256, 2 = EdDSA
 *     flags: bit0 resident, bit1 hmac-secret enabled, bits 2-3 credProtect level (1..3)
 *   associated data = "keytunnel/credential-id" || VERSION || rpIdHash(32) || len(scope) || scope (UTF-8)
 *
 * Binding rpIdHash (for U2F: the application parameter) into the AD makes an id useless for another RP; binding
 * the credential scope makes an id created for one gateway's scope invisible in another. Any id that does not
 * decrypt — another authenticator's, another RP's, another scope's, tampered, truncated, or from before a
 * reset (which rotates K) — is simply "not ours" (null), never an error.
 */
import { aesGcmOpen, aesGcmSeal, AES_GCM_NONCE_LENGTH, AES_GCM_TAG_LENGTH, COSE_ALG_EDDSA, COSE_ALG_ES256, PRIVATE_KEY_LENGTH, type CredentialAlg } from './crypto.ts';
import type { CredProtect } from './state.ts';

export const CREDENTIAL_ID_VERSION = 0x01;
/** Bound of credBlob carried inside a non-resident id (== getInfo maxCredBlobLength). */
export const MAX_CRED_BLOB_LENGTH = 32;
const PAYLOAD_FIXED = 2 + PRIVATE_KEY_LENGTH;
export const MIN_CREDENTIAL_ID_LENGTH = 1 + AES_GCM_NONCE_LENGTH + PAYLOAD_FIXED + AES_GCM_TAG_LENGTH;
export const MAX_CREDENTIAL_ID_LENGTH = MIN_CREDENTIAL_ID_LENGTH + MAX_CRED_BLOB_LENGTH;

const AD_LABEL = Buffer.from('keytunnel/credential-id', 'utf8');

export interface WrappedCredential {
  readonly alg: CredentialAlg;
  readonly secret: Uint8Array;
  readonly resident: boolean;
  readonly hmacSecret: boolean;
  readonly credProtect: CredProtect;
  readonly credBlob?: Uint8Array;
}

function associatedData(rpIdHash: Uint8Array, scope: string | undefined): Uint8Array {
  const scopeBytes = Buffer.from(scope ?? '', 'utf8');
  const ad = Buffer.allocUnsafe(AD_LABEL.length + 1 + 32 + 2 + scopeBytes.length);
  let o = AD_LABEL.copy(ad, 0);
  ad[o++] = CREDENTIAL_ID_VERSION;
  ad.set(rpIdHash, o);
  o += 32;
  ad.writeUInt16BE(scopeBytes.length, o);
  o += 2;
  scopeBytes.copy(ad, o);
  return ad;
}

export function wrapCredentialId(
  key: Uint8Array,
  nonce: Uint8Array,
  rpIdHash: Uint8Array,
  scope: string | undefined,
  cred: WrappedCredential,
): Uint8Array {
  const blob = cred.credBlob ?? new Uint8Array(0);
  if (blob.length > MAX_CRED_BLOB_LENGTH) throw new RangeError('credBlob too long');
  const payload = new Uint8Array(PAYLOAD_FIXED + blob.length);
  payload[0] = cred.alg === COSE_ALG_ES256 ? 1 : 2;
  payload[1] = (cred.resident ? 1 : 0) | (cred.hmacSecret ? 2 : 0) | (cred.credProtect << 2);
  payload.set(cred.secret, 2);
  payload.set(blob, PAYLOAD_FIXED);
  const sealed = aesGcmSeal(key, nonce, payload, associatedData(rpIdHash, scope));
  payload.fill(0);
  const id = new Uint8Array(1 + AES_GCM_NONCE_LENGTH + sealed.length);
  id[0] = CREDENTIAL_ID_VERSION;
  id.set(nonce, 1);
  id.set(sealed, 1 + AES_GCM_NONCE_LENGTH);
  return id;
}

/** Open an id; null when it is not one of ours for this RP and scope. */
export function unwrapCredentialId(
  key: Uint8Array,
  rpIdHash: Uint8Array,
  scope: string | undefined,
  id: Uint8Array,
): WrappedCredential | null {
  if (id.length < MIN_CREDENTIAL_ID_LENGTH || id.length > MAX_CREDENTIAL_ID_LENGTH) return null;
  if (id[0] !== CREDENTIAL_ID_VERSION) return null;
  const nonce = id.subarray(1, 1 + AES_GCM_NONCE_LENGTH);
  const payload = aesGcmOpen(key, nonce, id.subarray(1 + AES_GCM_NONCE_LENGTH), associatedData(rpIdHash, scope));
  if (payload === null || payload.length < PAYLOAD_FIXED) return null;
  const alg = payload[0] === 1 ? COSE_ALG_ES256 : payload[0] === 2 ? COSE_ALG_EDDSA : null;
  const flags = payload[1];
  const credProtect = (flags >> 2) & 3;
  if (alg === null || credProtect === 0 || (flags & 0xf0) !== 0) return null;
  return {
    alg,
    secret: payload.slice(2, PAYLOAD_FIXED),
    resident: (flags & 1) !== 0,
    hmacSecret: (flags & 2) !== 0,
    credProtect: credProtect as CredProtect,
    credBlob: payload.length > PAYLOAD_FIXED ? payload.slice(PAYLOAD_FIXED) : undefined,
  };
}
