/**
 * The relay end to end over real TLS 1.3 on 127.0.0.1, through the agent and gateway commands' library functions
 * (startAgentService / startGatewayService — what `keytunnel agent` / `keytunnel gateway` run), with a TS CTAPHID
 * client on the gateway's loopback face playing the VM:
 * pairing accepted both ways / unknown peers refused both ways, round-trip counts (getInfo 0, makeCredential 1),
 * CANCEL from the VM reaching the agent's authenticator, and an agent killed mid-request (error < 1 s, then the
 * gateway reconnects to the restarted agent and the same device works again).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect as tcpConnect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { pino, type Logger } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { CtaphidClient } from '../../agent/authenticators/hardware/ctaphid-client.ts';
import { LoopbackTransport } from '../../agent/authenticators/hardware/loopback-transport.ts';
import { startAgentService, type AgentService } from '../../cli/commands/agent.ts';
import { startGatewayService, type GatewayService } from '../../cli/commands/gateway.ts';
import { decode, encode, isCborMap, type CborValue } from '../../protocol/cbor.ts';
import { STATUS_UPNEEDED, type Authenticator, type RequestContext, type RequestKind } from '../../protocol/authenticator.ts';
import { CTAPHID_ERR_OTHER, CtaphidError } from '../../protocol/ctaphid.ts';
import { loadOrCreateIdentity } from '../../tunnel/identity.ts';
import { addToTrustFile } from '../../tunnel/trust.ts';
import type { DeviceInfo } from '../../gateway/gateway.ts';
import { startTestAgent, startTestGateway } from '../support/relay.ts';
import { waitFor } from '../support/wait-for.ts';

const PASSPHRASE = 'relay test passphrase';
const CHILD = fileURLToPath(new URL('./fixtures/agent-child.ts', import.meta.url));

/** A pino logger whose JSON lines are kept for assertions. */
function capture(): { log: Logger; text: () => string } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString('utf8'));
      cb();
    },
  });
  return { log: pino({ level: 'debug' }, stream), text: () => lines.join('') };
}

function makeCredentialRequest(rpId = 'example.com'): Uint8Array {
  const clientDataHash = createHash('sha256').update(`challenge for ${rpId}`).digest();
  const body = encode(
    new Map<CborValue, CborValue>([
      [1, new Uint8Array(clientDataHash)],
      [2, new Map<CborValue, CborValue>([['id', rpId], ['name', 'Example']])],
      [3, new Map<CborValue, CborValue>([['id', Uint8Array.of(1, 2, 3, 4)], ['name', 'alice']])],
      [4, [new Map<CborValue, CborValue>([['alg', -7], ['type', 'public-key']])]],
    ]),
  );
  return Uint8Array.of(0x01, ...body);
}

const dirs: string[] = [];
const stops: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function tempDir(prefix: string): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

async function fingerprintOf(dir: string): Promise<string> {
  return (await loadOrCreateIdentity(dir)).identity.fingerprint;
}

interface Pair {
  agent: AgentService;
  gateway: GatewayService;
  agentLog: () => string;
  gatewayLog: () => string;
}

