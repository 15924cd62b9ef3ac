/**
 * The store passphrase in the OS keychain under a real Secret Service (gnome-keyring on a private D-Bus session
 * started here; secret-tool from libsecret as the independent reader):
 *   - without a Secret Service on the bus the keychain is 'unavailable' (never the kernel keyring fallback);
 *   - `keytunnel soft --remember-passphrase` stores it; a restart with no passphrase given and no terminal
 *     unlocks; `keytunnel forget-passphrase` removes it, and the next start asks again on the terminal, whose
 *     prompt choice ("remember? y") remembers it again;
 *   - a wrong remembered passphrase falls back to asking, and the one typed replaces it.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { profileStorePath } from '../../agent/authenticators/soft/store-file.ts';
import { KeychainError, storeAccount, systemKeychain } from '../../agent/keychain.ts';
import { startSecretService, type SecretServiceSession } from './secret-service.ts';

const BIN = fileURLToPath(new URL('../../bin/keytunnel.js', import.meta.url));
const PTY = fileURLToPath(new URL('./pty_run.py', import.meta.url));
const REPO = fileURLToPath(new URL('../..', import.meta.url));
const PASS = 'remembered pass phrase';

let session: SecretServiceSession;
let stateDir: string;
let storePath: string;
let account: string;

beforeAll(async () => {
  session = await startSecretService();
  stateDir = mkdtempSync(join(tmpdir(), 'kt-keychain-state-'));
  storePath = profileStorePath(stateDir);
  account = storeAccount(storePath);
});
afterAll(async () => {
  await session?.stop();
  if (stateDir) rmSync(stateDir, { recursive: true, force: true });
});

/** The child's environment: the test session's bus and HOME, no KEYTUNNEL_* from outside. */
function childEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('KEYTUNNEL_')) env[k] = v;
  return { ...env, ...session.env, ...extra };
}

/** Runs `fn` with this process's environment pointing at the test session (the native library reads it). */
async function withSessionEnv(fn: () => Promise<void>): Promise<void> {
  const saved = Object.fromEntries(Object.keys(session.env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, session.env);
  try {
    await fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

const SOFT = ['soft', '--hid', 'loopback:127.0.0.1:0', '--approve', 'always', '--state-dir'];

/** `keytunnel soft` without a terminal: resolves once it listens (then SIGTERM) or when it exits on its own. */
function softWithoutTerminal(args: string[], env: Record<string, string>): Promise<{ listened: boolean; code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...SOFT, stateDir, ...args], { env: childEnv(env), stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    let listened = false;
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
      if (!listened && stderr.includes('keytunnel soft: listening on')) {
        listened = true;
        child.kill('SIGTERM');
      }
    });
    child.once('close', (code) => resolve({ listened, code, stderr }));
  });
}

interface PtyResult {
  transcript: string;
  exitCode: number | null;
  error: string | null;
}
function softOnTerminal(steps: { expect: string; send?: string }[], args: string[] = []): PtyResult {
  const spec = { argv: [process.execPath, BIN, ...SOFT, stateDir, ...args], env: childEnv(), cwd: REPO, steps, then: 'sigterm' };
  const r = spawnSync('/usr/bin/python3', [PTY, JSON.stringify(spec)], { encoding: 'utf8', timeout: 90_000 });
  return JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as PtyResult;
}

