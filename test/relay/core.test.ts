/**
 * AgentCore <-> GatewayCore over an in-memory pipe that encodes/decodes every frame: device lifecycle (one per
 * announced authenticator, slots, hot-plug, grace period on removal and on tunnel loss, reconnect keeps the device),
 * the getInfo cache refresh after state-changing commands, and protocol errors. Grace timers are fake (no sleeps).
 */
import { describe, expect, it } from 'vitest';
import type { Authenticator, RequestContext, RequestKind } from '../../protocol/authenticator.ts';
import { FrameDecoder, encodeFrame, type Frame } from '../../protocol/tunnel.ts';
import { AgentCore } from '../../agent/agent.ts';
import { GatewayCore } from '../../gateway/gateway.ts';
import type { FaceHandle } from '../../device/faces/factory.ts';
import type { ReportDevice } from '../../device/host-link.ts';
import type { RemoteAuthenticator } from '../../gateway/remote-authenticator.ts';
import { FakeClock } from '../support/fake-clock.ts';

const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const tick = async (n = 5) => {
  for (let i = 0; i < n; i++) await new Promise((r) => setTimeout(r, 0));
};

/** An authenticator with a mutable getInfo; command 0x06 (clientPIN) flips it, like setPIN does clientPin. */
class FakeAuthenticator implements Authenticator {
  info = Uint8Array.of(0x00, 0xa1, 0x04, 0xa1, 0x69, ...new TextEncoder().encode('clientPin'), 0xf4);
  calls: number[] = [];
  constructor(readonly descriptor: Authenticator['descriptor']) {}
  request(kind: RequestKind, payload: Uint8Array, _ctx: RequestContext): Promise<Uint8Array> {
    this.calls.push(payload[0]);
    if (kind === 'cbor' && payload[0] === 0x04) return Promise.resolve(this.info);
    if (kind === 'cbor' && payload[0] === 0x06) {
      this.info = this.info.slice();
      this.info[this.info.length - 1] = 0xf5; // clientPin: true
    }
    return Promise.resolve(Uint8Array.of(0x00));
  }
}
const soft = (id: string, label = `auth ${id}`) => new FakeAuthenticator({ id, label, transport: 'soft', ctap1: true, wink: false });

function setup() {
  const clock = new FakeClock();
  const faces: { device: ReportDevice; slot: number; label: string; closed: boolean }[] = [];
  const gateway = new GatewayCore({
    logger: quiet,
    clock,
    graceMs: 5000,
    face: async (device, req) => {
      const f = { device, slot: req.slot, label: req.descriptor.label, closed: false };
      faces.push(f);
      const handle: FaceHandle = { description: `fake slot ${req.slot}`, close: () => void (f.closed = true) };
      return handle;
    },
  });
  const agent = new AgentCore({ logger: quiet });
  let connections: { drop(): void; agentSent: Frame[] }[] = [];
  /** Connect agent and gateway through an encoding pipe (asynchronous delivery). */
  const connect = () => {
    const gwDecoder = new FrameDecoder();
    const agDecoder = new FrameDecoder();
    let open = true;
    const agentSent: Frame[] = [];
    const gwSide = {
      fingerprint: 'ag:ent',
      name: 'laptop',
      send: (f: Frame) => {
        if (!open) throw new Error('closed');
        for (const d of agDecoder.push(encodeFrame(f))) queueMicrotask(() => open && agentHandlers.frame(d));
      },
      close: () => drop(),
    };
    const agSide = {
      fingerprint: 'ga:te',
      name: 'vm',
      send: (f: Frame) => {
        if (!open) throw new Error('closed');
        agentSent.push(f);
        for (const d of gwDecoder.push(encodeFrame(f))) queueMicrotask(() => open && gatewayHandlers.frame(d));
      },
      close: () => drop(),
    };
    const gatewayHandlers = gateway.attachAgent(gwSide);
    const agentHandlers = agent.attachGateway(agSide);
    const drop = () => {
      if (!open) return;
      open = false;
      gatewayHandlers.closed();
      agentHandlers.closed();
    };
    const c = { drop, agentSent, gwSide };
    connections.push(c);
    return c;
  };
  /** The RemoteAuthenticator behind a device. */
  const remoteOf = (id: string): RemoteAuthenticator => {
    const r = gateway.authenticatorFor('ag:ent', id);
    if (r === undefined) throw new Error(`no device for ${id}`);
    return r;
  };
  return { clock, faces, gateway, agent, connect, remoteOf, connections: () => connections };
}

const ctx = (): RequestContext => ({ signal: new AbortController().signal, onStatus() {} });

