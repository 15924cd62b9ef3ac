/**
 * A real browser through the whole relay: the agent runs on the HOST (`keytunnel agent --soft --listen
 * 127.0.0.1:P`, its per-gateway policy set with `keytunnel trust add … --allow-rp`), the gateway runs in the qemu
 * guest (`keytunnel gateway --hid uhid --connect 10.0.2.2:P`), and headless Chromium in the guest registers and
 * signs in on the sample relying party (test/browser/), which verifies both with @simplewebauthn/server.
 *
 * One boot, two agents, one gateway after the other:
 *   - "allowed": the agent's policy for this gateway allows `localhost` → create() and get() verify, and the
 *     agent's audit log (`keytunnel audit --json`) shows both ceremonies under the gateway's policy name;
 *   - "refused": the allow-list names only example.com → the agent answers CTAP2_ERR_OPERATION_DENIED at once and
 *     the audit log records the refusal. What the page sees depends on the browser's UI layer: Chrome fails the
 *     request at once but parks it on its error dialog until the user closes it (then NotAllowedError) — headless
 *     Chrome cannot close it, so there only the page's own AbortSignal settles the promise, and the test checks
 *     that Chrome got the refusal from its FIDO log; chromium-headless-shell (same engine, no dialog) rejects
 *     with NotAllowedError right away, and the page reports exactly that.
 * The gateways' identities are made on the host before boot, so each agent can trust its gateway up front.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditLine } from '../../cli/commands/audit.ts';
import { trustAdd } from '../../cli/commands/trust.ts';
import { generateIdentityPem, loadOrCreateIdentity, parseIdentityPem } from '../../tunnel/identity.ts';
import { CHROMIUM_PRELUDE, readVerdict } from '../browser/chromium.ts';
import type { RpVerdict } from '../browser/rp-server.ts';
import { CHECK_PRELUDE, checkPassed } from './checks.ts';
import { guestHookTimeout, REPO_ROOT, runInGuest, type GuestResult } from './harness.ts';

const BIN = join(REPO_ROOT, 'bin', 'keytunnel.js');
const PASSPHRASE = 'browser-tunnel-test-passphrase';
/** Two Chromium runs plus two gateways: ≈ 2 min on an idle machine, far more on a busy one. */
const GUEST_TIMEOUT_MS = 600_000;
/** Chrome holds a failed request on its error dialog; the page's watchdog ends it after this long. */
const REFUSED_CHROME_WATCHDOG_MS = 15_000;

interface HostAgent {
  readonly name: string;
  readonly stateDir: string;
  readonly fingerprint: string;
  readonly port: number;
  readonly process: ChildProcess;
  readonly log: string[];
}

/** Start `keytunnel agent --soft` on 127.0.0.1 (any free port) and wait for its "listening on" line. */
async function startHostAgent(name: string, stateDir: string, fingerprint: string): Promise<HostAgent> {
  const child = spawn(
    process.execPath,
    [BIN, 'agent', '--soft', '--approve', 'always', '--listen', '127.0.0.1:0', '--state-dir', stateDir, '--name', `laptop-${name}`],
    { env: { ...process.env, KEYTUNNEL_PASSPHRASE: PASSPHRASE, KEYTUNNEL_LOG_LEVEL: 'debug' }, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const log: string[] = [];
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`agent ${name} did not listen within 60 s:\n${log.join('\n')}`)), 60_000);
    createInterface({ input: child.stderr! }).on('line', (line) => {
      if (log.length < 2000) log.push(line);
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`agent ${name} exited with ${code}:\n${log.join('\n')}`));
    });
  });
  return { name, stateDir, fingerprint, port, process: child, log };
}

async function stopHostAgent(agent: HostAgent | undefined): Promise<void> {
  if (!agent || agent.process.exitCode !== null) return;
  const exited = new Promise<void>((r) => agent.process.once('exit', () => r()));
  agent.process.kill('SIGTERM');
  await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
  if (agent.process.exitCode === null) agent.process.kill('SIGKILL');
}

function auditOf(stateDir: string): AuditLine[] {
  const r = spawnSync(process.execPath, [BIN, 'audit', '--json', '--state-dir', stateDir], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`keytunnel audit failed (${r.status}): ${r.stderr}`);
  return r.stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as AuditLine);
}

