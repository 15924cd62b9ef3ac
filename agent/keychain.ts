/**
 * The OS keychain, for remembering the soft authenticator's store passphrase: the Secret Service on Linux
 * (gnome-keyring, KWallet, KeePassXC), the login Keychain on macOS, the Credential Manager on Windows, through
 * @napi-rs/keyring (Rust keyring-rs; prebuilt binaries for linux-x64-gnu/-musl, win32-x64, darwin-x64/-arm64
 * and more, no compiler at install time; keytar, the older choice, is archived).
 *
 * On Linux an entry is pinned to the Secret Service: the library's default would silently fall back to the
 * kernel keyring (keyutils), which forgets everything at reboot — a "remembered" passphrase that is gone
 * tomorrow. Without a Secret Service on the session bus every call rejects with KeychainError 'unavailable'.
 *
 * One entry per store: service "keytunnel", account `soft-store:<absolute store path>`. Calls are asynchronous
 * (the library's AsyncEntry runs them off the event loop) and bounded by a timeout, since a locked keyring can
 * wait on an unlock dialog. The library is loaded on first use, so a missing native binary only disables this.
 */
import { resolve } from 'node:path';
import { MAX_PASSPHRASE_LENGTH, type PassphraseSource } from './passphrase.ts';

export const KEYCHAIN_SERVICE = 'keytunnel';
/** Long enough for a keyring unlock dialog to be answered; an unattended start does not hang forever. */
export const KEYCHAIN_TIMEOUT_MS = 60_000;

export type KeychainErrorCode = 'unavailable' | 'timeout' | 'failed';

export class KeychainError extends Error {
  constructor(
    readonly code: KeychainErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'KeychainError';
  }
}

/** A secret store keyed by account name (the service is fixed per keychain). */
export interface Keychain {
  /** "the Secret Service", "the macOS Keychain", "the Windows Credential Manager". */
  readonly name: string;
  /** The remembered secret, or undefined when there is none. Rejects with KeychainError. */
  get(account: string): Promise<string | undefined>;
  set(account: string, secret: string): Promise<void>;
  /** True when an entry was removed, false when there was none. */
  delete(account: string): Promise<boolean>;
}

export function keychainName(platform: NodeJS.Platform): string {
  if (platform === 'darwin') return 'the macOS Keychain';
  if (platform === 'win32') return 'the Windows Credential Manager';
  return 'the Secret Service';
}

/** The keychain account of a soft-authenticator store: its absolute path (one entry per store file). */
export function storeAccount(storePath: string): string {
  return `soft-store:${resolve(storePath)}`;
}

interface AsyncEntryLike {
  getPassword(signal?: AbortSignal | null): Promise<string | null>;
  setPassword(password: string, signal?: AbortSignal | null): Promise<void>;
  deleteCredential(signal?: AbortSignal | null): Promise<boolean>;
}
type EntryFactory = (service: string, account: string) => AsyncEntryLike;

let loaded: Promise<EntryFactory> | undefined;
function loadLibrary(platform: NodeJS.Platform): Promise<EntryFactory> {
  loaded ??= import('@napi-rs/keyring').then(
    ({ AsyncEntry }) =>
      (service, account) =>
        new AsyncEntry(service, account, platform === 'linux' ? { linux: { store: 'secret-service' } } : undefined),
  );
  return loaded;
}

/** Bounded: error text from D-Bus or the OS goes into one log line. */
function reason(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.replace(/[\u0000-\u001f\u007f]+/g, ' ').slice(0, 300);
}

export interface SystemKeychainOptions {
  readonly platform?: NodeJS.Platform;
  readonly service?: string;
  readonly timeoutMs?: number;
}

/** The OS keychain of this session. Nothing is contacted until the first call. */
export function systemKeychain(options: SystemKeychainOptions = {}): Keychain {
  const platform = options.platform ?? process.platform;
  const service = options.service ?? KEYCHAIN_SERVICE;
  const timeoutMs = options.timeoutMs ?? KEYCHAIN_TIMEOUT_MS;
  const name = keychainName(platform);

  async function call<T>(account: string, op: (entry: AsyncEntryLike, signal: AbortSignal) => Promise<T>): Promise<T> {
    let factory: EntryFactory;
    try {
      factory = await loadLibrary(platform);
    } catch (err) {
      throw new KeychainError('unavailable', `cannot load the keychain library (@napi-rs/keyring): ${reason(err)}`);
    }
    let entry: AsyncEntryLike;
    try {
      entry = factory(service, account);
    } catch (err) {
      // On Linux the constructor is where a missing Secret Service shows (no session bus, no provider).
      const hint = platform === 'linux' ? ' (is gnome-keyring, KWallet or KeePassXC running in this session?)' : '';
      throw new KeychainError('unavailable', `${name} cannot be reached${hint}: ${reason(err)}`);
    }
    const signal = AbortSignal.timeout(timeoutMs);
    try {
      return await op(entry, signal);
    } catch (err) {
      if (signal.aborted) throw new KeychainError('timeout', `${name} did not answer within ${timeoutMs / 1000} s`);
      throw new KeychainError('failed', `${name}: ${reason(err)}`);
    }
  }

  return {
    name,
    async get(account) {
      const secret = await call(account, (e, signal) => e.getPassword(signal));
      return secret ?? undefined;
    },
    async set(account, secret) {
      await call(account, (e, signal) => e.setPassword(secret, signal));
    },
    delete(account) {
      return call(account, (e, signal) => e.deleteCredential(signal));
    },
  };
}

/**
 * The keychain as a passphrase source (kind "remembered": when it does not open the store the unlocker asks
 * instead). Rejects with KeychainError when the keychain cannot be used; the unlocker treats that as "nothing".
 */
export function keychainSource(keychain: Keychain, account: string): PassphraseSource {
  return {
    name: keychain.name,
    kind: 'remembered',
    async get() {
      const secret = await keychain.get(account);
      // Something else may have written this entry: an empty or oversized value is not a passphrase.
      if (secret === undefined || secret.length === 0 || secret.length > MAX_PASSPHRASE_LENGTH) return undefined;
      return secret;
    },
  };
}