/** Agent (soft, always approve) and gateway (loopback face); `agentListens` picks who dials. */
async function pair(options: {
  agentListens?: boolean;
  agentTrustsGateway?: boolean;
  gatewayTrustsAgent?: boolean;
  extra?: Authenticator[];
  soft?: boolean;
  /** Runs once the agent is up, before the gateway starts (agent listening only). */
  beforeGateway?: (agent: AgentService) => Promise<void>;
}): Promise<Pair> {
  const agentDir = await tempDir('kt-relay-agent-');
  const gatewayDir = await tempDir('kt-relay-gw-');
  const agentFp = await fingerprintOf(agentDir);
  const gatewayFp = await fingerprintOf(gatewayDir);
  const stranger = await fingerprintOf(await tempDir('kt-relay-x-'));
  const a = capture();
  const g = capture();
  const agentListens = options.agentListens ?? true;
  const backoff = { initialMs: 50, maxMs: 200 };
  let gatewayEndpoint: { host: string; port: number } | undefined;
  let gateway: GatewayService | undefined;
  if (!agentListens) {
    gateway = await startGatewayService(
      {
        hid: { kind: 'loopback', host: '127.0.0.1', port: 0 },
        listen: { host: '127.0.0.1', port: 0 },
        trust: [options.gatewayTrustsAgent === false ? stranger : agentFp],
        stateDir: gatewayDir,
        name: 'test-vm',
      },
      { log: g.log, backoff },
    );
    stops.push(() => gateway!.close());
    gatewayEndpoint = gateway.address;
  }
  const agent = await startTestAgent(
    {
      soft: options.soft ?? true,
      listen: agentListens ? { host: '127.0.0.1', port: 0 } : undefined,
      connect: agentListens ? undefined : gatewayEndpoint,
      trust: [options.agentTrustsGateway === false ? stranger : gatewayFp],
      stateDir: agentDir,
      name: 'test-laptop',
    },
    { log: a.log, passphrase: PASSPHRASE, extra: options.extra, backoff },
  );
  stops.push(() => agent.close());
  if (agentListens) {
    await options.beforeGateway?.(agent);
    gateway = await startTestGateway(
      agent,
      { trust: [options.gatewayTrustsAgent === false ? stranger : agentFp], stateDir: gatewayDir, name: 'test-vm' },
      { log: g.log, backoff },
    );
    stops.push(() => gateway!.close());
  }
  return { agent, gateway: gateway!, agentLog: a.text, gatewayLog: g.text };
}

async function clientFor(device: DeviceInfo): Promise<CtaphidClient> {
  const transport = await LoopbackTransport.connect(device.address!.host, device.address!.port);
  const client = await CtaphidClient.open(transport);
  stops.push(() => client.close());
  return client;
}

const firstDevice = (gw: GatewayService) => waitFor('a virtual device', () => gw.core.list()[0]);

