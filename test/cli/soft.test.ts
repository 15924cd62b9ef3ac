/**
 * `keytunnel soft` as a real child process (bin/keytunnel.js): it logs where it listens (JSON on a non-TTY
 * stderr, nothing on stdout), answers CTAPHID INIT and getInfo on the loopback face, and on SIGTERM exits 0
 * with the store flushed and the lock released. Start-up errors are clear and exit 1: --approve prompt
 * without a TTY, no passphrase source, a wrong passphrase, a bad --hid. --help explains every flag.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const BIN = fileURLToPath(new URL('../../bin/keytunnel.js', import.meta.url));
const PASS = 'cli test passphrase';
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kt-soft-cli-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface Exit {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(args: string[], env: Record<string, string | undefined> = {}): { child: ChildProcessWithoutNullStreams; done: Promise<Exit> } {
  const childEnv: Record<string, string | undefined> = { ...process.env, KEYTUNNEL_LOG_LEVEL: undefined, ...env };
  for (const k of Object.keys(childEnv)) if (childEnv[k] === undefined) delete childEnv[k];
  const child = spawn(process.execPath, [BIN, ...args], { env: childEnv as NodeJS.ProcessEnv, stdio: 'pipe' });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const done = new Promise<Exit>((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })));
  return { child, done };
}

/** Resolves with the first JSON log line matching `pred`. */
function waitForLog(child: ChildProcessWithoutNullStreams, pred: (entry: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const onData = (d: Buffer | string): void => {
      buf += d.toString();
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      for (const line of lines) {
        let entry: Record<string, unknown>;
        try {
          entry = JSON.parse(line) as Record<string, unknown>;
        } catch {
          continue;
        }
        if (pred(entry)) {
          child.stderr.off('data', onData);
          resolve(entry);
          return;
        }
      }
    };
    child.stderr.on('data', onData);
    child.once('close', () => reject(new Error('exited before the expected log line')));
  });
}

/** A bare CTAPHID exchange over the loopback face: INIT on the broadcast channel, then CBOR getInfo. */
async function initAndGetInfo(port: number): Promise<{ cid: number; status: number; length: number }> {
  const socket = net.connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const reports: Buffer[] = [];
  let pending = Buffer.alloc(0);
  let wake: (() => void) | undefined;
  socket.on('data', (d: Buffer) => {
    pending = Buffer.concat([pending, d]);
    while (pending.length >= 64) {
      reports.push(pending.subarray(0, 64));
      pending = pending.subarray(64);
    }
    wake?.();
  });
  const next = async (): Promise<Buffer> => {
    while (reports.length === 0) await new Promise<void>((resolve) => (wake = resolve));
    return reports.shift() as Buffer;
  };
  const send = (cid: number, cmd: number, payload: Buffer): void => {
    const r = Buffer.alloc(64);
    r.writeUInt32BE(cid, 0);
    r[4] = 0x80 | cmd;
    r.writeUInt16BE(payload.length, 5);
    payload.copy(r, 7);
    socket.write(r);
  };
  try {
    const nonce = randomBytes(8);
    send(0xffffffff, 0x06, nonce);
    const init = await next();
    expect(init[4]).toBe(0x86);
    expect(init.subarray(7, 15).equals(nonce)).toBe(true);
    const cid = init.readUInt32BE(15);
    send(cid, 0x10, Buffer.from([0x04])); // CTAPHID_CBOR authenticatorGetInfo
    let first = await next();
    while (first[4] === 0xbb) first = await next(); // KEEPALIVE
    expect(first.readUInt32BE(0)).toBe(cid);
    expect(first[4]).toBe(0x90);
    return { cid, status: first[7], length: first.readUInt16BE(5) };
  } finally {
    socket.destroy();
  }
}

