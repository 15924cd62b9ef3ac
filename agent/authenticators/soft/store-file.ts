/**
 * The soft authenticator's StateStore on disk: one encrypted file per profile (`<state-dir>/soft-<profile>.kts`,
 * format in store-format.ts), written atomically and durably.
 *
 * Durability (what "save resolved" promises): the new image is written to a fresh temp file in the same
 * directory (O_CREAT|O_EXCL, mode 0600), fsync'd, renamed over the old file (rename(2) is atomic within a
 * filesystem), and the rename itself is made durable the way the platform needs (see makeRenameDurable:
 * a directory fsync on POSIX, NTFS's metadata journal on Windows). At every instant the file name points at a
 * complete old or a complete new image, so a kill -9 anywhere loses nothing that a resolved save promised.
 * Leftover temp files from a crash are removed at the next open.
 *
 * File modes (0700 directory, 0600 file) protect the store on POSIX. On Windows Node maps a mode to the
 * read-only attribute only: there the store is protected by the ACL of the user's profile (%APPDATA%), which
 * other non-administrator users cannot read.
 *
 * Saves are serialised: one write in flight; saves arriving meanwhile are coalesced into the next write (the
 * newest state wins, and every waiter resolves once a state at least as new as its own is durable).
 *
 * The passphrase is used once, at open, to derive the key (scrypt); only the key stays in memory.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { makeRenameDurable, syncDirectory, type Durability } from '../../fs-durable.ts';
import type { StateStore } from './ports.ts';
import {
  DEFAULT_SCRYPT,
  MAX_FILE_LENGTH,
  MAX_STATE_LENGTH,
  MIN_NEW_PASSPHRASE_LENGTH,
  StoreAuthError,
  StoreFormatError,
  decodeHeader,
  decryptState,
  deriveKey,
  encryptState,
  newPassphraseLongEnough,
  newSalt,
  type ScryptParams,
} from './store-format.ts';
import { StoreLock, StoreLockedError, processAlive } from './store-lock.ts';
import { KeytunnelError } from '../../../protocol/errors.ts';

export type StoreErrorCode =
  /** GCM authentication failed: the passphrase is wrong or the file was altered. */
  | 'wrong-passphrase-or-corrupted'
  /** The file is not a readable state file (bad magic, truncated, bad parameters, too large). */
  | 'corrupted'
  /** Written by a newer keytunnel. */
  | 'unsupported-version'
  /** Another process (or this one) has the profile open. */
  | 'in-use'
  /** The profile name is not a safe file name. */
  | 'bad-profile'
  /** A new store was asked for with a passphrase shorter than MIN_NEW_PASSPHRASE_LENGTH. */
  | 'weak-passphrase'
  /** A state larger than MAX_STATE_LENGTH. */
  | 'too-large'
  /** load/save after close. */
  | 'closed'
  /** The filesystem refused (permissions, disk full, …). */
  | 'io';

