/**
 * PIN/UV auth protocols one and two, authenticator side (CTAP 2.1 PS 2021-06-15 §6.5.6 and §6.5.7).
 *
 * Both use an ephemeral P-256 key-agreement key (regenerated at power-up, on regenerate(), and after a wrong
 * PIN), ECDH with the platform's key, and:
 *   protocol 1: KDF = SHA-256(Z); encrypt = AES-256-CBC with a zero IV; authenticate = LEFT(HMAC-SHA-256, 16).
 *   protocol 2: KDF = HKDF-SHA-256(salt = 32 zero bytes, info "CTAP2 HMAC key") || HKDF(..., "CTAP2 AES key");
 *               encrypt = random IV || AES-256-CBC; authenticate = HMAC-SHA-256 (32 bytes), keyed with the
 *               HMAC half of a shared secret, or with the whole pinUvAuthToken.
 */
import { createECDH, type ECDH } from 'node:crypto';
import type { CborMap, CborValue } from '../../../protocol/cbor.ts';
import { CTAP1_ERR_INVALID_PARAMETER } from '../../../protocol/ctap2.ts';
import { keyAgreementCoseKey, parseKeyAgreement } from './cose.ts';
import { aesCbcDecrypt, aesCbcEncrypt, constantTimeEqual, hkdfSha256, hmacSha256, sha256 } from './crypto.ts';
import { fail } from './errors.ts';
import type { Random } from './ports.ts';

export type PinProtocolVersion = 1 | 2;

export interface PinUvAuthProtocol {
  readonly version: PinProtocolVersion;
  /** Our key-agreement public key as a COSE_Key (getKeyAgreement). */
  getPublicKey(): CborMap;
  /** New key-agreement key pair (§6.5.6 regenerate). */
  regenerate(): void;
  /** ECDH + KDF with the platform's COSE key; CTAP1_ERR_INVALID_PARAMETER when it is not a valid P-256 point. */
  decapsulate(peerCoseKey: CborValue): Uint8Array;
  encrypt(key: Uint8Array, plaintext: Uint8Array): Uint8Array;
  /** null when the ciphertext length is not acceptable for the protocol. */
  decrypt(key: Uint8Array, ciphertext: Uint8Array): Uint8Array | null;
  authenticate(key: Uint8Array, message: Uint8Array): Uint8Array;
  verify(key: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean;
}

abstract class BasePinProtocol {
  protected ecdh: ECDH;
  constructor() {
    this.ecdh = createECDH('prime256v1');
    this.ecdh.generateKeys();
  }
  getPublicKey(): CborMap {
    return keyAgreementCoseKey(this.ecdh.getPublicKey());
  }
  regenerate(): void {
    this.ecdh = createECDH('prime256v1');
    this.ecdh.generateKeys();
  }
  protected ecdhZ(peerCoseKey: CborValue): Uint8Array {
    const point = parseKeyAgreement(peerCoseKey);
    try {
      // computeSecret validates that the point is on the curve and returns the x-coordinate Z.
      return this.ecdh.computeSecret(point);
    } catch {
      fail(CTAP1_ERR_INVALID_PARAMETER, 'invalid key agreement point');
    }
  }
}

const ZERO_IV = new Uint8Array(16);

export class PinProtocolOne extends BasePinProtocol implements PinUvAuthProtocol {
  readonly version = 1 as const;
  decapsulate(peerCoseKey: CborValue): Uint8Array {
    return sha256(this.ecdhZ(peerCoseKey));
  }
  encrypt(key: Uint8Array, plaintext: Uint8Array): Uint8Array {
    return aesCbcEncrypt(key, ZERO_IV, plaintext);
  }
  decrypt(key: Uint8Array, ciphertext: Uint8Array): Uint8Array | null {
    if (ciphertext.length === 0 || ciphertext.length % 16 !== 0) return null;
    return aesCbcDecrypt(key, ZERO_IV, ciphertext);
  }
  authenticate(key: Uint8Array, message: Uint8Array): Uint8Array {
    return hmacSha256(key, message).subarray(0, 16);
  }
  verify(key: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
    if (signature.length !== 16) return false;
    return constantTimeEqual(this.authenticate(key, message), signature);
  }
}

const HKDF_SALT = new Uint8Array(32);

export class PinProtocolTwo extends BasePinProtocol implements PinUvAuthProtocol {
  readonly version = 2 as const;
  constructor(private readonly random: Random) {
    super();
  }
  decapsulate(peerCoseKey: CborValue): Uint8Array {
    const z = this.ecdhZ(peerCoseKey);
    const out = new Uint8Array(64);
    out.set(hkdfSha256(z, HKDF_SALT, 'CTAP2 HMAC key', 32), 0);
    out.set(hkdfSha256(z, HKDF_SALT, 'CTAP2 AES key', 32), 32);
    return out;
  }
  /** The AES half of a 64-byte shared secret; a 32-byte key (a pinUvAuthToken) is used whole. */
  private aesKey(key: Uint8Array): Uint8Array {
    return key.length === 64 ? key.subarray(32) : key;
  }
  private hmacKey(key: Uint8Array): Uint8Array {
    return key.length === 64 ? key.subarray(0, 32) : key;
  }
  encrypt(key: Uint8Array, plaintext: Uint8Array): Uint8Array {
    const iv = this.random.bytes(16);
    const ct = aesCbcEncrypt(this.aesKey(key), iv, plaintext);
    const out = new Uint8Array(16 + ct.length);
    out.set(iv, 0);
    out.set(ct, 16);
    return out;
  }
  decrypt(key: Uint8Array, ciphertext: Uint8Array): Uint8Array | null {
    if (ciphertext.length < 32 || ciphertext.length % 16 !== 0) return null;
    return aesCbcDecrypt(this.aesKey(key), ciphertext.subarray(0, 16), ciphertext.subarray(16));
  }
  authenticate(key: Uint8Array, message: Uint8Array): Uint8Array {
    return hmacSha256(this.hmacKey(key), message);
  }
  verify(key: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
    if (signature.length !== 32) return false;
    return constantTimeEqual(this.authenticate(key, message), signature);
  }
}