function guestScript(allowed: HostAgent, refused: HostAgent): string {
  return `${CHECK_PRELUDE}${CHROMIUM_PRELUDE}
wait_any_hidraw() { i=0; while ! ls /dev/hidraw* >/dev/null 2>&1; do i=$((i+1)); [ $i -ge $1 ] && return 1; sleep 0.1; done; }
wait_no_hidraw() { i=0; while ls /dev/hidraw* >/dev/null 2>&1; do i=$((i+1)); [ $i -ge $1 ] && return 1; sleep 0.1; done; }
gateway() {  # NAME AGENT_PORT AGENT_FINGERPRINT
  mkdir -p "/tmp/gw-$1" && cp "gw-$1.pem" "/tmp/gw-$1/identity.pem" && chmod 600 "/tmp/gw-$1/identity.pem"
  node "$R/bin/keytunnel.js" gateway --hid uhid --connect "10.0.2.2:$2" --trust "$3" --state-dir "/tmp/gw-$1" --name "$1" --log-level debug > "gateway-$1.log" 2>&1 &
  GW=$!
}
stop_gateway() { kill -TERM $GW; wait $GW; echo "[$1] gateway exited with $?"; }

gateway allowed ${allowed.port} ${allowed.fingerprint}
check allowed-device wait_any_hidraw 1500
ceremony allowed 8081
stop_gateway allowed
check allowed-device-removed wait_no_hidraw 300

gateway refused ${refused.port} ${refused.fingerprint}
check refused-device wait_any_hidraw 1500
ceremony refused-chrome 8082 chromium ${REFUSED_CHROME_WATCHDOG_MS}
ceremony refused 8083 shell
stop_gateway refused
for g in allowed refused; do echo "--- gateway-$g.log"; cut -c1-400 "gateway-$g.log" | tail -30; done
`;
}

