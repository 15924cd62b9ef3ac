/**
 * Passphrase-sealed files of the `passkeys` commands (a backup, an `export --encrypt`ed CXF file): the soft
 * store's own container (agent/authenticators/soft/store-format.ts: scrypt, AES-256-GCM over a header that is
 * authenticated too) around a CBOR map that says what it holds:
 *
 *   { "kind": "keytunnel-backup" | "cxf", "v": 1, "createdAt": ms, "data": bytes }
 *
 * A backup's data is the soft authenticator's serialised state (state.ts); a sealed CXF file's data is the CXF
 * JSON text. A copy of a store file (soft-<profile>.kts) opens too, as a backup: its plaintext is the state itself.
 */
import { decode, encode, type CborValue } from '../../protocol/cbor.ts';
import {
  DEFAULT_SCRYPT,
  STORE_MAGIC,
  StoreAuthError,
  StoreFormatError,
  decodeHeader,
  decryptState,
  deriveKey,
  encryptState,
  newPassphraseLongEnough,
  newSalt,
  MIN_NEW_PASSPHRASE_LENGTH,
} from '../../agent/authenticators/soft/store-format.ts';
import { PasskeysError } from './store-access.ts';

export type SealedKind = 'keytunnel-backup' | 'cxf';
export const SEALED_VERSION = 1;

export function isSealed(bytes: Uint8Array): boolean {
  return bytes.length >= STORE_MAGIC.length && Buffer.from(bytes.subarray(0, STORE_MAGIC.length)).equals(STORE_MAGIC);
}

export async function seal(kind: SealedKind, data: Uint8Array, passphrase: string, now: number): Promise<Uint8Array> {
  if (!newPassphraseLongEnough(passphrase)) {
    throw new PasskeysError(`the backup passphrase must be at least ${MIN_NEW_PASSPHRASE_LENGTH} characters long`);
  }
  const salt = newSalt();
  const key = await deriveKey(passphrase, salt, DEFAULT_SCRYPT);
  try {
    const inner = encode(
      new Map<CborValue, CborValue>([
        ['kind', kind],
        ['v', SEALED_VERSION],
        ['createdAt', now],
        ['data', data],
      ]),
    );
    return encryptState(inner, key, DEFAULT_SCRYPT, salt);
  } finally {
    key.fill(0);
  }
}

export interface Unsealed {
  readonly kind: SealedKind;
  readonly data: Uint8Array;
  /** Null for a copied store file. */
  readonly createdAt: number | null;
}

export async function unseal(bytes: Uint8Array, passphrase: string, file: string): Promise<Unsealed> {
  let plain: Uint8Array;
  try {
    const header = decodeHeader(bytes);
    const key = await deriveKey(passphrase, header.salt, header.kdf);
    try {
      plain = decryptState(bytes, key);
    } finally {
      key.fill(0);
    }
  } catch (err) {
    if (err instanceof StoreAuthError) throw new PasskeysError(`${file}: wrong passphrase, or the file was altered`);
    if (err instanceof StoreFormatError) throw new PasskeysError(`${file}: not a readable keytunnel file (${err.message})`);
    throw err;
  }
  let value: CborValue;
  try {
    value = decode(plain);
  } catch {
    throw new PasskeysError(`${file}: decrypted, but the content is not CBOR`);
  }
  if (!(value instanceof Map)) throw new PasskeysError(`${file}: unexpected content`);
  const kind = value.get('kind');
  if (kind === undefined && value.has('masterSecret')) return { kind: 'keytunnel-backup', data: plain, createdAt: null };
  const data = value.get('data');
  const createdAt = value.get('createdAt');
  if ((kind !== 'keytunnel-backup' && kind !== 'cxf') || value.get('v') !== SEALED_VERSION || !(data instanceof Uint8Array)) {
    throw new PasskeysError(`${file}: not a keytunnel backup or sealed CXF file (or one from a newer keytunnel)`);
  }
  return { kind, data, createdAt: typeof createdAt === 'number' ? createdAt : null };
}
