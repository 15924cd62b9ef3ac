/**
 * The on-disk format of the soft authenticator's encrypted state file (pure codec: no I/O).
 *
 *   offset  size  field
 *        0     8  magic "KTSTATE\n"
 *        8     1  format version (1)
 *        9     1  KDF id (1 = scrypt, RFC 7914)
 *       10     1  scrypt log2(N)
 *       11     4  scrypt r (big-endian)
 *       15     4  scrypt p (big-endian)
 *       19    16  KDF salt (random, chosen when the store is created)
 *       35    12  AES-256-GCM nonce (fresh for every write)
 *       47     …  ciphertext || 16-byte GCM tag
 *
 * The whole 47-byte header is the GCM additional authenticated data, so a flipped KDF parameter, salt or
 * version byte fails authentication exactly like a flipped ciphertext byte. The key is derived once per open
 * (scrypt is deliberately slow) and every write reuses it with a fresh random 96-bit nonce; with random nonces
 * NIST SP 800-38D §8.3 bounds a key to 2^32 encryptions, far beyond the life of a profile.
 */
import { createCipheriv, createDecipheriv, randomBytes, scrypt } from 'node:crypto';
import { KeytunnelError } from '../../../protocol/errors.ts';

export const STORE_MAGIC = Buffer.from('KTSTATE\n', 'latin1');
export const STORE_FORMAT_VERSION = 1;
export const KDF_SCRYPT = 1;
export const SALT_LENGTH = 16;
export const NONCE_LENGTH = 12;
export const TAG_LENGTH = 16;
export const KEY_LENGTH = 32;
export const HEADER_LENGTH = STORE_MAGIC.length + 1 + 1 + 1 + 4 + 4 + SALT_LENGTH + NONCE_LENGTH;
/** The largest state the store accepts (the authenticator's blob is a few hundred KiB at most). */
export const MAX_STATE_LENGTH = 16 * 1024 * 1024;
export const MAX_FILE_LENGTH = HEADER_LENGTH + MAX_STATE_LENGTH + TAG_LENGTH;

/**
 * scrypt cost parameters (RFC 7914 §2: N the CPU/memory cost, r the block size, p the parallelisation).
 * scrypt's working memory is 128·N·r bytes (plus 128·r·p); its time grows with N·r·p.
 *
 * The default for a new store, N = 2^15, r = 8, p = 1, needs 32 MiB and ~0.1-0.15 s per open (measured on a
 * 2-core CI machine). That is below OWASP's current scrypt minimum (Password Storage Cheat Sheet: N = 2^17,
 * r = 8, p = 1, i.e. 128 MiB); the store derives the key once per open of a long-running agent, so raising it
 * would cost start-up time and peak memory only. The file records the parameters, so a later default applies
 * to new stores while existing stores keep theirs.
 */
export interface ScryptParams {
  readonly log2N: number;
  readonly r: number;
  readonly p: number;
}
export const DEFAULT_SCRYPT: ScryptParams = { log2N: 15, r: 8, p: 1 };
/**
 * Bounds accepted in a file's header (and for a new store). They keep a crafted header from being a memory or
 * CPU bomb: at most 128·2^20·16 bytes = 2 GiB of scrypt memory and 16 sequential passes (p), about 16 s each
 * at that size on a 2-core machine. They are NOT a strength floor: only N is bounded below (2^15); r and p
 * may be as low as 1 (N = 2^15, r = 1 is 4 MiB, 8× cheaper than the default). A weak header cannot be forged
 * onto someone's store, though: the header is authenticated with the key it derives (see above), so only the
 * passphrase holder can write one.
 */
const MIN_LOG2N = 15;
const MAX_LOG2N = 20;
const MAX_R = 16;
const MAX_P = 16;

export interface StoreHeader {
  readonly version: number;
  readonly kdf: ScryptParams;
  readonly salt: Uint8Array;
  readonly nonce: Uint8Array;
}

export type StoreFormatErrorReason = 'not-a-store' | 'unsupported-version' | 'bad-kdf' | 'too-large' | 'truncated';

/** The bytes are not a store this code can read (as opposed to a store it cannot decrypt). */
export class StoreFormatError extends KeytunnelError {
  override readonly name = 'StoreFormatError';
  readonly code = 'STORE_FORMAT';
  constructor(
    readonly reason: StoreFormatErrorReason,
    message: string,
  ) {
    super(message);
  }
}

/** GCM authentication failed: the key (passphrase) is wrong or the bytes were altered. */
export class StoreAuthError extends KeytunnelError {
  override readonly name = 'StoreAuthError';
  readonly code = 'STORE_AUTH';
  constructor() {
    super('authentication failed');
  }
}

export function validateScryptParams(kdf: ScryptParams): void {
  const ok =
    Number.isInteger(kdf.log2N) &&
    kdf.log2N >= MIN_LOG2N &&
    kdf.log2N <= MAX_LOG2N &&
    Number.isInteger(kdf.r) &&
    kdf.r >= 1 &&
    kdf.r <= MAX_R &&
    Number.isInteger(kdf.p) &&
    kdf.p >= 1 &&
    kdf.p <= MAX_P;
  if (!ok) {
    throw new StoreFormatError(
      'bad-kdf',
      `scrypt parameters out of range (log2N ${kdf.log2N}, r ${kdf.r}, p ${kdf.p}; ` +
        `allowed log2N ${MIN_LOG2N}..${MAX_LOG2N}, r 1..${MAX_R}, p 1..${MAX_P})`,
    );
  }
}