export class StoreError extends KeytunnelError {
  override readonly name = 'StoreError';
  constructor(
    readonly code: StoreErrorCode,
    readonly path: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Profile names become file names: keep them boring (no separators, no dot-files, bounded). */
const PROFILE_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
export const DEFAULT_PROFILE = 'default';

/** `<stateDir>/soft-<profile>.kts`; rejects a profile name that is not a plain, short file-name fragment. */
export function profileStorePath(stateDir: string, profile: string = DEFAULT_PROFILE): string {
  if (!PROFILE_RE.test(profile)) {
    throw new StoreError(
      'bad-profile',
      join(stateDir, 'soft-?.kts'),
      `invalid profile name ${JSON.stringify(profile.slice(0, 80))}: use 1-64 letters, digits, '.', '_' or '-', ` +
        'starting with a letter or digit',
    );
  }
  return join(stateDir, `soft-${profile}.kts`);
}

export interface FileStoreOptions {
  /** The state file (see profileStorePath). Its directory is created (mode 0700) when missing. */
  readonly path: string;
  readonly passphrase: string;
  /** scrypt cost for a new store (an existing store keeps the parameters in its header). */
  readonly kdf?: ScryptParams;
  /** Whose durability rule applies (makeRenameDurable); default process.platform. Tests pass 'win32'. */
  readonly platform?: NodeJS.Platform;
  /** How a directory is flushed on POSIX (default syncDirectory); tests inject one that observes or fails. */
  readonly syncDir?: (dir: string) => Promise<void>;
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

interface Waiter {
  resolve(): void;
  reject(err: unknown): void;
}

export class FileStateStore implements StateStore {
  private key: Buffer | null;
  private writing = false;
  private pending: { state: Uint8Array; waiters: Waiter[] } | null = null;
  private idle: Array<() => void> = [];

  private constructor(
    readonly path: string,
    key: Buffer,
    private kdf: ScryptParams,
    private salt: Uint8Array,
    private readonly lock: StoreLock,
    private readonly durability: Durability,
  ) {
    this.key = key;
  }

  /**
   * Opens (or prepares to create) the store: takes the profile lock, removes crash leftovers, derives the key
   * and — when the file exists — proves the passphrase by decrypting it. Rejects with StoreError.
   */
  static async open(options: FileStoreOptions): Promise<FileStateStore> {
    const path = options.path;
    const dir = dirname(path);
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new StoreError('io', path, `cannot create state directory ${dir}: ${(err as Error).message}`, { cause: err });
    }
    let lock: StoreLock;
    try {
      lock = await StoreLock.acquire(`${path}.lock`);
    } catch (err) {
      if (err instanceof StoreLockedError) throw new StoreError('in-use', path, err.message, { cause: err });
      throw new StoreError('io', path, `cannot lock store ${path}: ${(err as Error).message}`, { cause: err });
    }
    try {
      await removeLeftovers(path);
      const image = await readImage(path);
      let kdf = options.kdf ?? DEFAULT_SCRYPT;
      let salt = newSalt();
      if (image) {
        const header = mapFormatErrors(path, () => decodeHeader(image));
        kdf = header.kdf;
        salt = header.salt;
      } else if (!newPassphraseLongEnough(options.passphrase)) {
        // Only when creating: a store made before this rule still opens with the passphrase it was made with.
        throw new StoreError(
          'weak-passphrase',
          path,
          `refusing to create ${path}: the passphrase must be at least ${MIN_NEW_PASSPHRASE_LENGTH} characters long`,
        );
      }
      let key: Buffer;
      try {
        key = await deriveKey(options.passphrase, salt, kdf);
      } catch (err) {
        if (err instanceof StoreFormatError) throw new StoreError('corrupted', path, `bad scrypt parameters for ${path}: ${err.message}`);
        throw err;
      }
      if (image) decryptOrThrow(path, image, key);
      const durability = { platform: options.platform ?? process.platform, syncDir: options.syncDir ?? syncDirectory };
      return new FileStateStore(path, key, kdf, salt, lock, durability);
    } catch (err) {
      await lock.release();
      throw err;
    }
  }

  async load(): Promise<Uint8Array | null> {
    const key = this.liveKey();
    const image = await readImage(this.path);
    return image ? decryptOrThrow(this.path, image, key) : null;
  }

  save(state: Uint8Array): Promise<void> {
    try {
      this.liveKey();
    } catch (err) {
      return Promise.reject(err);
    }
    if (state.length > MAX_STATE_LENGTH) {
      return Promise.reject(
        new StoreError('too-large', this.path, `state of ${state.length} bytes exceeds the ${MAX_STATE_LENGTH}-byte bound`),
      );
    }
    const copy = Uint8Array.from(state); // the caller may reuse its buffer once save returns
    return new Promise<void>((resolve, reject) => {
      if (this.pending) {
        this.pending.state = copy;
        this.pending.waiters.push({ resolve, reject });
      } else {
        this.pending = { state: copy, waiters: [{ resolve, reject }] };
      }
      this.pump();
    });
  }

  /**
   * Re-encrypts the store under a new passphrase (new salt, same or given scrypt cost), atomically: the new image
   * goes to a temp file that is fsync'd, and only a rename makes it the store, so until the rename the file
   * opens with the old passphrase and after it with the new one — a crash in between leaves the old store
   * whole (the temp file is removed at the next open). Waits for pending saves first; later saves use the new
   * key. `beforeCommit` runs between the durable temp file and the rename (tests kill the process there).
   */
  async changePassphrase(
    newPassphrase: string,
    options: { readonly kdf?: ScryptParams; readonly beforeCommit?: () => Promise<void> } = {},
  ): Promise<void> {
    if (!newPassphraseLongEnough(newPassphrase)) {
      throw new StoreError(
        'weak-passphrase',
        this.path,
        `the new passphrase must be at least ${MIN_NEW_PASSPHRASE_LENGTH} characters long; ${this.path} is unchanged`,
      );
    }
    while (this.writing || this.pending) await new Promise<void>((resolve) => this.idle.push(resolve));
    const state = await this.load();
    if (state === null) throw new StoreError('io', this.path, `no store at ${this.path} to change the passphrase of`);
    const kdf = options.kdf ?? this.kdf;
    const salt = newSalt();
    let key: Buffer;
    try {
      key = await deriveKey(newPassphrase, salt, kdf);
    } catch (err) {
      if (err instanceof StoreFormatError) throw new StoreError('corrupted', this.path, `bad scrypt parameters: ${err.message}`);
      throw err;
    }
    this.writing = true;
    try {
      await this.writeImage(encryptState(state, key, kdf, salt), options.beforeCommit);
      const old = this.liveKey();
      this.key = key;
      this.kdf = kdf;
      this.salt = salt;
      old.fill(0);
    } catch (err) {
      key.fill(0);
      throw err;
    } finally {
      this.writing = false;
      this.pump();
      if (!this.writing && !this.pending) for (const wake of this.idle.splice(0)) wake();
    }
  }

  /** Waits for pending saves, releases the lock and wipes the key. Idempotent. */
  async close(): Promise<void> {
    if (!this.key) return;
    while (this.writing || this.pending) await new Promise<void>((resolve) => this.idle.push(resolve));
    if (!this.key) return;
    this.key.fill(0);
    this.key = null;
    await this.lock.release();
  }

  private liveKey(): Buffer {
    if (!this.key) throw new StoreError('closed', this.path, `store ${this.path} is closed`);
    return this.key;
  }

  private pump(): void {
    if (this.writing || !this.pending) return;
    const job = this.pending;
    this.pending = null;
    this.writing = true;
    Promise.resolve()
      .then(() => this.writeImage(encryptState(job.state, this.liveKey(), this.kdf, this.salt)))
      .then(
        () => job.waiters.forEach((w) => w.resolve()),
        (err: unknown) => job.waiters.forEach((w) => w.reject(err)),
      )
      .finally(() => {
        this.writing = false;
        this.pump();
        if (!this.writing && !this.pending) for (const wake of this.idle.splice(0)) wake();
      });
  }

  private async writeImage(image: Uint8Array, beforeCommit?: () => Promise<void>): Promise<void> {
    const tmp = `${this.path}${TEMP_INFIX}${process.pid}-${randomBytes(6).toString('hex')}`;
    try {
      const fh = await open(tmp, 'wx', 0o600);
      try {
        await fh.writeFile(image);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await beforeCommit?.();
      await rename(tmp, this.path);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw new StoreError('io', this.path, `cannot write store ${this.path}: ${(err as Error).message}`, { cause: err });
    }
    await makeRenameDurable(dirname(this.path), this.durability).catch((err: unknown) => {
      throw new StoreError('io', this.path, `cannot sync directory of ${this.path}: ${(err as Error).message}`, {
        cause: err,
      });
    });
  }
}

/**
 * Reads and decrypts a store without taking its lock and without touching the directory: for read-only views
 * (`keytunnel passkeys list`, `backup`, `export`) that may run beside the agent. The file name always points at a
 * complete image (saves are atomic renames), so what this returns is the state of one completed save. Null when
 * the store does not exist. Rejects with StoreError like {@link FileStateStore.open}.
 */
export async function readStoreFile(path: string, passphrase: string): Promise<Uint8Array | null> {
  const image = await readImage(path);
  if (image === null) return null;
  const header = mapFormatErrors(path, () => decodeHeader(image));
  const key = await deriveKey(passphrase, header.salt, header.kdf);
  try {
    return decryptOrThrow(path, image, key);
  } finally {
    key.fill(0);
  }
}

const TEMP_INFIX = '.tmp-';

/** Removes temp files a crashed writer left (we hold the profile lock, so nobody else is writing). */
async function removeLeftovers(path: string): Promise<void> {
  const dir = dirname(path);
  const prefix = basename(path) + TEMP_INFIX;
  const lockPrefix = `${basename(path)}.lock.`;
  for (const name of await readdir(dir)) {
    if (name.startsWith(prefix)) {
      await unlink(join(dir, name)).catch(() => undefined);
    } else if (name.startsWith(lockPrefix)) {
      // A lock-acquisition temp file `<lock>.<pid>.<rand>`: only remove it when its process is gone.
      const pid = Number.parseInt(name.slice(lockPrefix.length), 10);
      if (Number.isSafeInteger(pid) && pid > 0 && !processAlive(pid)) await unlink(join(dir, name)).catch(() => undefined);
    }
  }
}

/** The whole file, or null when it does not exist. Bounded before reading. */
async function readImage(path: string): Promise<Uint8Array | null> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    if (errno(err) === 'ENOENT') return null;
    throw new StoreError('io', path, `cannot read store ${path}: ${(err as Error).message}`, { cause: err });
  }
  try {
    const { size } = await fh.stat();
    if (size > MAX_FILE_LENGTH) throw new StoreError('corrupted', path, `corrupted store ${path}: file too large (${size} bytes)`);
    return new Uint8Array(await fh.readFile());
  } finally {
    await fh.close();
  }
}

function mapFormatErrors<T>(path: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof StoreFormatError) {
      if (err.reason === 'unsupported-version') {
        throw new StoreError('unsupported-version', path, `${err.message} in ${path} (written by a newer keytunnel?)`);
      }
      throw new StoreError('corrupted', path, `corrupted store ${path}: ${err.message}`, { cause: err });
    }
    throw err;
  }
}

function decryptOrThrow(path: string, image: Uint8Array, key: Uint8Array): Uint8Array {
  return mapFormatErrors(path, () => {
    try {
      return decryptState(image, key);
    } catch (err) {
      if (err instanceof StoreAuthError) {
        throw new StoreError('wrong-passphrase-or-corrupted', path, `wrong passphrase or corrupted store ${path}`);
      }
      throw err;
    }
  });
}

// Re-exported so callers need one import for the store.
export { makeRenameDurable, syncDirectory } from '../../fs-durable.ts';
export { DEFAULT_SCRYPT, type ScryptParams } from './store-format.ts';
