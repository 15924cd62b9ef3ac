/**
 * The soft store's passphrase from the approval pinentry (issue 15 item 2, GETPIN): a real `keytunnel soft
 * --approve dialog` process with no terminal and no KEYTUNNEL_PASSPHRASE asks for it in pinentry-tty, drawn in a
 * tmux pane (GPG_TTY) and answered with send-keys — twice when the store is created, once to unlock it again.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PassphraseError } from '../../../agent/passphrase.ts';
import { pinentryPassphraseSource } from '../../../agent/presence/pinentry-passphrase.ts';
import { PinentryError } from '../../../agent/presence/pinentry.ts';

const run = promisify(execFile);
const BIN = fileURLToPath(new URL('../../../bin/keytunnel.js', import.meta.url));
const PASSPHRASE = 'correct horse battery';

async function until<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('pinentry as the passphrase source (fake GETPIN)', () => {
  const request = { creating: true, what: '/tmp/store.kts' };
  const env = { KEYTUNNEL_PINENTRY: '/bin/true' };

  it('asks twice for a new store and refuses two different answers', async () => {
    const answers = ['one passphrase', 'another one'];
    const source = pinentryPassphraseSource({ env, ask: async () => ({ outcome: 'approved', pin: answers.shift()! }) });
    await expect(source.get(request)).rejects.toMatchObject({ code: 'mismatch' });
  });

  it('Cancel stops the unlock; a pinentry that cannot run hands over to the next source', async () => {
    const cancelled = pinentryPassphraseSource({ env, ask: async () => ({ outcome: 'denied' }) });
    await expect(cancelled.get(request)).rejects.toBeInstanceOf(PassphraseError);
    const broken = pinentryPassphraseSource({ env, ask: async () => Promise.reject(new PinentryError('no such program')) });
    expect(await broken.get(request)).toBeUndefined();
    expect(await pinentryPassphraseSource({ env: { PATH: '' }, platform: 'linux' }).get(request)).toBeUndefined(); // no display
  });
});

describe('keytunnel soft --approve dialog asks for the passphrase in pinentry-tty', () => {
  const session = `kt-passphrase-${process.pid}`;
  const pane = async (): Promise<string> => (await run('tmux', ['capture-pane', '-p', '-t', session])).stdout;
  let dir: string;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kt-passphrase-'));
    await run('tmux', ['new-session', '-d', '-s', session, '-x', '110', '-y', '30', 'sleep 600']);
  });
  afterAll(async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    await run('tmux', ['kill-session', '-t', session]).catch(() => {});
    await rm(dir, { recursive: true, force: true });
  });

  async function soft(): Promise<{ child: ChildProcess; stderr: () => string }> {
    await run('tmux', ['respawn-pane', '-k', '-t', session, 'sleep 600']);
    const tty = (await run('tmux', ['display', '-p', '-t', session, '#{pane_tty}'])).stdout.trim();
    const env: NodeJS.ProcessEnv = { ...process.env, KEYTUNNEL_PINENTRY: 'pinentry-tty', GPG_TTY: tty, TERM: 'screen' };
    delete env['KEYTUNNEL_PASSPHRASE'];
    delete env['DISPLAY'];
    const child = spawn(
      process.execPath,
      [BIN, 'soft', '--hid', 'loopback:127.0.0.1:0', '--approve', 'dialog', '--state-dir', dir, '--no-remember-passphrase'],
      { stdio: ['ignore', 'pipe', 'pipe'], env },
    );
    children.push(child);
    let err = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
    return { child, stderr: () => err };
  }

  const typePassphrase = async (): Promise<void> => {
    await run('tmux', ['send-keys', '-t', session, '-l', PASSPHRASE]);
    await run('tmux', ['send-keys', '-t', session, 'Enter']);
  };

  it('creates the store with the passphrase typed twice, then unlocks it with one', async () => {
    const first = await soft();
    await until('the first GETPIN', async () => (await pane()).includes('Choose a passphrase'));
    await typePassphrase();
    await until('the repeat GETPIN', async () => (await pane()).includes('Repeat the passphrase'));
    await typePassphrase();
    await until('the device', async () => /listening on loopback/.test(first.stderr()) || first.child.exitCode !== null);
    expect(first.stderr()).toMatch(/listening on loopback/);
    expect(first.stderr()).not.toContain(PASSPHRASE);
    first.child.kill('SIGINT');
    await new Promise((r) => first.child.once('exit', r));

    const again = await soft();
    await until('the unlock GETPIN', async () => (await pane()).includes('Unlock the encrypted store'));
    await typePassphrase();
    await until('the device', async () => /listening on loopback/.test(again.stderr()) || again.child.exitCode !== null);
    expect(again.stderr()).toMatch(/listening on loopback/);
    again.child.kill('SIGINT');
    await new Promise((r) => again.child.once('exit', r));
  }, 90_000);
});
