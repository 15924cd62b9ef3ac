/**
 * Credential private keys in the encoding the Credential Exchange Format requires for a passkey's `key` member:
 * a PKCS#8 (RFC 5958) ASN.1 DER byte string, base64url-encoded in the JSON. For the two algorithms the soft
 * authenticator uses:
 *   - ES256: an EC private key (RFC 5915 ECPrivateKey) with algorithm id-ecPublicKey and namedCurve prime256v1
 *     (secp256r1, RFC 5480 §2.1.1);
 *   - EdDSA: an Ed25519 key (RFC 8410 §7: algorithm id-Ed25519, the 32-byte seed as CurvePrivateKey).
 * Encoding and parsing go through node:crypto (OpenSSL), so a malformed DER is refused by a real ASN.1 parser.
 */
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { COSE_ALG_EDDSA, COSE_ALG_ES256, importCredentialKey, PRIVATE_KEY_LENGTH, type CredentialAlg } from '../../agent/authenticators/soft/crypto.ts';
import { KeytunnelError } from '../../protocol/errors.ts';

/** A PKCS#8 key is a few dozen to ~150 bytes for these curves; anything larger is refused before parsing. */
export const MAX_PKCS8_LENGTH = 512;

export class KeyFormatError extends KeytunnelError {
  override readonly name = 'KeyFormatError';
  readonly code = 'KEY_FORMAT';
}

export function encodePkcs8(alg: CredentialAlg, secret: Uint8Array): Uint8Array {
  const der = importCredentialKey(alg, secret).privateKey.export({ format: 'der', type: 'pkcs8' });
  return new Uint8Array(der);
}

function fixed32(b: Buffer): Uint8Array {
  if (b.length > PRIVATE_KEY_LENGTH) throw new KeyFormatError('private scalar longer than 32 bytes');
  const out = new Uint8Array(PRIVATE_KEY_LENGTH);
  out.set(b, PRIVATE_KEY_LENGTH - b.length);
  return out;
}

/** The algorithm and 32-byte secret (P-256 scalar or Ed25519 seed) of a PKCS#8 DER key; refuses every other kind. */
export function decodePkcs8(der: Uint8Array): { alg: CredentialAlg; secret: Uint8Array } {
  if (der.length === 0 || der.length > MAX_PKCS8_LENGTH) throw new KeyFormatError(`key of ${der.length} bytes (expected a PKCS#8 key of at most ${MAX_PKCS8_LENGTH})`);
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: Buffer.from(der), format: 'der', type: 'pkcs8' });
  } catch {
    throw new KeyFormatError('key is not a PKCS#8 DER private key');
  }
  const type = key.asymmetricKeyType;
  if (type === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve !== 'prime256v1') throw new KeyFormatError(`EC key on curve ${curve ?? 'unknown'}: only P-256 (ES256) is supported`);
    const d = key.export({ format: 'jwk' }).d;
    if (d === undefined) throw new KeyFormatError('EC key without private scalar');
    return { alg: COSE_ALG_ES256, secret: fixed32(Buffer.from(d, 'base64url')) };
  }
  if (type === 'ed25519') {
    const d = key.export({ format: 'jwk' }).d;
    if (d === undefined) throw new KeyFormatError('Ed25519 key without seed');
    const seed = Buffer.from(d, 'base64url');
    if (seed.length !== PRIVATE_KEY_LENGTH) throw new KeyFormatError('Ed25519 seed is not 32 bytes');
    return { alg: COSE_ALG_EDDSA, secret: new Uint8Array(seed) };
  }
  throw new KeyFormatError(`${type ?? 'unknown'} key: only ECDSA P-256 (ES256) and Ed25519 (EdDSA) passkeys are supported`);
}