describe('relay over TLS 1.3 on 127.0.0.1', () => {
  it('agent listens, gateway dials: the soft authenticator appears; getInfo costs 0 round trips, makeCredential 1', async () => {
    const p = await pair({});
    const device = await firstDevice(p.gateway);
    expect(device.label).toBe('keytunnel soft authenticator');
    expect(device.agentFingerprint).toBe(p.agent.fingerprint);
    expect(p.agent.core.gateways()).toEqual([{ fingerprint: p.gateway.fingerprint, name: 'test-vm' }]);
    const client = await clientFor(device);
    expect(client.info?.capabilities).toBeDefined();

    const info = await client.cbor(Uint8Array.of(0x04));
    expect(info[0]).toBe(0);
    const map = decode(info.subarray(1));
    expect(isCborMap(map) && map.get(1)).toEqual(expect.arrayContaining(['FIDO_2_0', 'FIDO_2_1']));
    await client.cbor(Uint8Array.of(0x04));
    expect(p.gateway.core.requestsSent).toBe(0);

    const mc = await client.cbor(makeCredentialRequest());
    expect(mc[0]).toBe(0); // CTAP2_OK with an attestation object
    const att = decode(mc.subarray(1));
    expect(isCborMap(att) && att.get(1)).toBe('packed');
    expect(p.gateway.core.requestsSent).toBe(1);
    // PING stays local: still one round trip.
    expect([...(await client.ping(Uint8Array.of(1, 2, 3)))]).toEqual([1, 2, 3]);
    expect(p.gateway.core.requestsSent).toBe(1);
  });

  it('gateway listens, agent dials: pairing works the other way round', async () => {
    const p = await pair({ agentListens: false });
    const device = await firstDevice(p.gateway);
    const client = await clientFor(device);
    expect((await client.cbor(makeCredentialRequest()))[0]).toBe(0);
    expect(p.gateway.core.requestsSent).toBe(1);
  });

  it('an agent that dials redials a gateway that restarted (auto-reconnect on the agent side too)', async () => {
    const agentDir = await tempDir('kt-relay-agent-');
    const gwDir = await tempDir('kt-relay-gw-');
    const agentFp = await fingerprintOf(agentDir);
    const gwFp = await fingerprintOf(gwDir);
    const port = await freePort();
    const startGw = async () => {
      const gw = await startGatewayService(
        { hid: { kind: 'loopback', host: '127.0.0.1', port: 0 }, listen: { host: '127.0.0.1', port }, trust: [agentFp], stateDir: gwDir },
        { log: capture().log },
      );
      stops.push(() => gw.close());
      return gw;
    };
    const first = await startGw();
    const a = capture();
    const agent = await startAgentService(
      { soft: true, hardware: false, connect: { host: '127.0.0.1', port }, trust: [gwFp], stateDir: agentDir, profile: 'default', approve: 'always' },
      { log: a.log, passphrase: PASSPHRASE, backoff: { initialMs: 50, maxMs: 200 } },
    );
    stops.push(() => agent.close());
    await firstDevice(first);
    await first.close();
    await waitFor('the agent to notice', () => agent.core.gateways().length === 0);
    const second = await startGw();
    const device = await firstDevice(second);
    const client = await clientFor(device);
    expect((await client.cbor(makeCredentialRequest()))[0]).toBe(0);
    expect(agent.core.gateways()).toHaveLength(1);
    expect(a.text()).toMatch(/connection to gateway at 127\.0\.0\.1:\d+ lost; reconnecting/);
  });

  it('a gateway the agent does not trust is refused; the agent log names its fingerprint; no device appears', async () => {
    const p = await pair({ agentTrustsGateway: false });
    await waitFor('the refusal in the agent log', () => p.agentLog().includes(`refusing unknown gateway with fingerprint ${p.gateway.fingerprint}`));
    await waitFor('the refusal seen by the gateway', () => p.gatewayLog().includes('does not trust'));
    expect(p.gateway.core.list()).toEqual([]);
    expect(p.agent.core.gateways()).toEqual([]);
  });

  it('an agent the gateway does not trust is refused; the gateway log names its fingerprint (both dial directions)', async () => {
    for (const agentListens of [true, false]) {
      const p = await pair({ gatewayTrustsAgent: false, agentListens });
      await waitFor('the refusal in the gateway log', () =>
        p.gatewayLog().includes(`refusing unknown agent with fingerprint ${p.agent.fingerprint}`),
      );
      expect(p.gateway.core.list()).toEqual([]);
      expect(p.agent.core.gateways()).toEqual([]);
    }
  });

  it("CTAPHID_CANCEL from the VM aborts the agent authenticator's signal", async () => {
    const seen: { signal: AbortSignal; aborted: number | null }[] = [];
    const started = Date.now();
    const pendingForever: Authenticator = {
      descriptor: { id: 'waits-for-touch', label: 'waits for touch', transport: 'hid', ctap1: false, wink: false },
      request(kind: RequestKind, payload: Uint8Array, ctx: RequestContext): Promise<Uint8Array> {
        if (kind === 'cbor' && payload[0] === 0x04) return Promise.resolve(Uint8Array.of(0x00, 0xa0));
        const entry = { signal: ctx.signal, aborted: null as number | null };
        seen.push(entry);
        ctx.onStatus(STATUS_UPNEEDED);
        return new Promise((resolve) => {
          ctx.signal.addEventListener('abort', () => {
            entry.aborted = Date.now() - started;
            resolve(Uint8Array.of(0x2d));
          });
        });
      },
    };
    const p = await pair({ soft: false, extra: [pendingForever] });
    const device = await firstDevice(p.gateway);
    const client = await clientFor(device);
    const keepalives: number[] = [];
    const ac = new AbortController();
    const answer = client.cbor(makeCredentialRequest(), { signal: ac.signal, onKeepalive: (s) => keepalives.push(s) });
    await waitFor('the request at the agent', () => seen.length === 1);
    await waitFor('an UPNEEDED keepalive relayed to the VM', () => keepalives.includes(STATUS_UPNEEDED));
    ac.abort();
    expect([...(await answer)]).toEqual([0x2d]); // CTAP2_ERR_KEEPALIVE_CANCEL
    await waitFor('the abort at the agent authenticator', () => seen[0].signal.aborted);
    expect(p.gateway.core.requestsSent).toBe(1);
  });
});

