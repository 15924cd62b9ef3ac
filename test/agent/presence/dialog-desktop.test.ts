/**
 * Approval dialogs with the real programs (issue 15 item 1), through the whole chain a VM's client sees:
 *
 *   python-fido2 (test/interop/fido2_presence.py) → loopback HID face → CTAPHID device engine
 *     → soft authenticator → DialogPresence → a real dialog program
 *
 * - pinentry-curses (and pinentry-tty) in a tmux pane (KEYTUNNEL_PINENTRY, GPG_TTY = the pane's tty): the test reads the pane with
 *   capture-pane and answers with send-keys;
 * - pinentry-gtk-2 and zenity under Xvfb, answered with xdotool (real X input through XTEST).
 * Approve, deny, timeout (CTAP2_ERR_USER_ACTION_TIMEOUT reaches the client of a makeCredential, as a hardware
 * key answers), and a cancel from the client (CTAPHID_CANCEL) closes the dialog. A screenshot of the dialog is taken; with KEYTUNNEL_SCREENSHOT_DIR set it is copied there (docs/).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryStateStore } from '../../../agent/authenticators/soft/memory-store.ts';
import { SoftAuthenticator } from '../../../agent/authenticators/soft/soft-authenticator.ts';
import { DialogPresence } from '../../../agent/presence/dialog.ts';
import type { DialogBackend } from '../../../agent/presence/dialogs/backend.ts';
import { chooseDialogBackends } from '../../../agent/presence/dialogs/choose.ts';
import { zenityBackend } from '../../../agent/presence/dialogs/zenity.ts';
import { CtaphidDevice } from '../../../device/ctaphid-device.ts';
import { startLoopbackFace, type LoopbackFace } from '../../../device/faces/loopback.ts';

const run = promisify(execFile);
const PYTHON = '/usr/bin/python3';
const CLIENT = fileURLToPath(new URL('../../interop/fido2_presence.py', import.meta.url));
/** The dialogs' own timeout: short, so the timeout path is tested in seconds. */
const TIMEOUT_MS = 3_000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
async function until<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** A soft authenticator whose presence is a DialogPresence over `backends`, behind a loopback HID face. */
async function chain(backends: readonly DialogBackend[]): Promise<{ face: LoopbackFace; close: () => Promise<void> }> {
  const presence = new DialogPresence({ backends, timeoutMs: TIMEOUT_MS });
  const soft = await SoftAuthenticator.open({ store: new MemoryStateStore(), presence });
  const device = new CtaphidDevice(soft);
  const face = await startLoopbackFace(device, { host: '127.0.0.1' });
  return {
    face,
    close: async () => {
      await face.close();
      device.close();
    },
  };
}