/**
 * The shortest passphrase a NEW store accepts, in Unicode code points after NFC normalisation (what the KDF
 * hashes). Existing stores open with whatever passphrase created them: refusing those would lock users out.
 */
export const MIN_NEW_PASSPHRASE_LENGTH = 8;

/** Whether a passphrase may create a new store (see MIN_NEW_PASSPHRASE_LENGTH). */
export function newPassphraseLongEnough(passphrase: string): boolean {
  return [...passphrase.normalize('NFC')].length >= MIN_NEW_PASSPHRASE_LENGTH;
}

/** Derives the AES-256 key from a passphrase (RFC 7914 scrypt, via node:crypto). */
export function deriveKey(passphrase: string, salt: Uint8Array, kdf: ScryptParams): Promise<Buffer> {
  validateScryptParams(kdf);
  const N = 2 ** kdf.log2N;
  // node refuses when 128·N·r exceeds maxmem (default 32 MiB); allow exactly what the parameters need, plus slack.
  const maxmem = 128 * N * kdf.r * 2 + 1024 * 1024;
  return new Promise((resolve, reject) => {
    scrypt(passphrase.normalize('NFC'), salt, KEY_LENGTH, { N, r: kdf.r, p: kdf.p, maxmem }, (err, key) =>
      err ? reject(err) : resolve(key),
    );
  });
}

export function newSalt(): Uint8Array {
  return randomBytes(SALT_LENGTH);
}

function encodeHeader(h: StoreHeader): Buffer {
  const out = Buffer.alloc(HEADER_LENGTH);
  let o = STORE_MAGIC.copy(out, 0);
  out[o++] = h.version;
  out[o++] = KDF_SCRYPT;
  out[o++] = h.kdf.log2N;
  out.writeUInt32BE(h.kdf.r, o);
  o += 4;
  out.writeUInt32BE(h.kdf.p, o);
  o += 4;
  o += Buffer.from(h.salt).copy(out, o);
  Buffer.from(h.nonce).copy(out, o);
  return out;
}

/** Parses and validates the header (does not authenticate it; that is decryptState's job). */
export function decodeHeader(file: Uint8Array): StoreHeader {
  const buf = Buffer.from(file.buffer, file.byteOffset, file.byteLength);
  if (buf.length < STORE_MAGIC.length || !buf.subarray(0, STORE_MAGIC.length).equals(STORE_MAGIC)) {
    throw new StoreFormatError('not-a-store', 'not a keytunnel state file (bad magic)');
  }
  if (buf.length < HEADER_LENGTH + TAG_LENGTH) throw new StoreFormatError('truncated', 'state file is truncated');
  if (buf.length > MAX_FILE_LENGTH) throw new StoreFormatError('too-large', 'state file is too large');
  let o = STORE_MAGIC.length;
  const version = buf[o++];
  if (version !== STORE_FORMAT_VERSION) {
    throw new StoreFormatError('unsupported-version', `unsupported state file version ${version}`);
  }
  const kdfId = buf[o++];
  if (kdfId !== KDF_SCRYPT) throw new StoreFormatError('bad-kdf', `unsupported KDF id ${kdfId}`);
  const log2N = buf[o++];
  const r = buf.readUInt32BE(o);
  o += 4;
  const p = buf.readUInt32BE(o);
  o += 4;
  const kdf = { log2N, r, p };
  validateScryptParams(kdf);
  const salt = new Uint8Array(buf.subarray(o, o + SALT_LENGTH));
  o += SALT_LENGTH;
  const nonce = new Uint8Array(buf.subarray(o, o + NONCE_LENGTH));
  return { version, kdf, salt, nonce };
}

/** Encrypts one state with a fresh nonce; returns the whole file image. */
export function encryptState(state: Uint8Array, key: Uint8Array, kdf: ScryptParams, salt: Uint8Array): Buffer {
  if (state.length > MAX_STATE_LENGTH) {
    throw new StoreFormatError('too-large', `state of ${state.length} bytes exceeds ${MAX_STATE_LENGTH}`);
  }
  const header = encodeHeader({ version: STORE_FORMAT_VERSION, kdf, salt, nonce: randomBytes(NONCE_LENGTH) });
  const nonce = header.subarray(HEADER_LENGTH - NONCE_LENGTH);
  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_LENGTH });
  cipher.setAAD(header);
  const body = Buffer.concat([cipher.update(state), cipher.final()]);
  return Buffer.concat([header, body, cipher.getAuthTag()]);
}

/** Authenticates and decrypts a whole file image. Throws StoreFormatError or StoreAuthError. */
export function decryptState(file: Uint8Array, key: Uint8Array): Uint8Array {
  const header = decodeHeader(file);
  const buf = Buffer.from(file.buffer, file.byteOffset, file.byteLength);
  const decipher = createDecipheriv('aes-256-gcm', key, header.nonce, { authTagLength: TAG_LENGTH });
  decipher.setAAD(buf.subarray(0, HEADER_LENGTH));
  decipher.setAuthTag(buf.subarray(buf.length - TAG_LENGTH));
  try {
    const plain = Buffer.concat([decipher.update(buf.subarray(HEADER_LENGTH, buf.length - TAG_LENGTH)), decipher.final()]);
    return new Uint8Array(plain.buffer, plain.byteOffset, plain.byteLength);
  } catch {
    throw new StoreAuthError();
  }
}
