/**
 * Authenticator data (WebAuthn §6.1): rpIdHash(32) || flags(1) || signCount(4, big-endian)
 *   || [attestedCredentialData: aaguid(16) || credIdLen(2) || credId || credentialPublicKey (COSE)]
 *   || [extensions (CBOR map)].
 */
export const FLAG_UP = 0x01;
export const FLAG_UV = 0x04;
export const FLAG_AT = 0x40;
export const FLAG_ED = 0x80;

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
  let len = 37;
  if (attested) len += 18 + attested.credentialId.length + attested.publicKey.length;
  if (extensions) len += extensions.length;
  const out = Buffer.allocUnsafe(len);
  out.set(rpIdHash, 0);
  out[32] = flags | (attested ? FLAG_AT : 0) | (extensions ? FLAG_ED : 0);
  out.writeUInt32BE(signCount >>> 0, 33);
  let o = 37;
  if (attested) {
    out.set(attested.aaguid, o);
    o += 16;
    out.writeUInt16BE(attested.credentialId.length, o);
    o += 2;
    out.set(attested.credentialId, o);
    o += attested.credentialId.length;
    out.set(attested.publicKey, o);
    o += attested.publicKey.length;
  }
  if (extensions) out.set(extensions, o);
  return out;
}