function forget(): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, 'forget-passphrase', '--state-dir', stateDir], { env: childEnv(), encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('the OS keychain under a real Secret Service', () => {
  it('without a Secret Service on the session bus: unavailable, not a silent fallback', async () => {
    await withSessionEnv(async () => {
      const err = await systemKeychain({ timeoutMs: 10_000 }).get('nobody').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(KeychainError);
      expect((err as KeychainError).code).toBe('unavailable');
      expect((err as KeychainError).message).toMatch(/Secret Service cannot be reached.*org\.freedesktop\.secrets/);
    });
    // keytunnel soft --remember-passphrase still starts (the store opens), and says it could not remember.
    const r = await softWithoutTerminal(['--remember-passphrase'], { KEYTUNNEL_PASSPHRASE: PASS });
    expect(r.listened, r.stderr).toBe(true);
    expect(r.stderr).toMatch(/cannot remember the passphrase: the Secret Service cannot be reached/);
    await session.startKeyring();
  }, 60_000);

  it('systemKeychain stores, reads and deletes what secret-tool sees', async () => {
    await withSessionEnv(async () => {
      const keychain = systemKeychain({ timeoutMs: 10_000 });
      expect(keychain.name).toBe('the Secret Service');
      await keychain.set('probe-account', 'probe secret');
      expect(session.lookup('probe-account')).toBe('probe secret');
      expect(await keychain.get('probe-account')).toBe('probe secret');
      expect(await keychain.delete('probe-account')).toBe(true);
      expect(await keychain.delete('probe-account')).toBe(false);
      expect(session.lookup('probe-account')).toBeUndefined();
      expect(await keychain.get('probe-account')).toBeUndefined();
    });
  });

  it('remember, restart with no passphrase given → unlocks; forget → asks again; the prompt choice remembers', async () => {
    // The store exists from the first test (created with PASS). Nothing is remembered yet: no terminal → refused.
    const before = await softWithoutTerminal([], {});
    expect(before.listened).toBe(false);
    expect(before.code).toBe(1);
    expect(before.stderr).toMatch(/needs a passphrase: set KEYTUNNEL_PASSPHRASE, or run in a terminal/);

    const remembered = await softWithoutTerminal(['--remember-passphrase'], { KEYTUNNEL_PASSPHRASE: PASS });
    expect(remembered.listened, remembered.stderr).toBe(true);
    expect(remembered.stderr).toContain('remembered the passphrase in the Secret Service');
    expect(remembered.stderr).not.toContain(PASS);
    expect(session.lookup(account)).toBe(PASS);

    const restarted = await softWithoutTerminal([], {});
    expect(restarted.listened, restarted.stderr).toBe(true);
    expect(restarted.code).toBe(0);

    const forgot = forget();
    expect(forgot.code, forgot.stderr).toBe(0);
    expect(forgot.stdout).toContain(`forgot the passphrase of ${storePath}`);
    expect(session.lookup(account)).toBeUndefined();
    expect(forget().stdout).toContain('nothing to forget');

    const asked = await softWithoutTerminal([], {});
    expect(asked.listened).toBe(false);
    expect(asked.stderr).toMatch(/needs a passphrase/);

    // On a terminal it asks; after the passphrase opens the store it offers to remember it: "y".
    const tty = softOnTerminal([
      { expect: 'passphrase for .*soft-default\\.kts: ', send: `${PASS}\r` },
      { expect: 'remember this passphrase in the Secret Service.*\\[y/N\\] ', send: 'y\r' },
      { expect: 'listening on' },
    ]);
    expect(tty.error, tty.transcript).toBeNull();
    expect(tty.transcript).not.toContain(PASS);
    expect(session.lookup(account)).toBe(PASS);
    expect((await softWithoutTerminal([], {})).listened).toBe(true);

    // --no-remember-passphrase: after a forget, the terminal asks for the passphrase but not whether to remember.
    forget();
    const declined = softOnTerminal([{ expect: 'passphrase for .*: ', send: `${PASS}\r` }, { expect: 'listening on' }], ['--no-remember-passphrase']);
    expect(declined.error, declined.transcript).toBeNull();
    expect(declined.transcript).not.toMatch(/remember this passphrase/);
    expect(session.lookup(account)).toBeUndefined();
  }, 120_000);

  it('a wrong remembered passphrase falls back to asking, and the typed one replaces it', async () => {
    session.store(account, 'not the passphrase');
    const noTerminal = await softWithoutTerminal([], {});
    expect(noTerminal.listened).toBe(false);
    expect(noTerminal.stderr).toContain('the passphrase remembered in the Secret Service is wrong');

    const tty = softOnTerminal([
      { expect: 'the passphrase remembered in the Secret Service does not open' },
      { expect: 'passphrase for .*: ', send: `${PASS}\r` },
      { expect: 'listening on' },
    ]);
    expect(tty.error, tty.transcript).toBeNull();
    expect(tty.transcript).toContain('replaced the stale passphrase in the Secret Service');
    expect(session.lookup(account)).toBe(PASS);
    expect((await softWithoutTerminal([], {})).listened).toBe(true);
  }, 90_000);
});