describe('keytunnel soft (child process)', () => {
  it('listens, answers getInfo, and stops cleanly on SIGTERM with the store flushed', async () => {
    const stateDir = join(dir, 'ok');
    const { child, done } = run(
      ['soft', '--hid', 'loopback:127.0.0.1:0', '--approve', 'always', '--state-dir', stateDir, '--profile', 'cli'],
      { KEYTUNNEL_PASSPHRASE: PASS },
    );
    const warning = waitForLog(child, (e) => typeof e.msg === 'string' && e.msg.startsWith('--approve always'));
    const listening = await waitForLog(child, (e) => typeof e.msg === 'string' && e.msg.includes('listening on'));
    expect((await warning).level).toBe(40);
    const hid = String(listening.hid);
    expect(hid).toMatch(/^loopback:127\.0\.0\.1:\d+$/);
    expect(listening.msg).toBe(`keytunnel soft: listening on ${hid}`);
    expect(listening.store).toBe(join(stateDir, 'soft-cli.kts'));
    const port = Number(hid.split(':')[2]);
    const info = await initAndGetInfo(port);
    expect(info.status).toBe(0);
    expect(info.length).toBeGreaterThan(20);
    child.kill('SIGTERM');
    const exit = await done;
    expect(exit.code).toBe(0);
    expect(exit.stdout).toBe(''); // logs never go to stdout
    expect(exit.stderr).toContain('"msg":"stopped"');
    expect(exit.stderr).not.toContain(PASS);
    const files = await readdir(stateDir);
    expect(files.sort()).toEqual(['soft-cli.kts']); // state written, lock released, no temp files
  }, 30_000);

  it('refuses a wrong passphrase for an existing store', async () => {
    const { done } = run(['soft', '--hid', 'loopback:127.0.0.1:0', '--approve', 'always', '--state-dir', join(dir, 'ok'), '--profile', 'cli'], {
      KEYTUNNEL_PASSPHRASE: 'not the passphrase',
    });
    const exit = await done;
    expect(exit.code).toBe(1);
    expect(exit.stderr).toContain(`wrong passphrase or corrupted store ${join(dir, 'ok', 'soft-cli.kts')}`);
  }, 30_000);

  it('--approve prompt without a TTY on stdin is a clear start-up error', async () => {
    const { done } = run(['soft', '--hid', 'loopback:127.0.0.1:0', '--approve', 'prompt', '--state-dir', join(dir, 'p')], { KEYTUNNEL_PASSPHRASE: PASS });
    const exit = await done;
    expect(exit.code).toBe(1);
    expect(exit.stderr).toMatch(/--approve prompt needs an interactive terminal on stdin, and stdin is not a TTY/);
  }, 30_000);

  it('without --approve and without a TTY it asks in a dialog; with no display either, a clear start-up error', async () => {
    const noDisplay = { KEYTUNNEL_PASSPHRASE: PASS, DISPLAY: undefined, WAYLAND_DISPLAY: undefined, KEYTUNNEL_PINENTRY: undefined };
    const exit = await run(['soft', '--hid', 'loopback:127.0.0.1:0', '--state-dir', join(dir, 'd')], noDisplay).done;
    expect(exit.code).toBe(1);
    expect(exit.stderr).toMatch(/--approve dialog: no dialog program can be used here/);
  }, 30_000);

  it('without KEYTUNNEL_PASSPHRASE and without a terminal, names the variable', async () => {
    const { done } = run(['soft', '--hid', 'loopback:127.0.0.1:0', '--approve', 'always', '--state-dir', join(dir, 'n')], {
      KEYTUNNEL_PASSPHRASE: undefined,
    });
    const exit = await done;
    expect(exit.code).toBe(1);
    expect(exit.stderr).toContain('set KEYTUNNEL_PASSPHRASE');
  }, 30_000);

  it('rejects a bad --hid and a bad --profile with the reason', async () => {
    const bad = await run(['soft', '--hid', 'loopback:0.0.0.0:80', '--approve', 'always', '--state-dir', dir], {
      KEYTUNNEL_PASSPHRASE: PASS,
    }).done;
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('refusing to listen on 0.0.0.0');
    const profile = await run(['soft', '--hid', 'uhid', '--approve', 'always', '--state-dir', dir, '--profile', '../x'], {
      KEYTUNNEL_PASSPHRASE: PASS,
    }).done;
    expect(profile.code).toBe(1);
    expect(profile.stderr).toContain('invalid profile name');
  }, 30_000);

  it('--help explains every flag', async () => {
    const exit = await run(['soft', '--help']).done;
    expect(exit.code).toBe(0);
    for (const flag of ['--hid', '--state-dir', '--profile', '--approve', '--log-level', 'KEYTUNNEL_PASSPHRASE', 'loopback:HOST:PORT', 'usbip']) {
      expect(exit.stdout).toContain(flag);
    }
  }, 30_000);
});
