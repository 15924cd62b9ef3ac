/**
 * Per-VM policy end to end over real TLS 1.3 on 127.0.0.1: one agent (soft authenticator + a spy
 * authenticator), three gateways with policies from gateways.json — customer-a (per-gateway scope, a narrow
 * allow-list), customer-b (per-gateway scope, any RP) and customer-c (shared scope). python-fido2 0.9.1 plays
 * each VM's client through the gateway's loopback face.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CtaphidClient } from '../../agent/authenticators/hardware/ctaphid-client.ts';
import { LoopbackTransport } from '../../agent/authenticators/hardware/loopback-transport.ts';
import type { PresenceRequest } from '../../agent/presence/port.ts';
import { FakePresence } from '../../agent/presence/fake.ts';
import { describeRequest } from '../../agent/presence/describe.ts';
import { PolicyConfig } from '../../agent/policy/config.ts';
import { readAudit, type AuditLine } from '../../cli/commands/audit.ts';
import type { AgentService } from '../../cli/commands/agent.ts';
import type { GatewayService } from '../../cli/commands/gateway.ts';
import type { Authenticator, RequestContext, RequestKind } from '../../protocol/authenticator.ts';
import { encode, type CborValue } from '../../protocol/cbor.ts';
import {
  CTAP2_ERR_INVALID_SUBCOMMAND,
  CTAP2_ERR_NO_CREDENTIALS,
  CTAP2_ERR_NOT_ALLOWED,
  CTAP2_ERR_OPERATION_DENIED,
} from '../../protocol/ctap2.ts';
import { loadOrCreateIdentity } from '../../tunnel/identity.ts';
import { startRelay } from '../support/relay.ts';

const PROBE = fileURLToPath(new URL('./scope_probe.py', import.meta.url));
const PIN = '918273';
const silent = pino({ level: 'silent' });

interface ProbeResult {
  ok: boolean;
  status: number;
  users?: string[];
  total?: number;
  decoy?: number;
  rps?: string[];
  existing?: number;
  secrets: string[];
}

function probe(gw: GatewayService, ...args: string[]): Promise<ProbeResult> {
  const device = gw.core.list().find((d) => d.label === 'keytunnel soft authenticator')!;
  const target = `${device.address!.host}:${device.address!.port}`;
  return new Promise((resolve, reject) => {
    const child = spawn('/usr/bin/python3', [PROBE, target, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (code) => {
      try {
        resolve(JSON.parse(out.trim().split('\n').pop()!) as ProbeResult);
      } catch {
        reject(new Error(`scope_probe ${args.join(' ')} exited ${code}: ${out}\n${err}`));
      }
    });
  });
}

/** An authenticator that only records that a request reached it. */
class Spy implements Authenticator {
  readonly descriptor = { id: 'spy', label: 'spy key', transport: 'hid' as const, ctap1: true, wink: false };
  /** CTAP requests that reached it, apart from the agent's own getInfo (it caches that for the gateways). */
  readonly reached: Uint8Array[] = [];
  async request(_kind: RequestKind, payload: Uint8Array, _ctx: RequestContext): Promise<Uint8Array> {
    if (payload[0] !== 0x04) this.reached.push(payload);
    return Uint8Array.of(0);
  }
}

const dirs: string[] = [];
const stops: (() => Promise<unknown>)[] = [];
let agent: AgentService;
let agentDir: string;
const gw: Record<'a' | 'b' | 'c', GatewayService> = {} as never;
const spy = new Spy();
const prompts: PresenceRequest[] = [];
const secrets: string[] = [];

beforeAll(async () => {
  const temp = async (p: string) => {
    const d = await mkdtemp(join(tmpdir(), p));
    dirs.push(d);
    return d;
  };
  agentDir = await temp('kt-policy-agent-');
  const gwDirs = { a: await temp('kt-policy-a-'), b: await temp('kt-policy-b-'), c: await temp('kt-policy-c-') };
  const fp = async (d: string) => (await loadOrCreateIdentity(d)).identity.fingerprint;
  const config = await PolicyConfig.load(agentDir);
  config.upsert(await fp(gwDirs.a), { name: 'customer-a', allowRps: ['a.example', '*.contoso.com'] });
  config.upsert(await fp(gwDirs.b), { name: 'customer-b', allowRps: ['*'] });
  config.upsert(await fp(gwDirs.c), { name: 'customer-c', allowRps: ['*'], scope: 'shared' });
  await config.save();

  const presence = new FakePresence((r) => (prompts.push(r), 'approved'));
  const relay = await startRelay({
    agent: { stateDir: agentDir, approve: 'prompt' },
    agentIo: { log: silent, passphrase: 'policy test', presence, extra: [spy] },
    // The VMs announce misleading names: the agent must use its own.
    gateways: [gwDirs.a, gwDirs.b, gwDirs.c].map((stateDir) => ({ stateDir, name: 'customer-a' })),
    gatewayIo: { log: silent },
    devices: 2,
  });
  stops.push(() => relay.close());
  agent = relay.agent;
  [gw.a, gw.b, gw.c] = relay.gateways;
}, 60_000);

