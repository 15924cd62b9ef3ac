/**
 * The tunnel over the RDP connection itself, end to end on a real RDP stack (issue 18): xrdp is the VM's RDP server,
 * xfreerdp with keytunnel's FreeRDP 2 plugin (built and installed by `install-rdp-plugin`'s code) is the laptop's
 * client. First a client without the plugin: the gateway's open is refused within milliseconds and it says why.
 * Then with the plugin:
 *   laptop:  keytunnel agent --soft --listen 127.0.0.1:A  (in this process)  ←TCP←  plugin in xfreerdp /dvc:keytunnel,A
 *   VM:      keytunnel gateway --connect rdp:keytunnel --hid loopback:127.0.0.1:P  (inside the xrdp session)
 *   client:  python-fido2 through the loopback face, verified by python-fido2's Fido2Server (the RP)
 * The gateway is given no TCP address of the agent: its only way there is the RDP connection. Then the RDP client
 * disconnects (the agent loses the gateway: the tunnel really rode RDP), reconnects, the gateway reopens the channel,
 * and the next ceremony succeeds. The agent's audit log shows both ceremonies under the gateway's trusted name.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUDIT_FILE } from '../../agent/policy/audit.ts';
import { startAgentService, type AgentService } from '../../cli/commands/agent.ts';
import { readAudit } from '../../cli/commands/audit.ts';
import { installRdpPlugin, planRdpPlugin } from '../../cli/commands/install-rdp-plugin.ts';
import { loadOrCreateIdentity } from '../../tunnel/identity.ts';
import { addToTrustFile } from '../../tunnel/trust.ts';
import { startDelayProxy } from '../../scripts/delay-proxy.ts';
import { freePort, XrdpLab } from './xrdp-lab.ts';

const BIN = fileURLToPath(new URL('../../bin/keytunnel.js', import.meta.url));
const CEREMONY = fileURLToPath(new URL('./fido2_ceremony.py', import.meta.url));
const TRUSTED_NAME = 'rdp-test-vm';
const RP_ID = 'rdp.example.com';

let lab: XrdpLab;
let agent: AgentService;
let agentDir: string;
let gatewayFp: string;
let facePort: number;

async function waitFor(what: string, probe: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}\n--- session log ---\n${await lab.sessionLog()}\n--- xfreerdp ---\n${lab.clientOutput}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface CeremonyResult {
  readonly ok: boolean;
  readonly error?: string;
  readonly credentialId?: string;
  readonly signCount?: number;
  readonly makeCredentialMs?: number;
  readonly getAssertionMs?: number;
}

function ceremony(): Promise<CeremonyResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('/usr/bin/python3', [CEREMONY, `127.0.0.1:${facePort}`, RP_ID], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.once('error', reject);
    child.once('close', () => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(out.trim().split('\n').pop() ?? '') as CeremonyResult);
      } catch {
        reject(new Error(`the ceremony printed no result\nstdout: ${out}\nstderr: ${err}`));
      }
    });
  });
}

const agentConnected = (): boolean => agent.core.gateways().some((g) => g.fingerprint === gatewayFp);

beforeAll(async () => {
  lab = await XrdpLab.create();
  // The laptop side: the plugin where FreeRDP 2 loads it, and the agent.
  await installRdpPlugin(await planRdpPlugin());
  agentDir = await mkdtemp(join(tmpdir(), 'kt-rdp-agent-'));
  const gatewayDir = join(lab.workDir, 'gateway-state');
  const agentFp = (await loadOrCreateIdentity(agentDir)).identity.fingerprint;
  gatewayFp = (await loadOrCreateIdentity(gatewayDir)).identity.fingerprint;
  await addToTrustFile(agentDir, gatewayFp, TRUSTED_NAME);
  agent = await startAgentService(
    { soft: true, hardware: false, listen: { host: '127.0.0.1', port: 0 }, trust: [], stateDir: agentDir, profile: 'default', approve: 'always' },
    { log: pino({ level: 'silent' }), passphrase: 'rdp end-to-end test' },
  );
  // The VM side: the gateway is the session's program, with no TCP address of the agent.
  facePort = await freePort();
  await lab.setSessionProgram({
    argv: [
      process.execPath,
      BIN,
      'gateway',
      '--connect',
      'rdp:keytunnel',
      '--hid',
      `loopback:127.0.0.1:${facePort}`,
      '--trust',
      agentFp,
      '--state-dir',
      gatewayDir,
      '--name',
      'what-the-vm-claims',
      '--grace-ms',
      '60000',
      '--log-level',
      'debug',
    ],
    env: { KEYTUNNEL_NO_BUNDLE: '1' },
  });
  await lab.start();
}, 120_000);

afterAll(async () => {
  await lab?.stop();
  await agent?.close();
  if (agentDir) await rm(agentDir, { recursive: true, force: true });
}, 60_000);

describe('keytunnel over an RDP dynamic virtual channel (xrdp + FreeRDP 2)', () => {
  it('registers and signs in through the RDP connection, survives a disconnect and reconnect', async () => {
    // First an RDP client without the keytunnel plugin (with FreeRDP's built-in ECHO channel, so it does run dynamic
    // channels): the gateway's open is refused at once, and it says why.
    lab.connectClient(['/echo']);
    await waitFor('the gateway to report the missing plugin', async () => (await lab.sessionLog()).includes('the RDP client refused virtual channel \\"keytunnel\\"'), 60_000);
    expect(await lab.sessionLog()).toContain('keytunnel install-rdp-plugin');
    expect(agentConnected()).toBe(false);
    await lab.disconnectClient();

    const dvc = `/dvc:keytunnel,${agent.address!.port}`;
    lab.connectClient([dvc]);
    await waitFor('the gateway in the RDP session to reach the agent', agentConnected, 60_000);
    await waitFor('the gateway to log the agent', async () => (await lab.sessionLog()).includes('"msg":"agent connected"'), 10_000);

    const first = await ceremony();
    expect(first, JSON.stringify(first)).toMatchObject({ ok: true });

    // The RDP client goes away: the channel closes, so the tunnel over it does.
    expect(lab.clientOutput).toContain('channel opened; bridged to the agent');
    await lab.disconnectClient();
    await waitFor('the agent to lose the gateway', () => !agentConnected(), 15_000);
    await waitFor('the gateway to see the channel close', async () => (await lab.sessionLog()).includes('connection to agent over rdp:keytunnel lost'), 15_000);

    // It reconnects to the same session: the gateway reopens the channel; its device survived the grace period.
    lab.connectClient([dvc]);
    await waitFor('the gateway to reopen the channel', agentConnected, 60_000);
    const second = await ceremony();
    expect(second, JSON.stringify(second)).toMatchObject({ ok: true });
    expect(second.credentialId).not.toBe(first.credentialId);

    // The agent audited both ceremonies under the name it trusts the gateway by (not what the VM announced).
    const audit = await readAudit(join(agentDir, AUDIT_FILE), {});
    const ours = audit.filter((l) => l.rpId === RP_ID);
    expect(ours.map((l) => l.command)).toEqual(['makeCredential', 'getAssertion', 'makeCredential', 'getAssertion']);
    for (const line of ours) {
      expect(line).toMatchObject({ gateway: gatewayFp, gatewayName: TRUSTED_NAME, decision: 'allowed', status: '0x00' });
    }
  }, 240_000);

  it('a ceremony costs 2 round trips; with 50 ms RTT on the RDP link it stays within 1.2 × (direct + 3 × RTT)', async () => {
    // The RDP client now reaches xrdp through a delay proxy: the tunnel's bytes cross that link inside RDP.
    await lab.disconnectClient();
    await waitFor('the agent to lose the gateway', () => !agentConnected(), 15_000);
    const proxy = await startDelayProxy({ listen: { host: '127.0.0.1', port: 0 }, target: { host: '127.0.0.1', port: lab.port }, delayMs: 0 });
    try {
      lab.connectClient([`/dvc:keytunnel,${agent.address!.port}`], proxy.address.port);
      await waitFor('the gateway to reopen the channel through the proxy', agentConnected, 60_000);
      const auditPath = join(agentDir, AUDIT_FILE);
      const measure = async (): Promise<{ ms: number; roundTrips: number }> => {
        const before = (await readAudit(auditPath, {})).length;
        const r = await ceremony();
        expect(r, JSON.stringify(r)).toMatchObject({ ok: true });
        // Every request that crossed the tunnel is one audit line at the agent (getInfo and INIT stay in the VM).
        const roundTrips = (await readAudit(auditPath, {})).length - before;
        return { ms: r.makeCredentialMs! + r.getAssertionMs!, roundTrips };
      };
      const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
      const REPS = 7;
      const direct: number[] = [];
      for (let i = 0; i < REPS; i++) {
        const m = await measure();
        expect(m.roundTrips).toBe(2);
        direct.push(m.ms);
      }
      const RTT_MS = 50;
      proxy.setDelay(RTT_MS / 2);
      const slow: number[] = [];
      for (let i = 0; i < REPS; i++) {
        const m = await measure();
        expect(m.roundTrips).toBe(2);
        slow.push(m.ms);
      }
      const bound = 1.2 * (median(direct) + 3 * RTT_MS);
      console.log(
        `rdp ceremony (makeCredential + getAssertion, client side): direct median ${median(direct).toFixed(1)} ms ` +
          `[${direct.map((x) => x.toFixed(1)).join(', ')}]; 50 ms RTT median ${median(slow).toFixed(1)} ms ` +
          `[${slow.map((x) => x.toFixed(1)).join(', ')}]; bound ${bound.toFixed(1)} ms`,
      );
      // Two round trips cannot take less than 2 × RTT: the delay really applied to every ceremony.
      expect(Math.min(...slow)).toBeGreaterThanOrEqual(2 * RTT_MS);
      expect(median(slow)).toBeLessThanOrEqual(bound);
    } finally {
      await lab.disconnectClient();
      await proxy.close();
    }
  }, 240_000);
});
