/**
 * Issue 17: the soft authenticator on Windows. The project's own code (bin/keytunnel.js running the dist/
 * bundle) is run by the official Windows node.exe of the host's Node version under Wine, which implements the
 * Win32 file API as Windows does (a directory cannot be fsync'd: EPERM). Each test drives real ceremonies from
 * Linux with python-fido2 (test/interop/fido2_loopback.py):
 *
 *   1. `keytunnel soft --hid loopback:…` with the default state directory (%APPDATA%\keytunnel): creates its
 *      encrypted store, serves the whole interop suite, stops cleanly on Ctrl+C (SIGINT), and a second start
 *      proves the PIN and the credentials were saved (the same script's --persisted check).
 *   2. `keytunnel agent --soft` under Wine serving a Linux `keytunnel gateway --hid loopback:…` through the
 *      TLS tunnel (pinned fingerprints both ways), the interop suite run against the gateway's loopback face.
 *   3. `keytunnel trust add … --allow-rp` writes the agent's per-gateway policy file (same atomic-write rule).
 *
 * Wine and node.exe are provisioned by test/windows/wine.ts (cached in ~/.cache/keytunnel/wine; the first run
 * takes about a minute more).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadOrCreateIdentity } from '../../tunnel/identity.ts';
import { runFido2Script } from '../interop/run-fido2-script.ts';
import { BIN, ensureFreshBundle } from './bundle.ts';
import { ensureWine, spawnWine, stopWine, toWinPath, waitForWine, type WineEnv, type WineProcess } from './wine.ts';

const PASS = 'windows test passphrase';
const PIN = '567890'; // the interop script's PIN after its change-PIN step
const INTEROP_CHECKS = 14;

let wine: WineEnv;
let logDir: string;
const cleanups: (() => Promise<void>)[] = [];
const linuxChildren: ChildProcess[] = [];

beforeAll(async () => {
  await ensureFreshBundle();
  wine = await ensureWine();
  logDir = await mkdtemp(join(tmpdir(), 'kt-wine-logs-'));
}, 600_000);

afterAll(async () => {
  for (const c of linuxChildren) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  if (wine) await stopWine(wine);
  for (const c of cleanups.reverse()) await c();
  if (logDir) await rm(logDir, { recursive: true, force: true });
}, 60_000);

/** `keytunnel <args>` run by Windows node.exe under Wine. */
function keytunnelOnWindows(name: string, args: string[], env: NodeJS.ProcessEnv = {}): WineProcess {
  return spawnWine(wine, wine.nodeExe, [toWinPath(BIN), ...args], {
    logDir,
    name,
    env: { KEYTUNNEL_PASSPHRASE: PASS, KEYTUNNEL_LOG_LEVEL: 'info', ...env },
  });
}

/** The JSON log lines (pino) of a process's stderr. */
function logLines(text: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const line of text.split(/\r?\n/)) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      /* a partly written last line */
    }
  }
  return out;
}

function logged(p: WineProcess, pattern: RegExp): RegExpExecArray | undefined {
  for (const entry of logLines(p.stderr())) {
    const m = typeof entry.msg === 'string' ? pattern.exec(entry.msg) : null;
    if (m) return m;
  }
  return undefined;
}

/** Ctrl+C: Node on Windows runs its SIGINT handler; the service stops cleanly and exits 0. */
async function stopWithCtrlC(p: WineProcess): Promise<void> {
  p.child.kill('SIGINT');
  const exit = await p.exited;
  expect(exit, p.stderr()).toEqual({ code: 0, signal: null });
  expect(p.stderr()).toContain('"msg":"stopped"');
}