afterAll(async () => {
  for (const s of stops.splice(0).reverse()) await s();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('per-gateway scope', () => {
  it("a credential made through A is invisible through B, visible through shared-scope C", async () => {
    expect(await probe(gw.a, 'make', 'a.example')).toMatchObject({ ok: true });
    expect(await probe(gw.b, 'make', 'b.example')).toMatchObject({ ok: true });

    expect(await probe(gw.a, 'assert', 'a.example')).toMatchObject({ ok: true, users: ['user-a.example'] });
    expect(await probe(gw.b, 'assert', 'a.example')).toMatchObject({ ok: false, status: CTAP2_ERR_NO_CREDENTIALS });
    expect(await probe(gw.c, 'assert', 'a.example')).toMatchObject({ ok: true, users: ['user-a.example'] });
  });

  it('credential management through B lists none of A\'s credentials; through A only A\'s', async () => {
    expect(await probe(gw.a, 'setpin', PIN)).toMatchObject({ ok: true });
    const viaB = await probe(gw.b, 'credman', PIN);
    const viaA = await probe(gw.a, 'credman', PIN);
    const viaC = await probe(gw.c, 'credman', PIN);
    secrets.push(...viaA.secrets, ...viaB.secrets, ...viaC.secrets);
    expect(viaB).toMatchObject({ ok: true, existing: 1, rps: ['b.example'] });
    expect(viaA).toMatchObject({ ok: true, existing: 1, rps: ['a.example'] });
    expect(viaC).toMatchObject({ ok: true, existing: 2 });
    expect(viaC.rps!.sort()).toEqual(['a.example', 'b.example']);
    const withPin = await probe(gw.b, 'assert', 'a.example', PIN);
    secrets.push(...withPin.secrets);
    expect(withPin).toMatchObject({ ok: false, status: CTAP2_ERR_NO_CREDENTIALS });
  });
});

describe('continuations belong to the gateway whose request began them (issue 11, finding 2)', () => {
  it("while A enumerates its credentials, B's decoy subcommand then GetNextCredential gets nothing of A's", async () => {
    const made = await probe(gw.a, 'makeuser', 'a.example', 'bob@a.example', PIN);
    secrets.push(...made.secrets);
    expect(made).toMatchObject({ ok: true });
    const begin = await probe(gw.a, 'enumbegin', 'a.example', PIN);
    secrets.push(...begin.secrets);
    expect(begin).toMatchObject({ ok: true, total: 2 });

    const stolen = await probe(gw.b, 'next', 'decoy');
    expect(stolen).toMatchObject({ ok: false, decoy: CTAP2_ERR_INVALID_SUBCOMMAND, status: CTAP2_ERR_NOT_ALLOWED });
    expect(stolen.users).toBeUndefined();

    // Nothing of B's reached the authenticator, so A's enumeration goes on, from A.
    const rest = await probe(gw.a, 'next');
    expect(rest).toMatchObject({ ok: true });
    expect([...begin.users!, ...rest.users!].sort()).toEqual(['alice@a.example', 'bob@a.example']);
  });
});

describe('allow-list, consent and audit', () => {
  it("an RP outside A's allow-list is refused on the agent and never reaches the authenticator", async () => {
    const device = gw.a.core.list().find((d) => d.label === 'spy key')!;
    const client = await CtaphidClient.open(await LoopbackTransport.connect(device.address!.host, device.address!.port));
    try {
      const getAssertion = (rpId: string) =>
        Uint8Array.of(0x02, ...encode(new Map<CborValue, CborValue>([[1, rpId], [2, new Uint8Array(createHash('sha256').update('x').digest())]])));
      expect([...(await client.cbor(getAssertion('login.fabrikam.com')))]).toEqual([CTAP2_ERR_OPERATION_DENIED]);
      expect(spy.reached).toHaveLength(0);
      expect([...(await client.cbor(getAssertion('sso.contoso.com')))]).toEqual([0]);
      expect(spy.reached).toHaveLength(1);
    } finally {
      await client.close();
    }
    const audit = await readAudit(join(agentDir, 'audit.log'), { gateway: 'customer-a' });
    expect(audit.filter((l) => l.authenticator === 'spy').map((l) => [l.rpId, l.decision, l.status])).toEqual([
      ['login.fabrikam.com', 'refused-by-policy', '0x27'],
      ['sso.contoso.com', 'allowed', '0x00'],
    ]);
  });

  it('the consent prompt names the gateway by its policy name, not what the VM announced', async () => {
    const fromB = prompts.find((p) => p.action === 'makeCredential' && p.rpId === 'b.example')!;
    expect(fromB.origin?.gatewayName).toBe('customer-b');
    expect(describeRequest(fromB)).toContain('customer-b');
    expect(describeRequest(fromB)).toContain('b.example');
    expect(describeRequest(fromB)).toContain('alice@b.example');
  });

  it('the audit log names every gateway and holds no PIN or token', async () => {
    const text = await readFile(join(agentDir, 'audit.log'), 'utf8');
    const lines: AuditLine[] = await readAudit(join(agentDir, 'audit.log'), {});
    expect(new Set(lines.map((l) => l.gatewayName))).toEqual(new Set(['customer-a', 'customer-b', 'customer-c']));
    expect(lines.some((l) => l.command === 'clientPin')).toBe(true);
    expect(secrets.length).toBeGreaterThan(0);
    const pinHash = createHash('sha256').update(PIN).digest();
    for (const secret of [PIN, pinHash.toString('hex'), pinHash.subarray(0, 16).toString('base64'), ...secrets]) {
      expect(text).not.toContain(secret);
    }
    for (const token of secrets) {
      expect(text).not.toContain(Buffer.from(token, 'hex').toString('base64'));
    }
  });
});
