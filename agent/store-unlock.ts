/**
 * Unlocking the soft authenticator's store from the passphrase sources (agent/passphrase.ts), and remembering
 * the passphrase in the OS keychain (agent/keychain.ts) when the user wants that.
 *
 *   1. the sources in order (KEYTUNNEL_PASSPHRASE, the keychain, then the interactive ones: pinentry, terminal);
 *      the first one that has a passphrase opens the store;
 *   2. a remembered passphrase that does not open it (changed, or another store at that path) is skipped with a
 *      warning and the next source asks — the store is never left locked by a stale keychain entry; a given or
 *      typed passphrase that does not open it is an error, as before;
 *   3. a new store never takes a remembered passphrase (it is asked for twice, so a typo cannot lock anyone out);
 *   4. remember = 'yes' (--remember-passphrase) stores the passphrase that opened the store; 'ask' (no flag)
 *      offers it once the interactive source that got it can ask, when nothing is remembered yet; a stale entry is
 *      replaced by the passphrase that worked; 'no' (--no-remember-passphrase) never writes.
 *
 * Keychain failures (no Secret Service, timeout) never stop the unlock: they are logged and the next source asked.
 */
import { KeychainError, keychainSource, type Keychain } from './keychain.ts';
import { noSourceMessage, PassphraseError, type PassphraseRequest, type PassphraseSource } from './passphrase.ts';

export type RememberMode = 'yes' | 'no' | 'ask';

/** What the unlocker logs (a Logger fits). Never given a passphrase. */
export interface UnlockLog {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface UnlockOptions<T> {
  readonly creating: boolean;
  /** What the passphrase unlocks (the store path), for prompts and messages. */
  readonly what: string;
  /** Sources before the keychain ("given": the environment variable). */
  readonly given: readonly PassphraseSource[];
  /** The OS keychain and this store's account in it; absent = no keychain at all. */
  readonly keychain?: { readonly keychain: Keychain; readonly account: string };
  /** Sources after the keychain (pinentry, the terminal). */
  readonly interactive: readonly PassphraseSource[];
  readonly remember: RememberMode;
  /** Opens the store; rejects on a wrong passphrase with something `isWrongPassphrase` recognises. */
  open(passphrase: string): Promise<T>;
  isWrongPassphrase(err: unknown): boolean;
  readonly log: UnlockLog;
}

export interface Unlocked<T> {
  readonly store: T;
  /** Which source opened it (its name). */
  readonly source: string;
  /** True when the passphrase is in the keychain after this unlock. */
  readonly remembered: boolean;
}

type KeychainState = 'unused' | 'empty' | 'found' | 'stale' | 'unavailable';

export async function unlockStore<T>(options: UnlockOptions<T>): Promise<Unlocked<T>> {
  const { log, keychain } = options;
  let keychainState: KeychainState = 'unused';
  let request: PassphraseRequest = { creating: options.creating, what: options.what };

  const remembered: PassphraseSource[] = keychain !== undefined && !options.creating ? [keychainSource(keychain.keychain, keychain.account)] : [];
  for (const source of [...options.given, ...remembered, ...options.interactive]) {
    let passphrase: string | undefined;
    try {
      passphrase = await source.get(request);
    } catch (err) {
      if (!(err instanceof KeychainError)) throw err;
      keychainState = 'unavailable';
      // No keychain at all (a server, no Secret Service) is normal and said at debug level; a keychain that is
      // there but fails or hangs is worth a warning.
      (err.code === 'unavailable' ? log.debug : log.warn).call(log, { keychain: source.name, code: err.code }, `cannot read the remembered passphrase: ${err.message}`);
      continue;
    }
    if (source.kind === 'remembered') keychainState = passphrase === undefined ? 'empty' : 'found';
    if (passphrase === undefined) continue;
    let store: T;
    try {
      store = await options.open(passphrase);
    } catch (err) {
      if (source.kind !== 'remembered' || !options.isWrongPassphrase(err)) throw err;
      keychainState = 'stale';
      const why = `the passphrase remembered in ${source.name} does not open ${options.what}`;
      log.warn({ store: options.what }, `${why}; asking for it`);
      request = { ...request, retryReason: `${why}.` };
      continue;
    }
    const isRemembered = source.kind === 'remembered' || (await remember(options, source, passphrase, keychainState));
    return { store, source: source.name, remembered: isRemembered };
  }
  let message = noSourceMessage(options.what);
  if (keychainState === 'stale') message += `; the passphrase remembered in ${keychain!.keychain.name} is wrong`;
  else if (keychain !== undefined && !options.creating) {
    message += `, or remember it in ${keychain.keychain.name} (run once in a terminal with --remember-passphrase)`;
  }
  throw new PassphraseError('no-source', message);
}

/** After `source` opened the store: store the passphrase in the keychain if the user wants. True when stored. */
async function remember<T>(options: UnlockOptions<T>, source: PassphraseSource, passphrase: string, state: KeychainState): Promise<boolean> {
  const target = options.keychain;
  if (target === undefined || options.remember === 'no' || state === 'unavailable') {
    if (options.remember === 'yes') {
      options.log.warn({}, `cannot remember the passphrase: ${target === undefined ? 'no keychain' : `${target.keychain.name} is not reachable`}`);
    }
    return false;
  }
  let wanted = options.remember === 'yes' || state === 'stale';
  if (!wanted && source.kind === 'interactive' && source.offerRemember !== undefined) {
    if (state === 'unused') state = await probe(target.keychain, target.account, options.log);
    if (state === 'empty') wanted = await source.offerRemember(target.keychain.name);
  }
  if (!wanted) return false;
  try {
    await target.keychain.set(target.account, passphrase);
  } catch (err) {
    options.log.warn({ keychain: target.keychain.name }, `cannot remember the passphrase: ${(err as Error).message}`);
    return false;
  }
  options.log.info(
    { keychain: target.keychain.name, store: options.what },
    `${state === 'stale' ? 'replaced the stale' : 'remembered the'} passphrase in ${target.keychain.name}; ` +
      '`keytunnel forget-passphrase` removes it',
  );
  return true;
}

/** Whether the keychain is reachable and has nothing for this store yet (asked before offering to remember). */
async function probe(keychain: Keychain, account: string, log: UnlockLog): Promise<KeychainState> {
  try {
    return (await keychain.get(account)) === undefined ? 'empty' : 'found';
  } catch (err) {
    log.debug({ keychain: keychain.name }, `not offering to remember the passphrase: ${(err as Error).message}`);
    return 'unavailable';
  }
}
