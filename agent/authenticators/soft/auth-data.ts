/**
 * Builds authenticator data (WebAuthn §6.1; layout and flags in protocol/auth-data.ts).
 */
import {
  AAGUID_LENGTH,
  AUTH_DATA_FLAGS_OFFSET,
  AUTH_DATA_MIN_LENGTH,
  AUTH_DATA_SIGN_COUNT_OFFSET,
  CREDENTIAL_ID_LENGTH_FIELD,
  FLAG_AT,
  FLAG_ED,
} from '../../../protocol/auth-data.ts';

export interface AttestedCredentialData {
  readonly aaguid: Uint8Array;
  readonly credentialId: Uint8Array;
  readonly publicKey: Uint8Array;
}

export function buildAuthData(
  rpIdHash: Uint8Array,
  flags: number,
  signCount: number,
  attested?: AttestedCredentialData,
  extensions?: Uint8Array,
): Uint8Array {
  let len = AUTH_DATA_MIN_LENGTH;
  if (attested) len += AAGUID_LENGTH + CREDENTIAL_ID_LENGTH_FIELD + attested.credentialId.length + attested.publicKey.length;
  if (extensions) len += extensions.length;
  const out = Buffer.allocUnsafe(len);
  out.set(rpIdHash, 0);
  out[AUTH_DATA_FLAGS_OFFSET] = flags | (attested ? FLAG_AT : 0) | (extensions ? FLAG_ED : 0);
  out.writeUInt32BE(signCount >>> 0, AUTH_DATA_SIGN_COUNT_OFFSET);
  let o = AUTH_DATA_MIN_LENGTH;
  if (attested) {
    out.set(attested.aaguid, o);
    o += AAGUID_LENGTH;
    out.writeUInt16BE(attested.credentialId.length, o);
    o += CREDENTIAL_ID_LENGTH_FIELD;
    out.set(attested.credentialId, o);
    o += attested.credentialId.length;
    out.set(attested.publicKey, o);
    o += attested.publicKey.length;
  }
  if (extensions) out.set(extensions, o);
  return out;
}