/** A free TCP port on 127.0.0.1 (for an agent that must come back on the same port). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

function spawnAgent(stateDir: string, port: number, gatewayFp: string, presence: 'always' | 'never'): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, stateDir, String(port), gatewayFp, presence], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.includes('READY')) resolve(child);
    });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.once('exit', (code) => reject(new Error(`agent child exited (${code}) before READY:\n${err}`)));
    stops.push(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
  });
}

describe('a flood on the agent port (issue 11, finding 4)', () => {
  it('after 200 idle TCP connections to the agent, a gateway that starts then serves a makeCredential within 2 s', async () => {
    const idle: Socket[] = [];
    stops.push(() => idle.forEach((s) => s.destroy()));
    let started = 0;
    const p = await pair({
      beforeGateway: async (agent) => {
        await Promise.all(
          Array.from({ length: 200 }, () => {
            const s = tcpConnect(agent.address!.port, agent.address!.host);
            idle.push(s);
            s.on('error', () => {}); // the agent resets the ones it evicts
            return new Promise<void>((resolve) => s.once('connect', () => resolve()));
          }),
        );
        await new Promise((r) => setTimeout(r, 200));
        started = performance.now();
      },
    });
    const device = await firstDevice(p.gateway);
    const client = await clientFor(device);
    expect((await client.cbor(makeCredentialRequest()))[0]).toBe(0);
    expect(performance.now() - started).toBeLessThan(2000);
    expect(p.agent.core.gateways()).toHaveLength(1);
  });
});

describe('the agent dies mid-request', () => {
  it('the VM client gets an error within 1 s; the restarted agent is redialled and the same device works again', async () => {
    const agentDir = await tempDir('kt-relay-agent-');
    const gatewayDir = await tempDir('kt-relay-gw-');
    const agentFp = await fingerprintOf(agentDir);
    const gatewayFp = await fingerprintOf(gatewayDir);
    const port = await freePort();
    const child = await spawnAgent(agentDir, port, gatewayFp, 'never');
    const g = capture();
    const gateway = await startGatewayService(
      {
        hid: { kind: 'loopback', host: '127.0.0.1', port: 0 },
        connect: { host: '127.0.0.1', port },
        trust: [agentFp],
        stateDir: gatewayDir,
        graceMs: 10_000,
      },
      { log: g.log, backoff: { initialMs: 50, maxMs: 200, jitter: 0 } },
    );
    stops.push(() => gateway.close());
    const device = await firstDevice(gateway);
    const client = await clientFor(device);
    const keepalives: number[] = [];
    const pending = client.cbor(makeCredentialRequest(), { onKeepalive: (s) => keepalives.push(s) });
    const outcome = pending.then(
      () => 'answered',
      (err: unknown) => err,
    );
    // The soft authenticator is waiting for a touch that never comes.
    await waitFor('UPNEEDED from the agent', () => keepalives.includes(STATUS_UPNEEDED));
    const killedAt = Date.now();
    child.kill('SIGKILL');
    const err = await outcome;
    const elapsed = Date.now() - killedAt;
    expect(err).toBeInstanceOf(CtaphidError);
    expect((err as CtaphidError).code).toBe(CTAPHID_ERR_OTHER);
    expect(elapsed).toBeLessThan(1000);

    // Within the grace period the device stays; the agent comes back on the same port and state.
    expect(gateway.core.list()).toHaveLength(1);
    await spawnAgent(agentDir, port, gatewayFp, 'always');
    await waitFor('the gateway to reconnect', () => g.text().split('agent connected').length - 1 >= 2, 15_000);
    const mc = await client.cbor(makeCredentialRequest());
    expect(mc[0]).toBe(0);
    expect(gateway.core.list()).toEqual([device]); // the same virtual device, never unplugged
  }, 30_000);
});

describe('the agent freezes mid-request (no FIN, no RST: a paused VM host, a pulled cable)', () => {
  it('the gateway heartbeat declares the tunnel dead and the VM client gets an error, not a hang', async () => {
    const agentDir = await tempDir('kt-relay-agent-');
    const gatewayDir = await tempDir('kt-relay-gw-');
    const agentFp = await fingerprintOf(agentDir);
    const gatewayFp = await fingerprintOf(gatewayDir);
    const port = await freePort();
    const child = await spawnAgent(agentDir, port, gatewayFp, 'never');
    const gateway = await startGatewayService(
      { hid: { kind: 'loopback', host: '127.0.0.1', port: 0 }, connect: { host: '127.0.0.1', port }, trust: [agentFp], stateDir: gatewayDir },
      { log: capture().log, connection: { heartbeatIntervalMs: 200, deadAfterMs: 1000 } },
    );
    stops.push(() => gateway.close());
    const client = await clientFor(await firstDevice(gateway));
    const keepalives: number[] = [];
    const outcome = client.cbor(makeCredentialRequest(), { onKeepalive: (s) => keepalives.push(s) }).then(
      () => 'answered',
      (err: unknown) => err,
    );
    await waitFor('UPNEEDED from the agent', () => keepalives.includes(STATUS_UPNEEDED));
    const frozenAt = Date.now();
    child.kill('SIGSTOP');
    const err = await outcome;
    const elapsed = Date.now() - frozenAt;
    expect(err).toBeInstanceOf(CtaphidError);
    expect((err as CtaphidError).code).toBe(CTAPHID_ERR_OTHER);
    // deadAfterMs (1 s) + one heartbeat tick (0.2 s), with slack for a loaded machine.
    expect(elapsed).toBeGreaterThanOrEqual(800);
    expect(elapsed).toBeLessThan(3000);
    child.kill('SIGKILL');
  }, 30_000);
});

describe('several gateways, hot-plug and device slots', () => {
  /** An authenticator that answers getInfo and echoes who asked (origin) for anything else. */
  function whoAsked(id: string): Authenticator & { origins: (string | undefined)[] } {
    const origins: (string | undefined)[] = [];
    return {
      origins,
      descriptor: { id, label: `key ${id}`, transport: 'hid', ctap1: false, wink: false },
      async request(kind: RequestKind, payload: Uint8Array, ctx: RequestContext): Promise<Uint8Array> {
        if (kind === 'cbor' && payload[0] === 0x04) return Uint8Array.of(0x00, 0xa0);
        origins.push(ctx.origin?.gatewayFingerprint);
        return Uint8Array.of(0x00);
      },
    };
  }

  it('one agent serves two gateways; a key plugged in or removed reaches both; each request carries its gateway', async () => {
    const agentDir = await tempDir('kt-relay-agent-');
    const gwDirs = [await tempDir('kt-relay-gw1-'), await tempDir('kt-relay-gw2-')];
    const gwFps = [await fingerprintOf(gwDirs[0]), await fingerprintOf(gwDirs[1])];
    const a = capture();
    const first = whoAsked('first');
    const agent = await startTestAgent({ soft: false, trust: gwFps, stateDir: agentDir, profile: 'x' }, { log: a.log, extra: [first] });
    stops.push(() => agent.close());
    const gateways: GatewayService[] = [];
    for (const [i, dir] of gwDirs.entries()) {
      const gw = await startTestGateway(agent, { stateDir: dir, name: `vm-${i}`, graceMs: 0 }, { log: capture().log });
      stops.push(() => gw.close());
      gateways.push(gw);
    }
    await waitFor('both gateways', () => agent.core.gateways().length === 2);
    for (const gw of gateways) await waitFor('the first key on each gateway', () => gw.core.list().length === 1);
    expect(agent.core.gateways().map((g) => g.name).sort()).toEqual(['vm-0', 'vm-1']);

    // Hot-plug: a second key appears on both gateways, in slot 1.
    const second = whoAsked('second');
    await agent.core.add(second);
    for (const gw of gateways) {
      await waitFor('the second key', () => gw.core.list().length === 2);
      expect(gw.core.list().map((d) => [d.authenticatorId, d.slot])).toEqual([['first', 0], ['second', 1]]);
    }
    // Each gateway's request reaches the key with that gateway's fingerprint as origin.
    for (const gw of gateways) {
      const device = gw.core.list().find((d) => d.authenticatorId === 'second')!;
      const client = await clientFor(device);
      expect([...(await client.cbor(Uint8Array.of(0x0b)))]).toEqual([0x00]); // authenticatorSelection
    }
    expect(second.origins).toEqual(gwFps);
    // Unplugged: gone from both gateways (grace 0 here).
    agent.core.remove('second');
    for (const gw of gateways) await waitFor('the second key to go', () => gw.core.list().length === 1);
    expect(first.origins).toEqual([]);
  });

  it('a gateway is known by the name it was trusted under, not the name its VM announces', async () => {
    const agentDir = await tempDir('kt-relay-agent-');
    const gwDir = await tempDir('kt-relay-gw-');
    await addToTrustFile(agentDir, await fingerprintOf(gwDir), 'customer-a');
    const key = whoAsked('k');
    const names: (string | undefined)[] = [];
    const agent = await startTestAgent(
      { soft: false, stateDir: agentDir, profile: 'x' },
      {
        log: capture().log,
        extra: [key],
        view: () => (inner) => ({
          descriptor: inner.descriptor,
          request: (kind, payload, ctx) => {
            names.push(ctx.origin?.gatewayName);
            return inner.request(kind, payload, ctx);
          },
        }),
      },
    );
    stops.push(() => agent.close());
    const gw = await startTestGateway(agent, { stateDir: gwDir, name: 'trusted-bank-vm' }, { log: capture().log });
    stops.push(() => gw.close());
    const device = await firstDevice(gw);
    const client = await clientFor(device);
    await client.cbor(Uint8Array.of(0x02, 0xa0));
    expect(agent.core.gateways().map((g) => g.name)).toEqual(['customer-a']);
    expect(names).toEqual(['customer-a']);
  });

  it('loopback:HOST:PORT puts the device in slot N on PORT + N', async () => {
    // Find two consecutive free ports.
    let base = 0;
    for (let attempt = 0; attempt < 20 && base === 0; attempt++) {
      const p = await freePort();
      if (p < 65535 && (await canListen(p + 1))) base = p;
    }
    expect(base).toBeGreaterThan(0);
    const agentDir = await tempDir('kt-relay-agent-');
    const gwDir = await tempDir('kt-relay-gw-');
    const agent = await startTestAgent(
      { soft: false, trust: [await fingerprintOf(gwDir)], stateDir: agentDir, profile: 'x' },
      { log: capture().log, extra: [whoAsked('k0'), whoAsked('k1')] },
    );
    stops.push(() => agent.close());
    const gw = await startTestGateway(agent, { hid: { kind: 'loopback', host: '127.0.0.1', port: base }, stateDir: gwDir }, { log: capture().log });
    stops.push(() => gw.close());
    await waitFor('two devices', () => gw.core.list().length === 2);
    expect(gw.core.list().map((d) => [d.slot, d.address?.port])).toEqual([
      [0, base],
      [1, base + 1],
    ]);
  });
});

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}
