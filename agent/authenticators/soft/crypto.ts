/**
 * Cryptographic primitives of the soft authenticator, all on node:crypto (OpenSSL) for speed:
 *   - credential key pairs: ES256 (ECDSA P-256 / SHA-256, COSE alg -7) and EdDSA (Ed25519, COSE alg -8);
 *   - hashes/MACs/KDFs used by CTAP (SHA-256, HMAC-SHA-256, HKDF-SHA-256 for PIN/UV auth protocol 2);
 *   - AES-256-GCM for credential-id wrapping, AES-256-CBC (no padding) for the PIN/UV auth protocols (§6.5.6/§6.5.7).
 *
 * Private key material is only ever held as bytes inside state/credential ids and as KeyObjects here; it is
 * never logged or put into an error message.
 */
import {
  createCipheriv,
  createECDH,
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  generateKeyPairSync,
  hkdfSync,
  sign as nodeSign,
  timingSafeEqual,
  type KeyObject,
} from 'node:crypto';

/** COSE algorithm identifiers (RFC 9053 / IANA COSE registry) the authenticator supports for credentials. */
export const COSE_ALG_ES256 = -7;
export const COSE_ALG_EDDSA = -8;
/** COSE alg of the PIN/UV auth protocol key-agreement key (CTAP 2.1 PS 2021-06-15 §6.5.6: "ECDH-ES+HKDF-256"). */
export const COSE_ALG_ECDH_ES_HKDF_256 = -25;
export type CredentialAlg = typeof COSE_ALG_ES256 | typeof COSE_ALG_EDDSA;

export function isCredentialAlg(alg: number): alg is CredentialAlg {
  return alg === COSE_ALG_ES256 || alg === COSE_ALG_EDDSA;
}

export function sha256(...parts: Uint8Array[]): Uint8Array {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
}

const RP_ID_HASH_CACHE_SIZE = 256;
const rpIdHashes = new Map<string, Uint8Array>();

/**
 * rpIdHash = SHA-256(UTF-8 rpId) (WebAuthn §6.1), remembered for the last RP IDs seen: every makeCredential and
 * getAssertion needs it and an RP is asked again and again. The result is shared: callers must not modify it.
 */
export function rpIdHashOf(rpId: string): Uint8Array {
  let h = rpIdHashes.get(rpId);
  if (h === undefined) {
    h = sha256(Buffer.from(rpId, 'utf8'));
    if (rpIdHashes.size >= RP_ID_HASH_CACHE_SIZE) rpIdHashes.delete(rpIdHashes.keys().next().value as string);
    rpIdHashes.set(rpId, h);
  }
  return h;
}

export function hmacSha256(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const h = createHmac('sha256', key);
  for (const p of parts) h.update(p);
  return h.digest();
}

export function hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: string, length: number): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', ikm, salt, Buffer.from(info, 'utf8'), length));
}

/** Constant-time equality (false for different lengths). */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

export const AES_GCM_NONCE_LENGTH = 12;
export const AES_GCM_TAG_LENGTH = 16;

/** AES-256-GCM seal: ciphertext || tag. */
export function aesGcmSeal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Uint8Array {
  const c = createCipheriv('aes-256-gcm', key, nonce);
  c.setAAD(aad);
  const head = c.update(plaintext);
  const tail = c.final();
  return Buffer.concat([head, tail, c.getAuthTag()]);
}

