/**
 * The unlock order and the remember rules (agent/store-unlock.ts) over an in-memory keychain and a store that
 * opens with one passphrase: the given variable wins and a wrong one is an error; a remembered one unlocks
 * without asking; a stale one falls back to asking and is replaced; a new store never takes a remembered one;
 * --remember-passphrase stores, the prompt choice stores only when accepted, --no-remember-passphrase never asks;
 * a keychain that fails or is missing never blocks the unlock.
 */
import { describe, expect, it } from 'vitest';
import { KeychainError, type Keychain } from '../../agent/keychain.ts';
import { PassphraseError, type PassphraseSource } from '../../agent/passphrase.ts';
import { unlockStore, type RememberMode } from '../../agent/store-unlock.ts';

const GOOD = 'the right passphrase';
class WrongPassphrase extends Error {}

/** A Map-backed keychain; `broken` makes every call reject like an unreachable Secret Service. */
function memoryKeychain(broken?: KeychainError): Keychain & { entries: Map<string, string> } {
  const entries = new Map<string, string>();
  const guard = (): void => {
    if (broken) throw broken;
  };
  return {
    name: 'the test keychain',
    entries,
    async get(account) {
      guard();
      return entries.get(account);
    },
    async set(account, secret) {
      guard();
      entries.set(account, secret);
    },
    async delete(account) {
      guard();
      return entries.delete(account);
    },
  };
}

function source(name: string, kind: PassphraseSource['kind'], value: string | undefined, remember?: boolean): PassphraseSource & { asked: number; offered: number } {
  const s = {
    name,
    kind,
    asked: 0,
    offered: 0,
    async get() {
      s.asked++;
      return value;
    },
    ...(remember === undefined
      ? {}
      : {
          async offerRemember() {
            s.offered++;
            return remember;
          },
        }),
  };
  return s;
}

function logs() {
  const lines: string[] = [];
  return {
    lines,
    log: { debug: (_: object, m: string) => lines.push(`debug ${m}`), info: (_: object, m: string) => lines.push(`info ${m}`), warn: (_: object, m: string) => lines.push(`warn ${m}`) },
  };
}

async function unlock(opts: {
  given?: PassphraseSource[];
  interactive?: PassphraseSource[];
  keychain?: Keychain;
  remember?: RememberMode;
  creating?: boolean;
}) {
  const { lines, log } = logs();
  const opened: string[] = [];
  const result = await unlockStore({
    creating: opts.creating ?? false,
    what: '/s/soft-default.kts',
    given: opts.given ?? [],
    keychain: opts.keychain === undefined ? undefined : { keychain: opts.keychain, account: 'acct' },
    interactive: opts.interactive ?? [],
    remember: opts.remember ?? 'ask',
    async open(p) {
      opened.push(p);
      if (p !== GOOD) throw new WrongPassphrase('wrong passphrase or corrupted store');
      return 'STORE';
    },
    isWrongPassphrase: (err) => err instanceof WrongPassphrase,
    log,
  });
  return { result, lines, opened };
}

