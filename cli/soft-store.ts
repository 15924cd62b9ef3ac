/**
 * Opening the soft authenticator's encrypted store for `keytunnel soft` and `keytunnel agent --soft`: the
 * passphrase from KEYTUNNEL_PASSPHRASE, the OS keychain, an injected interactive source (the pinentry slot)
 * or the terminal, in that order (agent/store-unlock.ts), remembered with --remember-passphrase or by the
 * terminal's prompt choice; and the --remember-passphrase option both commands share.
 */
import { exists } from './exists.ts';
import { FileStateStore, StoreError } from '../agent/authenticators/soft/store-file.ts';
import { storeAccount, systemKeychain, type Keychain } from '../agent/keychain.ts';
import { envSource, terminalSource, type PassphraseInput, type PassphraseSource } from '../agent/passphrase.ts';
import { unlockStore, type RememberMode, type UnlockLog } from '../agent/store-unlock.ts';
import { pinentryPassphraseSource } from '../agent/presence/pinentry-passphrase.ts';

export const rememberPassphraseOption = {
  'remember-passphrase': {
    type: 'boolean',
    describe:
      'Remember the store passphrase in the OS keychain (Secret Service, macOS Keychain, Windows Credential ' +
      'Manager) once it opened the store, so later starts unlock with your login; --no-remember-passphrase never ' +
      'stores it nor asks. Without either, a terminal asks once. `keytunnel forget-passphrase` removes it.',
  },
} as const;

/** The yargs value of --remember-passphrase / --no-remember-passphrase / neither. */
export function rememberMode(value: unknown): RememberMode {
  return value === true ? 'yes' : value === false ? 'no' : 'ask';
}

/**
 * With `--approve dialog` the passphrase is asked in the same pinentry that asks for approvals (GETPIN) before
 * the terminal; a pinentry that cannot run hands over to the terminal.
 */
export function dialogPassphraseSources(approve: string, env?: Readonly<Record<string, string | undefined>>): PassphraseSource[] {
  return approve === 'dialog' ? [pinentryPassphraseSource({ env: (env ?? process.env) as NodeJS.ProcessEnv })] : [];
}

export interface SoftStoreOptions {
  readonly storePath: string;
  readonly remember: RememberMode;
  readonly log: UnlockLog;
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly input?: PassphraseInput;
  readonly output?: NodeJS.WritableStream;
  /** The OS keychain (default: this session's); null = none (tests, or the user opted out). */
  readonly keychain?: Keychain | null;
  /** Asked before the terminal (the pinentry GETPIN source, once wired). */
  readonly interactive?: readonly PassphraseSource[];
  /** A passphrase that skips every source (tests, the demo): never remembered. */
  readonly passphrase?: string;
}

/** What `keytunnel soft` and `agent --soft` take from their injected I/O to unlock the store. */
export interface SoftStoreIo {
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly input?: PassphraseInput;
  readonly output?: NodeJS.WritableStream;
  /** Skip the passphrase sources (tests, the demo). */
  readonly passphrase?: string;
  /** The OS keychain (default: this session's; null: none). */
  readonly keychain?: Keychain | null;
  /** Interactive passphrase sources asked before the terminal (default: the pinentry with --approve dialog). */
  readonly passphraseSources?: readonly PassphraseSource[];
}

/** openSoftStore for a command: its flags (--remember-passphrase, --approve) and its I/O. */
export function openCommandStore(
  storePath: string,
  flags: { readonly rememberPassphrase?: RememberMode; readonly approve: string },
  io: SoftStoreIo,
  log: UnlockLog,
): Promise<{ store: FileStateStore; creating: boolean }> {
  return openSoftStore({
    storePath,
    remember: flags.rememberPassphrase ?? 'ask',
    log,
    env: io.env,
    input: io.input,
    output: io.output,
    keychain: io.keychain,
    interactive: io.passphraseSources ?? dialogPassphraseSources(flags.approve, io.env),
    passphrase: io.passphrase,
  });
}

/** Opens the store; `creating` tells whether it was new. */
export async function openSoftStore(options: SoftStoreOptions): Promise<{ store: FileStateStore; creating: boolean }> {
  const path = options.storePath;
  const creating = !(await exists(path));
  if (options.passphrase !== undefined) {
    return { store: await FileStateStore.open({ path, passphrase: options.passphrase }), creating };
  }
  const keychain = options.keychain === undefined ? systemKeychain() : options.keychain;
  const { store } = await unlockStore({
    creating,
    what: path,
    given: [envSource(options.env ?? process.env)],
    keychain: keychain === null ? undefined : { keychain, account: storeAccount(path) },
    interactive: [...(options.interactive ?? []), terminalSource(options.input ?? process.stdin, options.output ?? process.stderr)],
    remember: options.remember,
    open: (passphrase) => FileStateStore.open({ path, passphrase }),
    isWrongPassphrase: (err) => err instanceof StoreError && err.code === 'wrong-passphrase-or-corrupted',
    log: options.log,
  });
  return { store, creating };
}
