/**
 * Credential ids (and U2F key handles) that carry their own private key, wrapped under a device secret, so
 * non-resident credentials need no storage (the approach of OpenSK's `encrypt_to_credential_id` and of
 * most U2F tokens).
 *
 *   id = VERSION(1) || nonce(12) || AES-256-GCM_K(payload) || tag(16)
 *   payload = alg(1) || flags(1) || secret(32) || [scopeTag(8)] || credBlob(0..32)
 *     alg:   1 = ES256, 2 = EdDSA
 *     flags: bit0 resident, bit1 hmac-secret enabled, bits 2-3 credProtect level (1..3), bit4 scopeTag present
 *     scopeTag = LEFT(SHA-256("keytunnel/credential-scope" || scope), 8) for credentials made in a scope
 *   associated data = "keytunnel/credential-id" || VERSION || rpIdHash(32)
 *
 * Binding rpIdHash (for U2F: the application parameter) into the AD makes an id useless for another RP. The
 * scope tag sits inside the authenticated ciphertext, so it cannot be altered, and the shared (unscoped) view
 * can still open — and use — every credential while a scoped view only accepts its own tag. Any id that does
 * not decrypt — another authenticator's, another RP's, tampered, truncated, or from before a reset (which
 * rotates K) — is simply "not ours" (null), never an error.
 */
import { aesGcmOpen, aesGcmSeal, AES_GCM_NONCE_LENGTH, AES_GCM_TAG_LENGTH, constantTimeEqual, COSE_ALG_EDDSA, COSE_ALG_ES256, PRIVATE_KEY_LENGTH, sha256, type CredentialAlg } from './crypto.ts';
import type { CredProtect } from './state.ts';

export const CREDENTIAL_ID_VERSION = 0x01;
/** Bound of credBlob carried inside a non-resident id (== getInfo maxCredBlobLength). */
export const MAX_CRED_BLOB_LENGTH = 32;
const PAYLOAD_FIXED = 2 + PRIVATE_KEY_LENGTH;
export const MIN_CREDENTIAL_ID_LENGTH = 1 + AES_GCM_NONCE_LENGTH + PAYLOAD_FIXED + AES_GCM_TAG_LENGTH;
export const SCOPE_TAG_LENGTH = 8;
export const MAX_CREDENTIAL_ID_LENGTH = MIN_CREDENTIAL_ID_LENGTH + SCOPE_TAG_LENGTH + MAX_CRED_BLOB_LENGTH;
const FLAG_RESIDENT = 1;
const FLAG_HMAC_SECRET = 2;
const FLAG_SCOPE = 16;
const SCOPE_LABEL = Buffer.from('keytunnel/credential-scope', 'utf8');

/** The 8-byte tag of a credential scope. */
export function scopeTag(scope: string): Uint8Array {
  return sha256(SCOPE_LABEL, Buffer.from(scope, 'utf8')).subarray(0, SCOPE_TAG_LENGTH);
}

/** Visibility rule: no scope in the request = the shared view (everything); else exactly the same tag. */
export function visibleInScope(cred: WrappedCredential, scope: string | undefined): boolean {
  if (scope === undefined) return true;
  return cred.scopeTag !== undefined && constantTimeEqual(cred.scopeTag, scopeTag(scope));
}

const AD_LABEL = Buffer.from('keytunnel/credential-id', 'utf8');

export interface WrappedCredential {
  readonly alg: CredentialAlg;
  readonly secret: Uint8Array;
  readonly resident: boolean;
  readonly hmacSecret: boolean;
  readonly credProtect: CredProtect;
  readonly credBlob?: Uint8Array;
  /** Tag of the scope the credential was made in (absent = shared). */
  readonly scopeTag?: Uint8Array;
}

function associatedData(rpIdHash: Uint8Array): Uint8Array {
  const ad = Buffer.allocUnsafe(AD_LABEL.length + 1 + 32);
  const o = AD_LABEL.copy(ad, 0);
  ad[o] = CREDENTIAL_ID_VERSION;
  ad.set(rpIdHash, o + 1);
  return ad;
}

export function wrapCredentialId(
  key: Uint8Array,
  nonce: Uint8Array,
  rpIdHash: Uint8Array,
  scope: string | undefined,
  cred: Omit<WrappedCredential, 'scopeTag'>,
): Uint8Array {
  const blob = cred.credBlob ?? new Uint8Array(0);
  if (blob.length > MAX_CRED_BLOB_LENGTH) throw new RangeError('credBlob too long');
  const tag = scope === undefined ? undefined : scopeTag(scope);
  const tagLength = tag === undefined ? 0 : SCOPE_TAG_LENGTH;
  const payload = new Uint8Array(PAYLOAD_FIXED + tagLength + blob.length);
  payload[0] = cred.alg === COSE_ALG_ES256 ? 1 : 2;
  payload[1] =
    (cred.resident ? FLAG_RESIDENT : 0) | (cred.hmacSecret ? FLAG_HMAC_SECRET : 0) | (cred.credProtect << 2) | (tag ? FLAG_SCOPE : 0);
  payload.set(cred.secret, 2);
  if (tag) payload.set(tag, PAYLOAD_FIXED);
  payload.set(blob, PAYLOAD_FIXED + tagLength);
  const sealed = aesGcmSeal(key, nonce, payload, associatedData(rpIdHash));
  payload.fill(0);
  const id = new Uint8Array(1 + AES_GCM_NONCE_LENGTH + sealed.length);
  id[0] = CREDENTIAL_ID_VERSION;
  id.set(nonce, 1);
  id.set(sealed, 1 + AES_GCM_NONCE_LENGTH);
  return id;
}

/** Open an id; null when it is not one of ours for this RP (callers then apply {@link visibleInScope}). */
export function unwrapCredentialId(key: Uint8Array, rpIdHash: Uint8Array, id: Uint8Array): WrappedCredential | null {
  if (id.length < MIN_CREDENTIAL_ID_LENGTH || id.length > MAX_CREDENTIAL_ID_LENGTH) return null;
  if (id[0] !== CREDENTIAL_ID_VERSION) return null;
  const nonce = id.subarray(1, 1 + AES_GCM_NONCE_LENGTH);
  const payload = aesGcmOpen(key, nonce, id.subarray(1 + AES_GCM_NONCE_LENGTH), associatedData(rpIdHash));
  if (payload === null || payload.length < PAYLOAD_FIXED) return null;
  const alg = payload[0] === 1 ? COSE_ALG_ES256 : payload[0] === 2 ? COSE_ALG_EDDSA : null;
  const flags = payload[1];
  const credProtect = (flags >> 2) & 3;
  if (alg === null || credProtect === 0 || (flags & 0xe0) !== 0) return null;
  const tagLength = flags & FLAG_SCOPE ? SCOPE_TAG_LENGTH : 0;
  if (payload.length < PAYLOAD_FIXED + tagLength) return null;
  const blobStart = PAYLOAD_FIXED + tagLength;
  return {
    alg,
    secret: payload.slice(2, PAYLOAD_FIXED),
    resident: (flags & FLAG_RESIDENT) !== 0,
    hmacSecret: (flags & FLAG_HMAC_SECRET) !== 0,
    credProtect: credProtect as CredProtect,
    scopeTag: tagLength ? payload.slice(PAYLOAD_FIXED, blobStart) : undefined,
    credBlob: payload.length > blobStart ? payload.slice(blobStart) : undefined,
  };
}
