/**
 * How the `passkeys` commands reach the soft authenticator's encrypted store (agent/authenticators/soft/
 * store-file.ts), composed from what the store already offers:
 *
 * - reading (list, backup, export) decrypts the file without its lock (readStoreFile): every save is an atomic
 *   rename, so the file is always one complete saved state, and reading beside a running agent is safe;
 * - writing (rm, passwd, restore, import) takes the store's lock exactly as the agent does (FileStateStore.open,
 *   store-lock.ts), so the store is never written by two processes: while `keytunnel agent --soft` or
 *   `keytunnel soft` has the profile open, these commands refuse with the owner's pid and change nothing.
 */
import { exists } from '../exists.ts';
import { randomBytes } from 'node:crypto';
import { FileStateStore, StoreError, profileStorePath, readStoreFile } from '../../agent/authenticators/soft/store-file.ts';
import { deserializeState, newState, serializeState, type SoftState } from '../../agent/authenticators/soft/state.ts';
import { KeytunnelError } from '../../protocol/errors.ts';

export class PasskeysError extends KeytunnelError {
  override readonly name = 'PasskeysError';
  readonly code = 'PASSKEYS';
}

export interface StoreLocation {
  readonly stateDir: string;
  readonly profile: string;
}

export function storePath(where: StoreLocation): string {
  return profileStorePath(where.stateDir, where.profile);
}

export function storeExists(where: StoreLocation): Promise<boolean> {
  return exists(storePath(where));
}

function explain(err: unknown, path: string): never {
  if (err instanceof StoreError && err.code === 'in-use') {
    throw new PasskeysError(
      `the soft authenticator store ${path} is open in another process (${err.message.replace(/ \(lock .*\)$/, '')}): ` +
        'stop `keytunnel agent --soft` / `keytunnel soft` first; nothing was changed ' +
        '(`passkeys list`, `backup` and `export` work while it runs)',
    );
  }
  throw err;
}

/** The saved state, read without the lock. Missing store → PasskeysError. */
export async function readState(where: StoreLocation, passphrase: string): Promise<SoftState> {
  const path = storePath(where);
  const bytes = await readStoreFile(path, passphrase);
  if (bytes === null) throw new PasskeysError(`no soft authenticator store at ${path} (profile "${where.profile}")`);
  return deserializeState(bytes);
}

export interface WriteSession {
  readonly state: SoftState;
  /** Whether the store existed before this session (false: it is created on the first save). */
  readonly existed: boolean;
  readonly store: FileStateStore;
  /** Saves `state` (or the session's state, changed in place). */
  save(next?: SoftState): Promise<void>;
}

/**
 * Runs `fn` with the store locked and its state loaded; `fn` calls save() for what it changed. `create`: a missing
 * store is created (restore/import into a fresh installation); otherwise a missing store is an error.
 */
export async function withLockedState<T>(
  where: StoreLocation,
  passphrase: string,
  create: boolean,
  fn: (session: WriteSession) => Promise<T>,
): Promise<T> {
  const path = storePath(where);
  const existed = await storeExists(where);
  if (!existed && !create) throw new PasskeysError(`no soft authenticator store at ${path} (profile "${where.profile}")`);
  let store: FileStateStore;
  try {
    store = await FileStateStore.open({ path, passphrase });
  } catch (err) {
    explain(err, path);
  }
  try {
    const bytes = await store.load();
    const state = bytes === null ? newState((n) => randomBytes(n)) : deserializeState(bytes);
    return await fn({ state, existed: bytes !== null, store, save: (next) => store.save(serializeState(next ?? state)) });
  } finally {
    await store.close();
  }
}
