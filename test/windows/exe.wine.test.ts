/**
 * The Windows single executable (`keytunnel-win-x64.exe`, scripts/build-exe.mjs) under Wine (test/windows/wine.ts;
 * its own prefix, state in %APPDATA%):
 *   1. `--version` and `id`: prints version + commit, creates the identity in %APPDATA%\keytunnel, prints the
 *      same fingerprint again;
 *   2. `soft --hid loopback:127.0.0.1:0` passes the project's python-fido2 interop script run from Linux;
 *   3. in one qemu guest boot (test/vm/harness.ts), two Windows agents (`agent --soft`, each its own store):
 *      - agent A serves a gateway in the guest (`gateway --hid uhid --connect 10.0.2.2:P`): libfido2's tools
 *        register and assert through it (the Windows laptop path);
 *      - agent B is served by the Windows executable's `gateway --hid usbip:127.0.0.1:0` (the Windows-VM path),
 *        which the guest attaches with Linux `usbip attach` (vhci-hcd): libfido2's tools register and assert on
 *        that device — the Windows build's USB/IP server checked with a kernel client.
 * What Wine cannot show (usbip-win2, Windows' FIDO stack, Windows Hello, hidapi) stays listed in the README.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateIdentityPem, parseIdentityPem } from '../../tunnel/identity.ts';
import { runFido2Script } from '../interop/run-fido2-script.ts';
import { CHECK_PRELUDE, checkPassed, LIBFIDO2_CHECKS } from '../vm/checks.ts';
import { guestHookTimeout, REPO_ROOT, runInGuest, type GuestResult } from '../vm/harness.ts';
import { ensureWine, spawnWine, stopWine, type WineEnv, type WineProcess, waitForWine } from './wine.ts';

const PASS = 'exe wine test passphrase';
const INTEROP_CHECKS = 14;
const GUEST_TIMEOUT_MS = 600_000;
const version = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

let wine: WineEnv;
const work = mkdtempSync(join(tmpdir(), 'kt-exe-wine-'));
const logDir = join(work, 'logs');
const exe = join(work, 'exe', 'keytunnel-win-x64.exe');
const running: WineProcess[] = [];
const appDirs: string[] = [];

beforeAll(async () => {
  mkdirSync(logDir);
  execFileSync(process.execPath, [join(REPO_ROOT, 'scripts', 'build-exe.mjs'), '--only', 'win', '--out', join(work, 'exe')], {
    stdio: 'ignore',
    timeout: 300_000,
  });
  wine = await ensureWine({ prefixName: 'exe' });
}, 900_000);

afterAll(async () => {
  for (const p of running) if (p.child.exitCode === null) p.child.kill('SIGINT');
  if (wine) await stopWine(wine);
  for (const d of appDirs) rmSync(d, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
}, 60_000);

function exeOnWine(name: string, args: string[]): WineProcess {
  const p = spawnWine(wine, exe, args, { logDir, name, env: { KEYTUNNEL_PASSPHRASE: PASS, KEYTUNNEL_LOG_LEVEL: 'info' } });
  running.push(p);
  return p;
}

function logEntries(p: WineProcess): Record<string, unknown>[] {
  return p
    .stderr()
    .split(/\r?\n/)
    .filter((l) => l.startsWith('{'))
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
}

function logged(p: WineProcess, pattern: RegExp): RegExpExecArray | undefined {
  for (const e of logEntries(p)) {
    const m = typeof e.msg === 'string' ? pattern.exec(e.msg) : null;
    if (m) return m;
  }
  return undefined;
}

/** A fresh state directory in %APPDATA% (Linux path, Windows path). */
function appDataDir(tag: string): [string, string] {
  const name = `keytunnel-exe-${tag}-${randomBytes(4).toString('hex')}`;
  const linux = join(wine.appData, name);
  mkdirSync(linux, { recursive: true });
  appDirs.push(linux);
  return [linux, `${wine.appDataWin}\\${name}`];
}