describe('keytunnel on Windows (node.exe under Wine)', () => {
  it('soft: creates its store in %APPDATA%, serves python-fido2 from Linux, and keeps state across a restart', async () => {
    const profile = `wine-${randomBytes(4).toString('hex')}`;
    const storeLinux = join(wine.appData, 'keytunnel', `soft-${profile}.kts`);
    cleanups.push(() => rm(storeLinux, { force: true }));
    const args = ['soft', '--hid', 'loopback:127.0.0.1:0', '--approve', 'always', '--profile', profile];

    const first = keytunnelOnWindows('soft-1', args);
    const [, port] = await waitForWine(first, 'the soft authenticator to listen', () =>
      logged(first, /^keytunnel soft: listening on loopback:127\.0\.0\.1:(\d+)$/),
    );
    const created = logLines(first.stderr()).find((e) => e.msg === 'created a new soft authenticator');
    expect(created?.store).toBe(`${wine.appDataWin}\\keytunnel\\soft-${profile}.kts`);

    const run = await runFido2Script('127.0.0.1', Number(port));
    expect(run.summary.checks.filter((c) => !c.ok), run.stderr).toEqual([]);
    expect(run.summary).toMatchObject({ ok: true, passed: INTEROP_CHECKS, failed: 0 });
    await stopWithCtrlC(first);
    expect(first.stderr()).not.toContain(PASS);
    // State written, lock released, no temp file left behind.
    expect((await readdir(join(wine.appData, 'keytunnel'))).filter((n) => n.startsWith(`soft-${profile}.`))).toEqual([
      `soft-${profile}.kts`,
    ]);

    const second = keytunnelOnWindows('soft-2', args);
    const [, port2] = await waitForWine(second, 'the restarted soft authenticator', () =>
      logged(second, /^keytunnel soft: listening on loopback:127\.0\.0\.1:(\d+)$/),
    );
    const again = await runFido2Script('127.0.0.1', Number(port2), ['--persisted', PIN]);
    expect(again.summary.checks.filter((c) => !c.ok), again.stderr).toEqual([]);
    expect(again.summary.persisted).toEqual({ clientPin: true, existing: 2, users: ['alice@example.com', 'ed@example.com'] });
    await stopWithCtrlC(second);
  }, 300_000);

  it('agent --soft: serves a Linux gateway through the TLS tunnel; python-fido2 on the gateway face', async () => {
    const dirName = `keytunnel-test-${randomBytes(4).toString('hex')}`;
    const agentDirLinux = join(wine.appData, dirName);
    cleanups.push(() => rm(agentDirLinux, { recursive: true, force: true }));
    const gatewayDir = await mkdtemp(join(tmpdir(), 'kt-wine-gw-'));
    cleanups.push(() => rm(gatewayDir, { recursive: true, force: true }));
    const gatewayFp = (await loadOrCreateIdentity(gatewayDir)).identity.fingerprint;

    const agent = keytunnelOnWindows('agent', [
      'agent',
      '--soft',
      '--approve',
      'always',
      '--listen',
      '127.0.0.1:0',
      '--trust',
      gatewayFp,
      '--state-dir',
      `${wine.appDataWin}\\${dirName}`,
    ]);
    const [, port, agentFp] = await waitForWine(agent, 'the agent to listen', () =>
      logged(agent, /^keytunnel agent: listening on 127\.0\.0\.1:(\d+); this agent's fingerprint is ([0-9A-Fa-f:]+)$/),
    );

    const gateway = spawn(
      process.execPath,
      [BIN, 'gateway', '--hid', 'loopback:127.0.0.1:0', '--connect', `127.0.0.1:${port}`, '--trust', agentFp, '--state-dir', gatewayDir, '--name', 'linux-vm'],
      { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, KEYTUNNEL_LOG_LEVEL: 'info' } },
    );
    linuxChildren.push(gateway);
    let gatewayLog = '';
    gateway.stderr!.setEncoding('utf8').on('data', (d: string) => (gatewayLog += d));
    const gatewayExit = new Promise<number | null>((r) => gateway.once('exit', (code) => r(code)));
    const face = await waitForWine(agent, 'the gateway to show the virtual device', () =>
      /"face":"loopback:127\.0\.0\.1:(\d+)"/.exec(gatewayLog)?.[1],
    );

    const run = await runFido2Script('127.0.0.1', Number(face));
    expect(run.summary.checks.filter((c) => !c.ok), `${run.stderr}\n${gatewayLog}`).toEqual([]);
    expect(run.summary).toMatchObject({ ok: true, passed: INTEROP_CHECKS, failed: 0 });
    expect(agent.stderr()).toContain('linux-vm'); // the agent knows the gateway by the name it announced

    gateway.kill('SIGTERM');
    expect(await gatewayExit).toBe(0);
    await stopWithCtrlC(agent);
    // The agent's state on Windows: identity, the soft store; lock released, no temp files.
    const files = await readdir(agentDirLinux);
    expect(files).toEqual(expect.arrayContaining(['identity.pem', 'soft-default.kts']));
    expect(files.filter((n) => n.includes('.tmp-') || n.endsWith('.lock'))).toEqual([]);
  }, 300_000);

  it('trust add: writes the per-gateway policy file (gateways.json) on Windows', async () => {
    const dirName = `keytunnel-test-${randomBytes(4).toString('hex')}`;
    const dirLinux = join(wine.appData, dirName);
    cleanups.push(() => rm(dirLinux, { recursive: true, force: true }));
    const fp = 'ab'.repeat(32);
    const p = keytunnelOnWindows('trust', ['trust', 'add', fp, '--name', 'customer-a', '--allow-rp', 'example.com', '--state-dir', `${wine.appDataWin}\\${dirName}`]);
    const exit = await p.exited;
    expect(exit, p.stderr()).toEqual({ code: 0, signal: null });
    expect(p.stdout()).toMatch(/^trusted [0-9a-f:]{95} \(customer-a\)\r?\n  policy: allowRps example\.com; scope per-gateway; approve touch\r?\n$/);
    const policy = JSON.parse(await readFile(join(dirLinux, 'gateways.json'), 'utf8')) as { gateways: Record<string, { name: string; allowRps: string[] }> };
    expect(Object.values(policy.gateways)).toEqual([expect.objectContaining({ name: 'customer-a', allowRps: ['example.com'] })]);
    expect((await readdir(dirLinux)).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  }, 120_000);
});