describe('Chromium in the guest through the tunnel (agent on the host, gateway in the guest)', () => {
  const dirs: string[] = [];
  const agents: HostAgent[] = [];
  let r: GuestResult | undefined;
  const verdicts: Record<string, RpVerdict | undefined> = {};
  let allowed: HostAgent;
  let refused: HostAgent;

  beforeAll(async () => {
    const gateways: Record<string, string> = {};
    const gatewayFp: Record<string, string> = {};
    for (const name of ['allowed', 'refused']) {
      gateways[`gw-${name}.pem`] = await generateIdentityPem();
      gatewayFp[name] = parseIdentityPem(gateways[`gw-${name}.pem`]!, name).fingerprint;
    }
    const agentFor = async (name: string, allowRp: string): Promise<HostAgent> => {
      const dir = mkdtempSync(join(tmpdir(), `kt-browser-agent-${name}-`));
      dirs.push(dir);
      const { identity } = await loadOrCreateIdentity(dir);
      await trustAdd({ fingerprint: gatewayFp[name]!, name: `vm-${name}`, 'allow-rp': [allowRp], 'state-dir': dir }, () => {});
      const agent = await startHostAgent(name, dir, identity.fingerprint);
      agents.push(agent);
      return agent;
    };
    allowed = await agentFor('allowed', 'localhost');
    refused = await agentFor('refused', 'example.com');
    r = await runInGuest(guestScript(allowed, refused), { timeoutMs: GUEST_TIMEOUT_MS, keepShare: true, files: gateways });
    for (const name of ['allowed', 'refused-chrome', 'refused']) {
      try {
        verdicts[name] = readVerdict(r.share, name);
      } catch {
        verdicts[name] = undefined;
      }
    }
    // Let the agents write their last audit lines, then stop them.
    for (const a of agents) await stopHostAgent(a);
  }, guestHookTimeout(GUEST_TIMEOUT_MS) + 120_000);

  afterAll(async () => {
    for (const a of agents) await stopHostAgent(a);
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
    if (r && r.code === 0) rmSync(r.share, { recursive: true, force: true });
  });

  const explain = (name?: string): string =>
    `verdict ${JSON.stringify(name ? verdicts[name] : verdicts)}\nagent logs:\n${agents
      .map((a) => `[${a.name}]\n${a.log.slice(-40).join('\n')}`)
      .join('\n')}\nguest console:\n${r?.console}`;
  const verdict = (name: string): RpVerdict => {
    const v = verdicts[name];
    if (!v) throw new Error(`no verdict from the relying party for "${name}"; ${explain()}`);
    return v;
  };

  describe('allowed: policy allows localhost for this gateway', () => {
    it("the agent's soft authenticator appears in the guest as a hidraw device", () => checkPassed(r, 'allowed-device'));

    it('create() and get() succeed; the relying party verifies both', () => {
      const v = verdict('allowed');
      expect(v.registration?.verified, explain('allowed')).toBe(true);
      expect(v.registration?.aaguid).toBe('70829c58-064f-4078-b3c7-8dc3b4c185b1');
      expect(v.registration?.clientData?.type).toBe('webauthn.create');
      expect(v.authentication?.verified, explain('allowed')).toBe(true);
      expect(v.authentication?.clientData?.type).toBe('webauthn.get');
      expect(v.authentication?.clientData?.origin).toBe('http://localhost:8081');
      expect(v.clientError).toBeUndefined();
      expect(v.done).toEqual({ ok: true });
    });

    it("the agent's audit log shows both ceremonies under the gateway's name", () => {
      const lines = auditOf(allowed.stateDir);
      const ours = lines.filter((l) => l.gatewayName === 'vm-allowed');
      const make = ours.filter((l) => l.command === 'makeCredential' && l.rpId === 'localhost' && l.decision === 'allowed' && l.status === '0x00');
      const get = ours.filter((l) => l.command === 'getAssertion' && l.rpId === 'localhost' && l.decision === 'allowed' && l.status === '0x00');
      expect(make.length, `${JSON.stringify(lines, null, 1)}\n${explain('allowed')}`).toBeGreaterThanOrEqual(1);
      expect(get.length, JSON.stringify(lines, null, 1)).toBeGreaterThanOrEqual(1);
      expect(lines.every((l) => l.gatewayName === 'vm-allowed')).toBe(true);
    });

    it('stopping the gateway removes the device', () => checkPassed(r, 'allowed-device-removed'));
  });

  describe('refused: the allow-list excludes localhost', () => {
    it('the device still appears (the policy refuses requests, not the gateway)', () => checkPassed(r, 'refused-device'));

    it('chromium-headless-shell: the page gets NotAllowedError from create(), not a hang', () => {
      const v = verdict('refused');
      expect(v.clientError, explain('refused')).toEqual(expect.objectContaining({ phase: 'registration', name: 'NotAllowedError' }));
      expect(v.registration).toBeUndefined();
      expect(v.authentication).toBeUndefined();
      expect(v.deadline).toBeUndefined();
    });

    it('Chrome: gets CTAP2_ERR_OPERATION_DENIED and fails the request; no credential reaches the page', () => {
      const v = verdict('refused-chrome');
      expect(v.registration, explain('refused-chrome')).toBeUndefined();
      // Chrome's error dialog holds the failed request, so the page's own watchdog is what settles it here.
      expect(v.clientError).toEqual(expect.objectContaining({ phase: 'registration', name: 'AbortError' }));
      const chromeLog = readFileSync(join(r!.share, 'chrome-refused-chrome.log'), 'utf8');
      expect(chromeLog, explain('refused-chrome')).toMatch(/CTAP2 error code 0x27 \(kCtap2ErrOperationDenied\)/);
      expect(chromeLog).toMatch(/Failing make credential request/);
    });

    it('the audit log records the refusal, and nothing was allowed for localhost', () => {
      const lines = auditOf(refused.stateDir);
      const refusals = lines.filter(
        (l) => l.gatewayName === 'vm-refused' && l.command === 'makeCredential' && l.rpId === 'localhost' && l.decision === 'refused-by-policy',
      );
      // One refusal per browser (Chrome, then the headless shell).
      expect(refusals.length, `${JSON.stringify(lines, null, 1)}\n${explain('refused')}`).toBeGreaterThanOrEqual(2);
      expect(lines.filter((l) => l.rpId === 'localhost' && l.decision === 'allowed')).toEqual([]);
    });
  });
});