/** AES-256-GCM open of ciphertext || tag; null when authentication fails (wrong key, AD, or tampering). */
export function aesGcmOpen(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Uint8Array | null {
  if (sealed.length < AES_GCM_TAG_LENGTH) return null;
  const d = createDecipheriv('aes-256-gcm', key, nonce);
  d.setAAD(aad);
  d.setAuthTag(sealed.subarray(sealed.length - AES_GCM_TAG_LENGTH));
  try {
    const head = d.update(sealed.subarray(0, sealed.length - AES_GCM_TAG_LENGTH));
    const tail = d.final();
    return tail.length === 0 ? head : Buffer.concat([head, tail]);
  } catch {
    return null;
  }
}

/** AES-256-CBC without padding; `data.length` must be a multiple of 16 (callers check). */
export function aesCbcEncrypt(key: Uint8Array, iv: Uint8Array, data: Uint8Array): Uint8Array {
  const c = createCipheriv('aes-256-cbc', key, iv);
  c.setAutoPadding(false);
  return Buffer.concat([c.update(data), c.final()]);
}

export function aesCbcDecrypt(key: Uint8Array, iv: Uint8Array, data: Uint8Array): Uint8Array {
  const d = createDecipheriv('aes-256-cbc', key, iv);
  d.setAutoPadding(false);
  return Buffer.concat([d.update(data), d.final()]);
}

/** Length of a credential private key as stored: the P-256 scalar or the Ed25519 seed. */
export const PRIVATE_KEY_LENGTH = 32;

/** A credential key ready for signing, with its public key in the raw form COSE wants. */
export interface CredentialKey {
  readonly alg: CredentialAlg;
  /** P-256 scalar d (32 bytes, big-endian) or Ed25519 seed (32 bytes). */
  readonly secret: Uint8Array;
  readonly privateKey: KeyObject;
  /** P-256: x || y (64 bytes); Ed25519: the 32-byte public key. */
  readonly publicRaw: Uint8Array;
}

function b64u(s: string | undefined): Uint8Array {
  if (s === undefined) throw new Error('key export without expected member');
  return Buffer.from(s, 'base64url');
}

/*
 * P-256 credential keys come from generateKeyPairSync (a provider-native key: the attestation signature needs no
 * legacy-to-provider conversion, and no JWK import runs OpenSSL's full public-key check), and their scalar and
 * point are read from its SEC1 DER export (docs/bench/soft.md has the profile).
 * Never KeyObject.export({format: 'jwk'}) a generated key: on Node 20 the JWK export holds the key's mutex while
 * it allocates JS strings, and a garbage collection in between can finalise the key's KeyGenJob, whose
 * destructor takes the same mutex — a self-deadlock. The DER export (WritePrivateKey) takes no such mutex;
 * test/agent/soft/crypto-keygen.test.ts runs it under constant scavenges. Ed25519 keys are generated straight
 * into DER encodings.
 */
const p256 = createECDH('prime256v1');

const b64url = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url');

/** P-256 KeyObject + raw public key (x || y) from the scalar d (an import: used for stored credentials). */
function p256Key(d: Uint8Array): CredentialKey {
  p256.setPrivateKey(d);
  const point = p256.getPublicKey(); // 0x04 || x || y
  const privateKey = createPrivateKey({
    key: { kty: 'EC', crv: 'P-256', d: b64url(d), x: b64url(point.subarray(1, 33)), y: b64url(point.subarray(33, 65)) },
    format: 'jwk',
  });
  return { alg: COSE_ALG_ES256, secret: d, privateKey, publicRaw: point.subarray(1) };
}

// RFC 5915 ECPrivateKey of a named P-256 key with its public key, as OpenSSL writes it (the scalar is always
// padded to 32 bytes): SEQUENCE { version 1, OCTET STRING d, [0] OID prime256v1, [1] BIT STRING 04||x||y }.
const SEC1_P256_HEAD = Buffer.from('30770201010420', 'hex');
const SEC1_P256_MID = Buffer.from('a00a06082a8648ce3d030107a144034200', 'hex');
const SEC1_P256_LENGTH = SEC1_P256_HEAD.length + 32 + SEC1_P256_MID.length + 65;

function generateP256Key(): CredentialKey {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const der = privateKey.export({ format: 'der', type: 'sec1' });
  const mid = SEC1_P256_HEAD.length + 32;
  if (
    der.length !== SEC1_P256_LENGTH ||
    !der.subarray(0, SEC1_P256_HEAD.length).equals(SEC1_P256_HEAD) ||
    !der.subarray(mid, mid + SEC1_P256_MID.length).equals(SEC1_P256_MID) ||
    der[mid + SEC1_P256_MID.length] !== 0x04
  ) {
    der.fill(0);
    throw new Error('unexpected SEC1 encoding of a generated P-256 key');
  }
  const secret = Uint8Array.from(der.subarray(SEC1_P256_HEAD.length, mid));
  const publicRaw = Uint8Array.from(der.subarray(mid + SEC1_P256_MID.length + 1));
  der.fill(0);
  return { alg: COSE_ALG_ES256, secret, privateKey, publicRaw };
}

function ed25519Key(seed: Uint8Array, publicKey: Uint8Array): CredentialKey {
  const privateKey = createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', d: b64url(seed), x: b64url(publicKey) }, format: 'jwk' });
  return { alg: COSE_ALG_EDDSA, secret: seed, privateKey, publicRaw: publicKey };
}

/** Generate a fresh credential key pair (OpenSSL's CSPRNG). */
export function generateCredentialKey(alg: CredentialAlg): CredentialKey {
  if (alg === COSE_ALG_ES256) return generateP256Key();
  const { privateKey, publicKey } = generateKeyPairSync('ed25519', {
    privateKeyEncoding: { type: 'pkcs8', format: 'der' },
    publicKeyEncoding: { type: 'spki', format: 'der' },
  });
  // PKCS#8 = 16-byte prefix || seed(32); SPKI = 12-byte prefix || public key(32) (RFC 8410).
  return ed25519Key(Uint8Array.from(privateKey.subarray(privateKey.length - 32)), Uint8Array.from(publicKey.subarray(publicKey.length - 32)));
}

// PKCS#8 prefix for an Ed25519 seed (RFC 8410 §7).
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/**
 * Re-create a CredentialKey from its stored secret. (Importing costs ~0.1 ms for P-256 and more for Ed25519,
 * so callers keep the result in a {@link KeyCache}.)
 */
export function importCredentialKey(alg: CredentialAlg, secret: Uint8Array): CredentialKey {
  if (alg === COSE_ALG_ES256) return p256Key(secret);
  // Node has no "public key from Ed25519 seed" primitive: import the PKCS#8 form (not a KeyGenJob key, so
  // exporting it is safe) and read the public key from its JWK.
  const pkcs8 = createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, secret]), format: 'der', type: 'pkcs8' });
  return { alg, secret, privateKey: pkcs8, publicRaw: b64u(pkcs8.export({ format: 'jwk' }).x) };
}

/** Sign `data` with a credential key: ES256 → DER ECDSA signature over SHA-256(data); EdDSA → Ed25519 (pure). */
export function signWith(key: CredentialKey, data: Uint8Array): Uint8Array {
  return key.alg === COSE_ALG_ES256 ? nodeSign('sha256', data, key.privateKey) : nodeSign(null, data, key.privateKey);
}

/** A small LRU of imported credential keys, keyed by credential id (binary string). */
export class KeyCache {
  private readonly entries = new Map<string, CredentialKey>();
  private readonly capacity: number;
  constructor(capacity = 1024) {
    this.capacity = capacity;
  }
  static keyOf(id: Uint8Array): string {
    return Buffer.from(id.buffer, id.byteOffset, id.byteLength).toString('latin1');
  }
  get(id: string): CredentialKey | undefined {
    const v = this.entries.get(id);
    if (v !== undefined) {
      // Refresh recency: Map iteration order is insertion order.
      this.entries.delete(id);
      this.entries.set(id, v);
    }
    return v;
  }
  set(id: string, key: CredentialKey): void {
    this.entries.delete(id);
    this.entries.set(id, key);
    if (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
  }
  clear(): void {
    this.entries.clear();
  }
}