/** The VM's client: one CTAP2 request; `cancel()` makes it send CTAPHID_CANCEL. */
function client(face: LoopbackFace, op: 'selection' | 'make-credential'): { result: Promise<{ ok: boolean; error?: string }>; cancel: () => void } {
  const child: ChildProcess = spawn(PYTHON, [CLIENT, `${face.address!.host}:${face.address!.port}`, op], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const result = new Promise<{ ok: boolean; error?: string }>((resolve, reject) => {
    child.once('close', (code) => {
      try {
        resolve(JSON.parse(out.trim().split('\n').pop() ?? '') as { ok: boolean; error?: string });
      } catch {
        reject(new Error(`client exited ${code}: ${out}\n${err}`));
      }
    });
  });
  return { result, cancel: () => child.kill('SIGUSR1') };
}

describe('pinentry-curses in a tmux pane', () => {
  const session = `kt-dialog-${process.pid}`;
  let tty: string;
  let close: (() => Promise<void>) | undefined;
  let face: LoopbackFace;

  const pane = async (): Promise<string> => (await run('tmux', ['capture-pane', '-p', '-t', session])).stdout;
  const keys = async (...k: string[]): Promise<void> => void (await run('tmux', ['send-keys', '-t', session, ...k]));
  /** A fresh pane (a stale dialog's text must not be taken for the next one). */
  const freshPane = async (): Promise<void> => {
    await run('tmux', ['respawn-pane', '-k', '-t', session, 'sleep 600']);
    tty = (await run('tmux', ['display', '-p', '-t', session, '#{pane_tty}'])).stdout.trim();
  };

  beforeAll(async () => {
    await run('tmux', ['new-session', '-d', '-s', session, '-x', '110', '-y', '30', 'sleep 600']);
    await freshPane();
  });
  afterAll(async () => {
    await close?.();
    await run('tmux', ['kill-session', '-t', session]).catch(() => {});
  });

  /** The chain, with the pinentry drawing on the current pane. */
  const start = async (): Promise<void> => {
    await close?.();
    await freshPane();
    const env = { ...process.env, KEYTUNNEL_PINENTRY: 'pinentry-curses', GPG_TTY: tty, TERM: 'screen' };
    const backends = chooseDialogBackends({ env, platform: 'linux' });
    expect(backends.map((b) => b.name)).toEqual(['pinentry (/usr/bin/pinentry-curses)']);
    ({ face, close } = await chain(backends));
  };

  it('approve: the dialog names the VM, RP, user and operation; Enter on Approve creates the credential', async () => {
    await start();
    const c = client(face, 'make-credential');
    const screen = await until('the dialog', async () => ((await pane()).includes('Approve') ? pane() : undefined));
    expect(screen).toContain('a local client wants to create a passkey for example.com as');
    expect(screen).toContain('alice@example.com');
    expect(screen).toMatch(/<Approve>\s+<Deny>/);
    await keys('Enter');
    expect(await c.result).toEqual({ ok: true });
  }, 60_000);

  it('deny: Deny answers CTAP2_ERR_OPERATION_DENIED', async () => {
    await start();
    const c = client(face, 'selection');
    await until('the dialog', async () => (await pane()).includes('select this authenticator'));
    await keys('Tab');
    await keys('Enter');
    expect(await c.result).toEqual({ ok: false, error: 'OPERATION_DENIED' });
  }, 60_000);

  it('timeout: nobody answers → CTAP2_ERR_USER_ACTION_TIMEOUT reaches the client, and the dialog is gone', async () => {
    await start();
    const c = client(face, 'make-credential');
    await until('the dialog', async () => (await pane()).includes('wants to create a passkey'));
    expect(await c.result).toEqual({ ok: false, error: 'USER_ACTION_TIMEOUT' });
    expect(await pane()).not.toContain('Approve');
  }, 60_000);

  it('cancel from the VM: CTAPHID_CANCEL answers KEEPALIVE_CANCEL and closes the dialog', async () => {
    await start();
    const c = client(face, 'selection');
    await until('the dialog', async () => (await pane()).includes('select this authenticator'));
    c.cancel();
    expect(await c.result).toEqual({ ok: false, error: 'KEEPALIVE_CANCEL' });
    await until('the dialog to close', async () => !(await pane()).includes('Approve'), 5_000);
  }, 60_000);
});

describe('pinentry-tty in a tmux pane', () => {
  const session = `kt-dialog-tty-${process.pid}`;
  const pane = async (): Promise<string> => (await run('tmux', ['capture-pane', '-p', '-t', session])).stdout;
  beforeAll(async () => {
    await run('tmux', ['new-session', '-d', '-s', session, '-x', '110', '-y', '30', 'sleep 600']);
  });
  afterAll(async () => {
    await run('tmux', ['kill-session', '-t', session]).catch(() => {});
  });

  it('asks on the terminal with the same words; a approves, d denies', async () => {
    for (const [key, outcome] of [['a', 'approved'], ['d', 'denied']] as const) {
      await run('tmux', ['respawn-pane', '-k', '-t', session, 'sleep 600']);
      const tty = (await run('tmux', ['display', '-p', '-t', session, '#{pane_tty}'])).stdout.trim();
      const env = { ...process.env, KEYTUNNEL_PINENTRY: 'pinentry-tty', GPG_TTY: tty, TERM: 'screen' };
      const presence = new DialogPresence({ backends: chooseDialogBackends({ env, platform: 'linux' }), timeoutMs: 20_000 });
      const answer = presence.confirm({ action: 'reset', origin: { gatewayName: 'build-vm\x1b[2J' } }, new AbortController().signal);
      const screen = await until('the prompt', async () => ((await pane()).includes('[ad]?') ? pane() : undefined));
      expect(screen).toContain('build-vm␛[2J wants to RESET the authenticator, deleting every credential.');
      await run('tmux', ['send-keys', '-t', session, key]);
      expect(await answer).toBe(outcome);
    }
  }, 60_000);

  it('several VMs at once: one dialog at a time, oldest first; a request whose VM went away never shows', async () => {
    await run('tmux', ['respawn-pane', '-k', '-t', session, 'sleep 600']);
    const tty = (await run('tmux', ['display', '-p', '-t', session, '#{pane_tty}'])).stdout.trim();
    const env = { ...process.env, KEYTUNNEL_PINENTRY: 'pinentry-tty', GPG_TTY: tty, TERM: 'screen' };
    const presence = new DialogPresence({ backends: chooseDialogBackends({ env, platform: 'linux' }), timeoutMs: 20_000 });
    const ask = (vm: string, signal: AbortSignal) =>
      presence.confirm({ action: 'getAssertion', rpId: `${vm}.example`, origin: { gatewayName: vm } }, signal);
    const gone = new AbortController();
    const first = ask('vm-one', new AbortController().signal);
    const second = ask('vm-two', gone.signal);
    const third = ask('vm-three', new AbortController().signal);
    await until('the first dialog', async () => (await pane()).includes('vm-one.example'));
    expect(presence.queued).toBe(3);
    gone.abort(); // vm-two disconnects while it waits its turn
    expect(await second).toBe('cancelled');
    await run('tmux', ['send-keys', '-t', session, 'a']);
    expect(await first).toBe('approved');
    await until('the third dialog', async () => (await pane()).includes('vm-three.example'));
    await run('tmux', ['send-keys', '-t', session, 'd']);
    expect(await third).toBe('denied');
    expect(await pane()).not.toContain('vm-two');
    expect(presence.queued).toBe(0);
  }, 60_000);
});

describe('under Xvfb: pinentry-gtk-2 and zenity answered with xdotool', () => {
  let xvfb: ChildProcess;
  let display: string;
  let dir: string;
  let close: (() => Promise<void>) | undefined;
  let face: LoopbackFace;
  const x = async (cmd: string, args: string[]) => (await run(cmd, args, { env: { ...process.env, DISPLAY: display } })).stdout;
  /** The dialog's X window, once it is mapped. */
  const dialogWindow = async (): Promise<string | undefined> => {
    const out = await x('xdotool', ['search', '--onlyvisible', '--name', 'keytunnel: approve']).catch(() => '');
    return out.trim().split('\n').filter(Boolean)[0];
  };
  const press = async (win: string, ...keys: string[]): Promise<void> => {
    await x('xdotool', ['windowactivate', '--sync', win]).catch(() => x('xdotool', ['windowfocus', '--sync', win]));
    for (const k of keys) {
      await x('xdotool', ['key', '--clearmodifiers', k]);
      await sleep(150);
    }
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kt-dialog-x-'));
    let n = 100 + (process.pid % 400);
    while (existsSync(`/tmp/.X11-unix/X${n}`) || existsSync(`/tmp/.X${n}-lock`)) n++;
    display = `:${n}`;
    xvfb = spawn('Xvfb', [display, '-screen', '0', '1024x600x24', '-nolisten', 'tcp'], { stdio: 'ignore' });
    await until('Xvfb', async () => existsSync(`/tmp/.X11-unix/X${n}`));
  });
  afterAll(async () => {
    await close?.();
    xvfb?.kill();
    await rm(dir, { recursive: true, force: true });
  });

  const start = async (backends: DialogBackend[]): Promise<void> => {
    await close?.();
    ({ face, close } = await chain(backends));
  };
  const gtk2 = (): DialogBackend[] => chooseDialogBackends({ env: { ...process.env, DISPLAY: display, KEYTUNNEL_PINENTRY: 'pinentry-gtk-2' }, platform: 'linux' });

  it('pinentry-gtk-2: a request from a VM, as the user sees it (screenshot); Return on the focused Deny denies', async () => {
    const presence = new DialogPresence({ backends: gtk2(), timeoutMs: 30_000 });
    const answer = presence.confirm(
      {
        action: 'getAssertion',
        rpId: 'login.microsoft.com',
        userName: 'alice@contoso.com',
        origin: { gatewayName: 'customer-a', gatewayFingerprint: '3F:A1:9C:47:0B:D2:6E:81:55:C3:09:7A:E4:12:B8:6D' },
      },
      new AbortController().signal,
    );
    const win = await until('the pinentry-gtk-2 window', dialogWindow);
    await sleep(700); // drawn
    const shot = join(dir, 'approval-dialog-pinentry-gtk2.png');
    await x('import', ['-window', 'root', '-crop', '640x180+192+210', '+repage', shot]);
    const png = await readFile(shot);
    expect(png.subarray(1, 4).toString('latin1')).toBe('PNG');
    expect(png.length).toBeGreaterThan(5_000); // a drawn dialog, not an empty screen
    if (process.env['KEYTUNNEL_SCREENSHOT_DIR']) await copyFile(shot, join(process.env['KEYTUNNEL_SCREENSHOT_DIR'], 'approval-dialog-pinentry-gtk2.png'));
    await press(win, 'Return');
    expect(await answer).toBe('denied');
  }, 60_000);

  it('pinentry-gtk-2: Approve (Tab from the focused Deny, then Return) creates the credential', async () => {
    await start(gtk2());
    const c = client(face, 'make-credential');
    await press(await until('the pinentry-gtk-2 window', dialogWindow), 'Tab', 'Return');
    expect(await c.result).toEqual({ ok: true });
    await until('the window to close', async () => (await dialogWindow()) === undefined, 5_000);
  }, 60_000);

  it('pinentry-gtk-2: Return on the focused Deny denies; no answer times out; CTAPHID_CANCEL closes it', async () => {
    await start(gtk2());
    let c = client(face, 'selection');
    await press(await until('the window', dialogWindow), 'Return');
    expect(await c.result).toEqual({ ok: false, error: 'OPERATION_DENIED' });
    await until('the window to close', async () => (await dialogWindow()) === undefined, 5_000);

    c = client(face, 'selection');
    await until('the window', dialogWindow);
    expect(await c.result).toEqual({ ok: false, error: 'USER_ACTION_TIMEOUT' });
    expect(await dialogWindow()).toBeUndefined();

    c = client(face, 'selection');
    await until('the window', dialogWindow);
    c.cancel();
    expect(await c.result).toEqual({ ok: false, error: 'KEEPALIVE_CANCEL' });
    await until('the window to close', async () => (await dialogWindow()) === undefined, 5_000);
  }, 90_000);

  it('zenity: approve, deny, timeout and cancel', async () => {
    await start([zenityBackend('zenity', { ...process.env, DISPLAY: display })]);
    let c = client(face, 'make-credential');
    await press(await until('the zenity window', dialogWindow), 'Tab', 'Return'); // --default-cancel: Tab to Approve
    expect(await c.result).toEqual({ ok: true });

    await until('the window to close', async () => (await dialogWindow()) === undefined, 5_000);
    c = client(face, 'selection');
    await press(await until('the window', dialogWindow), 'Return');
    expect(await c.result).toEqual({ ok: false, error: 'OPERATION_DENIED' });

    await until('the window to close', async () => (await dialogWindow()) === undefined, 5_000);
    c = client(face, 'selection');
    await until('the window', dialogWindow);
    expect(await c.result).toEqual({ ok: false, error: 'USER_ACTION_TIMEOUT' });

    c = client(face, 'selection');
    await until('the window', dialogWindow);
    c.cancel();
    expect(await c.result).toEqual({ ok: false, error: 'KEEPALIVE_CANCEL' });
    await until('the window to close', async () => (await dialogWindow()) === undefined, 5_000);
  }, 90_000);
});