async function startAgent(tag: string, trust: string): Promise<{ port: number; fingerprint: string; p: WineProcess }> {
  const [, dirWin] = appDataDir(`agent-${tag}`);
  const p = exeOnWine(`agent-${tag}`, ['agent', '--soft', '--approve', 'always', '--listen', '127.0.0.1:0', '--trust', trust, '--state-dir', dirWin]);
  const [, port, fingerprint] = await waitForWine(p, `agent ${tag} to listen`, () =>
    logged(p, /^keytunnel agent: listening on 127\.0\.0\.1:(\d+); this agent's fingerprint is ([0-9A-Fa-f:]+)$/),
  120_000);
  return { port: Number(port), fingerprint: fingerprint!, p };
}

describe('the Windows executable under Wine', () => {
  it('--version prints the version and source commit', async () => {
    const p = exeOnWine('version', ['--version']);
    expect((await p.exited).code, p.stderr()).toBe(0);
    expect(p.stdout().trim()).toMatch(new RegExp(`^${version.replaceAll('.', '\\.')} \\(commit [0-9a-z.-]+, sea\\)$`));
  }, 120_000);

  it('id: creates the identity in %APPDATA%\\keytunnel and prints its fingerprint (the same one again)', async () => {
    const identity = join(wine.appData, 'keytunnel', 'identity.pem');
    rmSync(identity, { force: true });
    const first = exeOnWine('id-1', ['id']);
    expect((await first.exited).code, first.stderr()).toBe(0);
    const fingerprint = first.stdout().split(/\r?\n/)[0];
    expect(fingerprint).toMatch(/^[0-9a-f]{2}(:[0-9a-f]{2}){31}$/);
    expect(existsSync(identity)).toBe(true);
    expect(parseIdentityPem(readFileSync(identity, 'utf8'), 'id').fingerprint).toBe(fingerprint);
    const second = exeOnWine('id-2', ['id']);
    expect((await second.exited).code, second.stderr()).toBe(0);
    expect(second.stdout().split(/\r?\n/)[0]).toBe(fingerprint);
  }, 120_000);

  it('soft --hid loopback: passes the python-fido2 interop script run from Linux; Ctrl+C stops it cleanly', async () => {
    const [, dirWin] = appDataDir('soft');
    const p = exeOnWine('soft', ['soft', '--hid', 'loopback:127.0.0.1:0', '--approve', 'always', '--state-dir', dirWin]);
    const [, port] = await waitForWine(p, 'the soft authenticator to listen', () =>
      logged(p, /^keytunnel soft: listening on loopback:127\.0\.0\.1:(\d+)$/),
    120_000);
    const run = await runFido2Script('127.0.0.1', Number(port));
    expect(run.summary.checks.filter((c) => !c.ok), run.stderr).toEqual([]);
    expect(run.summary).toMatchObject({ ok: true, passed: INTEROP_CHECKS, failed: 0 });
    p.child.kill('SIGINT');
    expect(await p.exited, p.stderr()).toEqual({ code: 0, signal: null });
  }, 300_000);

  describe('with the qemu guest: agent --soft serving a guest gateway, and gateway --hid usbip attached by the guest', () => {
    let r: GuestResult | undefined;
    let agentA: Awaited<ReturnType<typeof startAgent>>;
    let agentB: Awaited<ReturnType<typeof startAgent>>;
    let gateway: WineProcess;

    beforeAll(async () => {
      const guestGwPem = await generateIdentityPem();
      const wineGwPem = await generateIdentityPem();
      agentA = await startAgent('a', parseIdentityPem(guestGwPem, 'guest').fingerprint);
      agentB = await startAgent('b', parseIdentityPem(wineGwPem, 'wine').fingerprint);
      const [gwLinux, gwWin] = appDataDir('gateway');
      writeFileSync(join(gwLinux, 'identity.pem'), wineGwPem, { mode: 0o600 });
      gateway = exeOnWine('gateway', [
        'gateway', '--hid', 'usbip:127.0.0.1:0', '--connect', `127.0.0.1:${agentB.port}`, '--trust', agentB.fingerprint,
        '--state-dir', gwWin, '--name', 'wine-vm',
      ]);
      const usbip = await waitForWine(gateway, 'the usbip server', () => {
        const e = logEntries(gateway).find((x) => x.msg === 'usbip server listening');
        return typeof e?.port === 'number' ? e.port : undefined;
      }, 120_000);
      const script = `${CHECK_PRELUDE}
. "$F/libfido2_checks.sh"
mkdir -p gw && cp guest-gw.pem gw/identity.pem && chmod 600 gw/identity.pem
node "$R/bin/keytunnel.js" gateway --hid uhid --connect 10.0.2.2:${agentA.port} --trust ${agentA.fingerprint} --state-dir "$PWD/gw" --name guest > gateway.log 2>&1 &
GW=$!
check win-agent-device wait_for /dev/hidraw0 1500
libfido2_checks /dev/hidraw0 winagent
kill -TERM $GW; wait $GW; echo "guest gateway exit $?"
i=0; while [ -e /dev/hidraw0 ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
check win-usbip-attach usbip --tcp-port ${usbip} attach -r 10.0.2.2 -b 1-1
check win-usbip-device wait_for /dev/hidraw0 600
libfido2_checks /dev/hidraw0 winusbip
usbip detach -p 0 || true
echo "--- gateway.log"; cut -c1-300 gateway.log | tail -20
`;
      r = await runInGuest(script, { timeoutMs: GUEST_TIMEOUT_MS, keepShare: true, files: { 'guest-gw.pem': guestGwPem } });
    }, guestHookTimeout(GUEST_TIMEOUT_MS) + 300_000);

    afterAll(() => {
      if (r && r.code === 0) rmSync(r.share, { recursive: true, force: true });
    });

    const explain = (): string =>
      ['agent-a', 'agent-b', 'gateway']
        .map((n, i) => `--- ${n}\n${[agentA?.p, agentB?.p, gateway][i]?.stderr().slice(-3000) ?? ''}`)
        .join('\n');

    it('agent --soft (Windows) serves the guest gateway: libfido2 registers and asserts through the tunnel', () => {
      checkPassed(r, 'win-agent-device');
      for (const name of LIBFIDO2_CHECKS) checkPassed(r, `winagent-${name}`);
      expect([...(r?.console ?? '').matchAll(/^CHECK winagent-\S+ FAIL.*$/gm)].map((m) => m[0]), explain()).toEqual([]);
    });

    it('gateway --hid usbip (Windows) is attached by the guest kernel: libfido2 registers and asserts on it', () => {
      checkPassed(r, 'win-usbip-attach');
      checkPassed(r, 'win-usbip-device');
      for (const name of LIBFIDO2_CHECKS) checkPassed(r, `winusbip-${name}`);
      expect([...(r?.console ?? '').matchAll(/^CHECK winusbip-\S+ FAIL.*$/gm)].map((m) => m[0]), explain()).toEqual([]);
    });

    it('the Windows processes stop cleanly on Ctrl+C', async () => {
      for (const p of [gateway, agentA.p, agentB.p]) {
        p.child.kill('SIGINT');
        expect(await p.exited, p.stderr().slice(-2000)).toEqual({ code: 0, signal: null });
      }
    }, 60_000);
  });
});
