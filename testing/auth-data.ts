/**
 * Authenticator data as a client reads it (WebAuthn L3 §6.1): rpIdHash 32 | flags 1 | signCount 4 |
 * [attested credential data: aaguid 16 | credentialIdLength 2 | credentialId | credentialPublicKey (COSE)] |
 * [extensions (CBOR map)]. The client needs the credential id, the public key (for the L3 JSON's publicKey and
 * publicKeyAlgorithm) and the extension outputs.
 */
import { createPublicKey } from 'node:crypto';
import { decode, isCborMap, type CborMap } from '../protocol/cbor.ts';
import { WebAuthnError } from './errors.ts';

/** §6.1 flags. */
export const FLAG_UP = 0x01;
export const FLAG_UV = 0x04;
export const FLAG_AT = 0x40;
export const FLAG_ED = 0x80;

const HEADER = 37;
const AAGUID_OFFSET = HEADER;

export interface ParsedAuthData {
  readonly flags: number;
  readonly signCount: number;
  readonly credentialId?: Uint8Array;
  readonly credentialPublicKey?: CborMap;
  /** Offset of the AAGUID in the bytes, when attested credential data is present. */
  readonly aaguidOffset?: number;
  readonly extensions?: CborMap;
}

function bad(what: string): never {
  throw new WebAuthnError(`authenticator data: ${what}`, 'UnknownError');
}

/** Decodes the CBOR item that starts at `offset`; answers it and where it ends (the first prefix that decodes). */
function decodeItemAt(bytes: Uint8Array, offset: number): { value: CborMap; end: number } {
  for (let end = offset + 1; end <= bytes.length; end++) {
    let value;
    try {
      value = decode(bytes.subarray(offset, end), { canonical: false });
    } catch {
      continue;
    }
    if (!isCborMap(value)) bad('credential public key is not a map');
    return { value, end };
  }
  bad('truncated credential public key');
}

export function parseAuthData(bytes: Uint8Array): ParsedAuthData {
  if (bytes.length < HEADER) bad('shorter than 37 bytes');
  const flags = bytes[32];
  const signCount = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).readUInt32BE(33);
  let offset = HEADER;
  let credentialId: Uint8Array | undefined;
  let credentialPublicKey: CborMap | undefined;
  let aaguidOffset: number | undefined;
  if (flags & FLAG_AT) {
    if (bytes.length < HEADER + 18) bad('truncated attested credential data');
    aaguidOffset = AAGUID_OFFSET;
    const length = (bytes[HEADER + 16] << 8) | bytes[HEADER + 17];
    offset = HEADER + 18;
    if (bytes.length < offset + length) bad('truncated credential id');
    credentialId = bytes.slice(offset, offset + length);
    offset += length;
    if (flags & FLAG_ED) {
      const item = decodeItemAt(bytes, offset);
      credentialPublicKey = item.value;
      offset = item.end;
    } else {
      const value = decode(bytes.subarray(offset), { canonical: false });
      if (!isCborMap(value)) bad('credential public key is not a map');
      credentialPublicKey = value;
      offset = bytes.length;
    }
  }
  let extensions: CborMap | undefined;
  if (flags & FLAG_ED) {
    const value = decode(bytes.subarray(offset), { canonical: false });
    if (!isCborMap(value)) bad('extensions are not a map');
    extensions = value;
  }
  return { flags, signCount, credentialId, credentialPublicKey, aaguidOffset, extensions };
}

/** A COSE_Key (RFC 9052 §7) as SubjectPublicKeyInfo DER: EC2 P-256 and OKP Ed25519, the soft authenticator's. */
export function coseToSpki(key: CborMap): Uint8Array | undefined {
  const kty = key.get(1);
  const crv = key.get(-1);
  const x = key.get(-2);
  const y = key.get(-3);
  const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64url');
  try {
    if (kty === 2 && crv === 1 && x instanceof Uint8Array && y instanceof Uint8Array) {
      return new Uint8Array(createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: b64(x), y: b64(y) }, format: 'jwk' }).export({ type: 'spki', format: 'der' }));
    }
    if (kty === 1 && crv === 6 && x instanceof Uint8Array) {
      return new Uint8Array(createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: b64(x) }, format: 'jwk' }).export({ type: 'spki', format: 'der' }));
    }
  } catch {
    return undefined;
  }
  return undefined;
}