describe('unlockStore', () => {
  it('the variable wins over the keychain and the terminal; a wrong variable is an error, not a reason to ask', async () => {
    const keychain = memoryKeychain();
    keychain.entries.set('acct', 'stale');
    const terminal = source('the terminal', 'interactive', GOOD, true);
    const { result } = await unlock({ given: [source('KEYTUNNEL_PASSPHRASE', 'given', GOOD)], keychain, interactive: [terminal] });
    expect(result).toEqual({ store: 'STORE', source: 'KEYTUNNEL_PASSPHRASE', remembered: false });
    expect(terminal.asked).toBe(0);
    await expect(unlock({ given: [source('KEYTUNNEL_PASSPHRASE', 'given', 'typo')], interactive: [terminal] })).rejects.toBeInstanceOf(WrongPassphrase);
    expect(terminal.asked).toBe(0);
  });

  it('a remembered passphrase unlocks without asking', async () => {
    const keychain = memoryKeychain();
    keychain.entries.set('acct', GOOD);
    const terminal = source('the terminal', 'interactive', undefined, true);
    const { result } = await unlock({ keychain, interactive: [terminal] });
    expect(result).toEqual({ store: 'STORE', source: 'the test keychain', remembered: true });
    expect(terminal.asked).toBe(0);
  });

  it('a stale remembered passphrase: warns, asks, and the typed one replaces it (without offering)', async () => {
    const keychain = memoryKeychain();
    keychain.entries.set('acct', 'old one');
    const terminal = source('the terminal', 'interactive', GOOD, false);
    const { result, lines, opened } = await unlock({ keychain, interactive: [terminal] });
    expect(opened).toEqual(['old one', GOOD]);
    expect(result.remembered).toBe(true);
    expect(keychain.entries.get('acct')).toBe(GOOD);
    expect(terminal.offered).toBe(0);
    expect(lines.join('\n')).toMatch(/warn the passphrase remembered in the test keychain does not open \/s\/soft-default\.kts; asking/);
    expect(lines.join('\n')).toMatch(/info replaced the stale passphrase/);
  });

  it('a stale remembered passphrase and nobody to ask: a clear error naming the keychain', async () => {
    const keychain = memoryKeychain();
    keychain.entries.set('acct', 'old one');
    const err = await unlock({ keychain, interactive: [source('the terminal', 'interactive', undefined)] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PassphraseError);
    expect((err as PassphraseError).code).toBe('no-source');
    expect((err as Error).message).toMatch(/needs a passphrase.*remembered in the test keychain is wrong/);
  });

  it('a new store never takes the remembered passphrase', async () => {
    const keychain = memoryKeychain();
    keychain.entries.set('acct', GOOD);
    const terminal = source('the terminal', 'interactive', GOOD, false);
    const { result, opened } = await unlock({ keychain, interactive: [terminal], creating: true });
    expect(result.source).toBe('the terminal');
    expect(opened).toEqual([GOOD]);
  });

  it('the prompt choice: offered only when nothing is remembered; yes stores, no does not; --no-remember never asks', async () => {
    const yes = memoryKeychain();
    const accept = source('the terminal', 'interactive', GOOD, true);
    expect((await unlock({ keychain: yes, interactive: [accept] })).result.remembered).toBe(true);
    expect(accept.offered).toBe(1);
    expect(yes.entries.get('acct')).toBe(GOOD);

    const no = memoryKeychain();
    const decline = source('the terminal', 'interactive', GOOD, false);
    expect((await unlock({ keychain: no, interactive: [decline] })).result.remembered).toBe(false);
    expect(decline.offered).toBe(1);
    expect(no.entries.size).toBe(0);

    const never = memoryKeychain();
    const unasked = source('the terminal', 'interactive', GOOD, true);
    await unlock({ keychain: never, interactive: [unasked], remember: 'no' });
    expect(unasked.offered).toBe(0);
    expect(never.entries.size).toBe(0);

    // A new store with --remember-passphrase from the variable: stored without asking anyone.
    const viaEnv = memoryKeychain();
    const r = await unlock({ keychain: viaEnv, given: [source('KEYTUNNEL_PASSPHRASE', 'given', GOOD)], remember: 'yes', creating: true });
    expect(r.result.remembered).toBe(true);
    expect(viaEnv.entries.get('acct')).toBe(GOOD);
  });

  it('an unreachable or failing keychain never blocks the unlock, and is not offered', async () => {
    for (const code of ['unavailable', 'timeout', 'failed'] as const) {
      const keychain = memoryKeychain(new KeychainError(code, `the test keychain: ${code}`));
      const terminal = source('the terminal', 'interactive', GOOD, true);
      const { result, lines } = await unlock({ keychain, interactive: [terminal] });
      expect(result).toEqual({ store: 'STORE', source: 'the terminal', remembered: false });
      expect(terminal.offered).toBe(0);
      // No Secret Service at all is normal (debug); one that is there but fails is a warning.
      expect(lines[0]).toMatch(code === 'unavailable' ? /^debug / : /^warn /);
    }
    const keychain = memoryKeychain(new KeychainError('unavailable', 'no bus'));
    const { result, lines } = await unlock({ keychain, given: [source('KEYTUNNEL_PASSPHRASE', 'given', GOOD)], remember: 'yes' });
    expect(result.remembered).toBe(false);
    expect(lines.join('\n')).toMatch(/warn cannot remember the passphrase: no bus/);
  });

  it('no source at all: the error names the variable, the terminal and remembering', async () => {
    const err = await unlock({ keychain: memoryKeychain(), interactive: [source('the terminal', 'interactive', undefined)] }).catch((e: unknown) => e);
    expect((err as Error).message).toBe(
      'the state store /s/soft-default.kts needs a passphrase: set KEYTUNNEL_PASSPHRASE, or run in a terminal to be asked, ' +
        'or remember it in the test keychain (run once in a terminal with --remember-passphrase)',
    );
  });

  it('an injected interactive source (the pinentry slot) is asked before the terminal', async () => {
    const pinentry = source('pinentry', 'interactive', GOOD, true);
    const terminal = source('the terminal', 'interactive', GOOD, true);
    const keychain = memoryKeychain();
    const { result } = await unlock({ keychain, interactive: [pinentry, terminal] });
    expect(result.source).toBe('pinentry');
    expect(pinentry.offered).toBe(1);
    expect(terminal.asked).toBe(0);
  });
});
