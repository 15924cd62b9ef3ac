/**
 * COSE_Key structures (RFC 9052 §7, RFC 9053; CTAP 2.1 PS 2021-06-15 §6.5.6 for the key-agreement key):
 *   - credential public keys in attestedCredentialData: EC2/P-256/ES256 and OKP/Ed25519/EdDSA;
 *   - the PIN/UV auth protocol key-agreement key (EC2, P-256, alg -25), both ours and the platform's.
 */
import type { CborMap, CborValue } from '../../../protocol/cbor.ts';
import { encode } from '../../../protocol/cbor.ts';
import {
  CTAP1_ERR_INVALID_PARAMETER,
  CTAP2_ERR_CBOR_UNEXPECTED_TYPE,
  CTAP2_ERR_MISSING_PARAMETER,
} from '../../../protocol/ctap2.ts';
import { COSE_ALG_ECDH_ES_HKDF_256, COSE_ALG_ES256, type CredentialKey } from './crypto.ts';
import { fail } from './errors.ts';

// RFC 9052 §7.1 / RFC 9053 §7: COSE_Key labels and values.
export const COSE_KEY_KTY = 1;
export const COSE_KEY_ALG = 3;
export const COSE_KEY_CRV = -1;
export const COSE_KEY_X = -2;
export const COSE_KEY_Y = -3;
export const COSE_KTY_OKP = 1;
export const COSE_KTY_EC2 = 2;
export const COSE_CRV_P256 = 1;
export const COSE_CRV_ED25519 = 6;

/**
 * An ES256 COSE_Key in CTAP2 canonical CBOR is a fixed byte string around x and y: map(5) {1: 2, 3: -7, -1: 1,
 * -2: bstr(32) x, -3: bstr(32) y} — keys in canonical order 0x01 < 0x03 < 0x20 < 0x21 < 0x22 (CTAP 2.1 §8.2).
 * makeCredential writes it from this template instead of building and encoding a map every time;
 * test/agent/soft/cose.test.ts checks it against the encoder.
 */
const ES256_COSE_HEAD = Uint8Array.of(0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21, 0x58, 0x20);
const ES256_COSE_Y = Uint8Array.of(0x22, 0x58, 0x20);
export const ES256_COSE_KEY_LENGTH = ES256_COSE_HEAD.length + 32 + ES256_COSE_Y.length + 32;

/** The COSE_Key of a credential's public key, CBOR-encoded (as it appears in attestedCredentialData). */
export function encodeCredentialPublicKey(key: CredentialKey): Uint8Array {
  if (key.alg !== COSE_ALG_ES256) return encode(credentialPublicKeyMap(key));
  const out = new Uint8Array(ES256_COSE_KEY_LENGTH);
  out.set(ES256_COSE_HEAD, 0);
  out.set(key.publicRaw.subarray(0, 32), ES256_COSE_HEAD.length);
  out.set(ES256_COSE_Y, ES256_COSE_HEAD.length + 32);
  out.set(key.publicRaw.subarray(32, 64), ES256_COSE_HEAD.length + 32 + ES256_COSE_Y.length);
  return out;
}

export function credentialPublicKeyMap(key: CredentialKey): CborMap {
  if (key.alg === COSE_ALG_ES256) {
    return new Map<CborValue, CborValue>([
      [COSE_KEY_KTY, COSE_KTY_EC2],
      [COSE_KEY_ALG, COSE_ALG_ES256],
      [COSE_KEY_CRV, COSE_CRV_P256],
      [COSE_KEY_X, key.publicRaw.subarray(0, 32)],
      [COSE_KEY_Y, key.publicRaw.subarray(32, 64)],
    ]);
  }
  return new Map<CborValue, CborValue>([
    [COSE_KEY_KTY, COSE_KTY_OKP],
    [COSE_KEY_ALG, key.alg],
    [COSE_KEY_CRV, COSE_CRV_ED25519],
    [COSE_KEY_X, key.publicRaw],
  ]);
}

/** Our key-agreement public key as a COSE_Key (CTAP 2.1 §6.5.6 getPublicKey). `point` = 0x04 || x || y. */
export function keyAgreementCoseKey(point: Uint8Array): CborMap {
  return new Map<CborValue, CborValue>([
    [COSE_KEY_KTY, COSE_KTY_EC2],
    [COSE_KEY_ALG, COSE_ALG_ECDH_ES_HKDF_256],
    [COSE_KEY_CRV, COSE_CRV_P256],
    [COSE_KEY_X, point.subarray(1, 33)],
    [COSE_KEY_Y, point.subarray(33, 65)],
  ]);
}

/**
 * The platform's key-agreement COSE_Key → uncompressed point 0x04 || x || y. Structural errors map like every
 * other parameter (missing → MISSING_PARAMETER, wrong type → CBOR_UNEXPECTED_TYPE); a key that is not an
 * EC2/P-256 key → CTAP1_ERR_INVALID_PARAMETER (§6.5.6 decapsulate: "If ... fails, return error").
 * Whether the point lies on the curve is checked by the ECDH itself.
 */
export function parseKeyAgreement(value: CborValue): Uint8Array {
  if (!(value instanceof Map)) fail(CTAP2_ERR_CBOR_UNEXPECTED_TYPE, 'keyAgreement not a map');
  const get = (k: number): CborValue => {
    const v = value.get(k);
    if (v === undefined) fail(CTAP2_ERR_MISSING_PARAMETER, 'keyAgreement member missing');
    return v;
  };
  const kty = get(COSE_KEY_KTY);
  const crv = get(COSE_KEY_CRV);
  const x = get(COSE_KEY_X);
  const y = get(COSE_KEY_Y);
  if (typeof kty !== 'number' || typeof crv !== 'number') fail(CTAP2_ERR_CBOR_UNEXPECTED_TYPE);
  if (!(x instanceof Uint8Array) || !(y instanceof Uint8Array)) fail(CTAP2_ERR_CBOR_UNEXPECTED_TYPE);
  if (kty !== COSE_KTY_EC2 || crv !== COSE_CRV_P256 || x.length !== 32 || y.length !== 32) {
    fail(CTAP1_ERR_INVALID_PARAMETER, 'keyAgreement is not a P-256 key');
  }
  const point = new Uint8Array(65);
  point[0] = 0x04;
  point.set(x, 1);
  point.set(y, 33);
  return point;
}