describe('agent core <-> gateway core', () => {
  it('one device per exported authenticator, slots 0 and 1, created on announce and on hot-plug', async () => {
    const s = setup();
    await s.agent.add(soft('a'));
    s.connect();
    await tick();
    await s.gateway.settled();
    expect(s.gateway.list().map((d) => [d.authenticatorId, d.slot])).toEqual([['a', 0]]);
    await s.agent.add(soft('b')); // plugged in later
    await tick();
    await s.gateway.settled();
    expect(s.gateway.list().map((d) => [d.authenticatorId, d.slot, d.label, d.agentFingerprint])).toEqual([
      ['a', 0, 'auth a', 'ag:ent'],
      ['b', 1, 'auth b', 'ag:ent'],
    ]);
    expect(s.faces).toHaveLength(2);
  });

  it('a removed authenticator fails fast at once and its device goes after the grace period; its slot is reused', async () => {
    const s = setup();
    await s.agent.add(soft('a'));
    await s.agent.add(soft('b'));
    s.connect();
    await tick();
    await s.gateway.settled();
    const removed: string[] = [];
    s.gateway.on('device-removed', (d) => removed.push(d.authenticatorId));
    const remoteA = s.remoteOf('a');
    s.agent.remove('a');
    await tick();
    await expect(remoteA.request('cbor', Uint8Array.of(0x01, 0xa0), ctx())).rejects.toMatchObject({ code: 'AUTHENTICATOR_GONE' });
    expect(removed).toEqual([]); // still plugged during the grace period
    expect(s.clock.pending).toBe(1);
    expect(s.clock.scheduled.at(-1)).toBe(5000);
    s.clock.advance(5000);
    await tick();
    await s.gateway.settled();
    expect(removed).toEqual(['a']);
    expect(s.faces[0].closed).toBe(true);
    await s.agent.add(soft('c'));
    await tick();
    await s.gateway.settled();
    expect(s.gateway.list().find((d) => d.authenticatorId === 'c')?.slot).toBe(0);
  });

  it('a tunnel drop keeps the devices for the grace period; a reconnect within it keeps the same device', async () => {
    const s = setup();
    await s.agent.add(soft('a'));
    const c1 = s.connect();
    await tick();
    await s.gateway.settled();
    const remote = s.remoteOf('a');
    c1.drop();
    await expect(remote.request('cbor', Uint8Array.of(0x01, 0xa0), ctx())).rejects.toMatchObject({ code: 'TUNNEL_DOWN' });
    expect(s.clock.pending).toBe(1);
    s.connect(); // agent back before the grace period ends
    await tick();
    await s.gateway.settled();
    expect(s.clock.pending).toBe(0); // removal cancelled by the fresh AUTHENTICATORS
    expect(s.faces).toHaveLength(1); // same device, no re-plug
    expect(s.faces[0].closed).toBe(false);
    expect([...(await remote.request('cbor', Uint8Array.of(0x01, 0xa0), ctx()))]).toEqual([0x00]);
  });

  it('the tunnel staying down past the grace period removes the devices', async () => {
    const s = setup();
    await s.agent.add(soft('a'));
    s.connect().drop();
    await tick();
    await s.gateway.settled();
    // The device may or may not have been created before the drop; either way nothing survives the grace period.
    s.clock.advance(5000);
    await tick();
    await s.gateway.settled();
    expect(s.gateway.list()).toEqual([]);
    expect(s.faces.every((f) => f.closed)).toBe(true);
  });

  it('a state-changing command refreshes the getInfo cache before its answer arrives (no stale clientPin)', async () => {
    const s = setup();
    const auth = soft('a');
    await s.agent.add(auth);
    s.connect();
    await tick();
    await s.gateway.settled();
    const remote = s.remoteOf('a');
    const before = await remote.request('cbor', Uint8Array.of(0x04), ctx());
    expect(before.at(-1)).toBe(0xf4);
    // clientPIN {1: protocol 2, 2: subCommand setPIN (3)}
    await remote.request('cbor', Uint8Array.of(0x06, 0xa2, 0x01, 0x02, 0x02, 0x03), ctx());
    const after = await remote.request('cbor', Uint8Array.of(0x04), ctx()); // immediately after the answer
    expect(after.at(-1)).toBe(0xf5);
    expect(s.gateway.requestsSent).toBe(1); // both getInfo calls were free
    expect(auth.calls.slice(-2)).toEqual([0x06, 0x04]); // the agent refreshed its cache once
    // Commands that may sit inside a stateful sequence never get a getInfo slipped in after them:
    // getAssertion (→ getNextAssertion), clientPIN getKeyAgreement, credMgmt enumerateRPsBegin (→ GetNextRP).
    for (const req of [
      Uint8Array.of(0x02, 0xa0),
      Uint8Array.of(0x06, 0xa2, 0x01, 0x02, 0x02, 0x02),
      Uint8Array.of(0x0a, 0xa1, 0x01, 0x02),
    ]) {
      const callsBefore = auth.calls.length;
      await remote.request('cbor', req, ctx());
      expect(auth.calls.slice(callsBefore)).toEqual([req[0]]);
    }
  });

  it('a failed refresh keeps the previous getInfo cache', async () => {
    const s = setup();
    const auth = soft('a');
    await s.agent.add(auth);
    s.connect();
    await tick();
    await s.gateway.settled();
    const before = await s.remoteOf('a').request('cbor', Uint8Array.of(0x04), ctx());
    auth.request = async (_kind, payload) => {
      if (payload[0] === 0x04) throw new Error('key busy');
      return Uint8Array.of(0x00);
    };
    expect([...(await s.remoteOf('a').request('cbor', Uint8Array.of(0x06, 0xa2, 0x01, 0x02, 0x02, 0x03), ctx()))]).toEqual([0]);
    expect([...(await s.remoteOf('a').request('cbor', Uint8Array.of(0x04), ctx()))]).toEqual([...before]);
  });

  it('a changed label recreates the device (the face name is fixed at creation)', async () => {
    const s = setup();
    const a = soft('a', 'old name');
    await s.agent.add(a);
    s.connect();
    await tick();
    await s.gateway.settled();
    s.agent.remove('a');
    await s.agent.add(soft('a', 'new name'));
    await tick();
    await s.gateway.settled();
    expect(s.gateway.list().map((d) => d.label)).toEqual(['new name']);
    expect(s.faces.map((f) => [f.label, f.closed])).toEqual([
      ['old name', true],
      ['new name', false],
    ]);
  });

  it('an agent sending a REQUEST frame to the gateway is a protocol error: the connection is closed', async () => {
    const s = setup();
    const sent: Frame[] = [];
    let closed = '';
    const handlers = s.gateway.attachAgent({
      fingerprint: 'x',
      name: 'rogue',
      send: (f) => void sent.push(f),
      close: (r) => void (closed = r),
    });
    handlers.frame({ type: 'request', requestId: 1, authenticatorId: 'a', kind: 'cbor', payload: Uint8Array.of(4) });
    expect(sent[0]).toMatchObject({ type: 'error', requestId: null, code: 1 });
    expect(closed).toMatch(/request/);
  });

  it('close() removes every device and closes every face', async () => {
    const s = setup();
    await s.agent.add(soft('a'));
    await s.agent.add(soft('b'));
    s.connect();
    await tick();
    await s.gateway.settled();
    await s.gateway.close();
    expect(s.gateway.list()).toEqual([]);
    expect(s.faces.map((f) => f.closed)).toEqual([true, true]);
    // A connection that completes its handshake during shutdown is closed at once, on both sides.
    const refused: string[] = [];
    const late = { fingerprint: 'late', name: 'late', send() {}, close: (r: string) => void refused.push(r) };
    s.gateway.attachAgent(late);
    s.agent.close();
    s.agent.attachGateway(late);
    expect(refused).toEqual(['gateway shutting down', 'agent shutting down']);
  });

  it('an export list too long for one frame leaves out the largest getInfo caches instead of failing', async () => {
    const s = setup();
    for (let i = 0; i < 40; i++) {
      const auth = soft(`k${i}`);
      auth.info = new Uint8Array(600 + i); // 40 caches of ~600 bytes: ~25 KiB, more than one 16 KiB frame
      await s.agent.add(auth, auth.info);
    }
    const list = s.agent.list();
    const frame = encodeFrame({ type: 'authenticators', authenticators: list });
    expect(frame.length - 4).toBeLessThanOrEqual(16 * 1024);
    expect(list).toHaveLength(40);
    const kept = list.filter((a) => a.getInfo.length > 0);
    expect(kept.length).toBeGreaterThan(15);
    expect(kept.length).toBeLessThan(40);
    // The largest ones went first.
    expect(Math.max(...kept.map((a) => a.getInfo.length))).toBeLessThan(
      Math.min(...list.filter((a) => a.getInfo.length === 0).map((a) => Number(a.id.slice(1)) + 600)),
    );
    s.connect();
    await tick();
    await s.gateway.settled();
    expect(s.gateway.list()).toHaveLength(40);
  });

  it('the agent refuses to re-export a remote authenticator and duplicate ids', async () => {
    const s = setup();
    await s.agent.add(soft('a'));
    await expect(s.agent.add(soft('a'))).rejects.toThrow(/already/);
    const remoteLike = new FakeAuthenticator({ id: 'r', label: 'r', transport: 'remote', ctap1: false, wink: false });
    await expect(s.agent.add(remoteLike)).rejects.toThrow(/remote/);
  });
});
