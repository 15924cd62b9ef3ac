/**
 * tunnel/tls.ts + tunnel/connection.ts over real TLS 1.3 on 127.0.0.1: mutual pinning in both listen/dial
 * directions, refusal of unknown peers (either side) with the fingerprint in the log and error, TLS 1.2 and
 * certificate-less clients refused, HELLO rules, protocol errors, and the heartbeat finding a silently dead peer.
 */
import tls from 'node:tls';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { ERR_PROTOCOL, ERR_VERSION, FrameDecoder, encodeFrame, type Frame } from '../../protocol/tunnel.ts';
import { PeerConnection, type CloseInfo } from '../../tunnel/connection.ts';
import type { Identity } from '../../tunnel/identity.ts';
import { Reconnector } from '../../tunnel/reconnect.ts';
import { PeerRefusedError, UntrustedPeerError, dial, listen, type TunnelServer } from '../../tunnel/tls.ts';
import { TrustSet } from '../../tunnel/trust.ts';
import { captureLog, newIdentity, removeTempDirs, waitFor } from './helpers.ts';

const HOST = '127.0.0.1';
const trusting = (...ids: Identity[]): TrustSet => new TrustSet(ids.map((i) => ({ fingerprint: i.fingerprint, source: 'cli' as const })));

const [agentId, gatewayId, strangerId] = await Promise.all([newIdentity(), newIdentity(), newIdentity()]);

const servers: TunnelServer[] = [];
const conns: PeerConnection[] = [];
const sockets: tls.TLSSocket[] = [];
afterEach(async () => {
  for (const c of conns.splice(0)) c.close();
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});
afterAll(removeTempDirs);

/** Listen with `id`, trusting `trust`; collect accepted peers. */
async function listenAs(role: 'agent' | 'gateway', id: Identity, trust: TrustSet, extra: object = {}) {
  const cap = captureLog();
  const peers: PeerConnection[] = [];
  const server = await listen({ host: HOST, port: 0 }, id, trust, (p) => (peers.push(p), conns.push(p)), {
    role,
    name: `${role}-listener`,
    log: cap.log,
    ...extra,
  });
  servers.push(server);
  return { server, port: server.address().port, peers, cap };
}

async function dialAs(role: 'agent' | 'gateway', id: Identity, trust: TrustSet, port: number, extra: object = {}) {
  const cap = captureLog();
  const conn = await dial({ host: HOST, port }, id, trust, { role, name: `${role}-dialer`, log: cap.log, ...extra });
  conns.push(conn);
  return { conn, cap };
}

/** Collect the frames a connection delivers. */
function collect(conn: PeerConnection): { frames: Frame[]; closed: CloseInfo[] } {
  const out = { frames: [] as Frame[], closed: [] as CloseInfo[] };
  conn.attach({ frame: (f) => out.frames.push(f), closed: (i) => out.closed.push(i) });
  return out;
}

/** A hand-driven TLS client presenting `id`'s certificate: writes raw bytes, decodes what it receives. */
async function rawClient(port: number, id: Identity | null, options: tls.ConnectionOptions = {}) {
  const socket = tls.connect({
    host: HOST,
    port,
    rejectUnauthorized: false,
    ...(id ? { key: id.keyPem, cert: id.certPem } : {}),
    ...options,
  });
  sockets.push(socket);
  const frames: Frame[] = [];
  const decoder = new FrameDecoder();
  let ended = false;
  socket.on('data', (d: Buffer) => frames.push(...decoder.push(d)));
  socket.on('end', () => (ended = true));
  socket.on('close', () => (ended = true));
  socket.on('error', () => (ended = true));
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', resolve);
    socket.once('error', reject);
  });
  return { socket, frames, isEnded: () => ended };
}

const agentHello: Frame = { type: 'hello', version: 1, role: 'agent', name: 'raw agent' };
const authenticators: Frame = {
  type: 'authenticators',
  authenticators: [{ id: 'soft', label: 'keytunnel soft authenticator', transport: 'soft', ctap1: true, wink: true, getInfo: Uint8Array.of(0, 0xa0) }],
};

describe('pairing', () => {
  it('gateway listens, agent dials: both sides pinned, HELLO exchanged, frames flow both ways', async () => {
    const gw = await listenAs('gateway', gatewayId, trusting(agentId));
    const { conn: agent } = await dialAs('agent', agentId, trusting(gatewayId), gw.port);
    expect(agent.fingerprint).toBe(gatewayId.fingerprint);
    expect(agent.name).toBe('gateway-listener');
    expect(agent.role).toBe('gateway');
    // The agent announces right after HELLO, possibly before the gateway's consumer is attached: nothing is lost.
    agent.send(authenticators);
    await waitFor(() => gw.peers.length === 1);
    const gateway = gw.peers[0];
    expect(gateway.fingerprint).toBe(agentId.fingerprint);
    expect(gateway.name).toBe('agent-dialer');
    const atGateway = collect(gateway);
    const atAgent = collect(agent);
    await waitFor(() => atGateway.frames.length === 1);
    expect(atGateway.frames[0]).toEqual(authenticators);
    gateway.send({ type: 'request', requestId: 1, authenticatorId: 'soft', kind: 'cbor', payload: Uint8Array.of(4) });
    await waitFor(() => atAgent.frames.length === 1);
    agent.send({ type: 'keepalive', requestId: 1, status: 2 });
    agent.send({ type: 'response', requestId: 1, payload: Uint8Array.of(0, 0xa0) });
    await waitFor(() => atGateway.frames.length === 3);
    expect(atGateway.frames.slice(1)).toEqual([
      { type: 'keepalive', requestId: 1, status: 2 },
      { type: 'response', requestId: 1, payload: Uint8Array.of(0, 0xa0) },
    ]);
    agent.close('bye');
    expect((await gateway.closed).reason).toBe('remote');
    expect(await agent.closed).toEqual({ reason: 'local', message: 'bye' });
    expect(atGateway.closed).toHaveLength(1);
  });

  it('agent listens, gateway dials (async iteration on the agent side)', async () => {
    const ag = await listenAs('agent', agentId, trusting(gatewayId));
    const { conn: gateway } = await dialAs('gateway', gatewayId, trusting(agentId), ag.port);
    expect(gateway.fingerprint).toBe(agentId.fingerprint);
    expect(gateway.role).toBe('agent');
    await waitFor(() => ag.peers.length === 1);
    const agent = ag.peers[0];
    expect(agent.fingerprint).toBe(gatewayId.fingerprint);
    gateway.send({ type: 'request', requestId: 7, authenticatorId: 'soft', kind: 'msg', payload: Uint8Array.of(0, 3, 0, 0) });
    gateway.send({ type: 'cancel', requestId: 7 });
    const seen: Frame[] = [];
    for await (const frame of agent) {
      seen.push(frame);
      if (seen.length === 2) break;
    }
    expect(seen.map((f) => f.type)).toEqual(['request', 'cancel']);
  });

  it('two listeners side by side each accept only their own peers', async () => {
    const other = await newIdentity();
    const gw = await listenAs('gateway', gatewayId, trusting(agentId));
    await expect(dialAs('agent', other, trusting(gatewayId), gw.port)).rejects.toBeInstanceOf(PeerRefusedError);
    await dialAs('agent', agentId, trusting(gatewayId), gw.port);
    await waitFor(() => gw.peers.length === 1);
    expect(gw.peers[0].fingerprint).toBe(agentId.fingerprint);
  });
});

describe('refusals', () => {
  it('the listener refuses an unknown dialer, logging its fingerprint and how to trust it', async () => {
    const gw = await listenAs('gateway', gatewayId, trusting(agentId));
    const cap = captureLog();
    const err = await dial({ host: HOST, port: gw.port }, strangerId, trusting(gatewayId), {
      role: 'agent',
      name: 'stranger',
      log: cap.log,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PeerRefusedError);
    expect((err as Error).message).toContain(strangerId.fingerprint); // what the other side must trust
    await waitFor(() => gw.cap.text().includes(`refusing unknown agent with fingerprint ${strangerId.fingerprint}`));
    expect(gw.cap.text()).toContain(`--trust ${strangerId.fingerprint}`);
    expect(gw.cap.text()).toContain(`keytunnel trust add ${strangerId.fingerprint}`);
    expect(gw.peers).toHaveLength(0);
  });

  it('the dialer refuses an unknown listener, with its fingerprint in the error and the log', async () => {
    const gw = await listenAs('gateway', strangerId, trusting(agentId));
    const cap = captureLog();
    const err = await dial({ host: HOST, port: gw.port }, agentId, trusting(gatewayId), { role: 'agent', name: 'a', log: cap.log }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(UntrustedPeerError);
    expect((err as UntrustedPeerError).fingerprint).toBe(strangerId.fingerprint);
    expect((err as Error).message).toContain(`--trust ${strangerId.fingerprint}`);
    expect(cap.text()).toContain(`refusing unknown gateway with fingerprint ${strangerId.fingerprint} at 127.0.0.1:${gw.port}`);
    await new Promise((r) => setTimeout(r, 50));
    expect(gw.peers).toHaveLength(0);
  });

  it('a TLS 1.2 client is refused', async () => {
    const gw = await listenAs('gateway', gatewayId, trusting(agentId));
    await expect(rawClient(gw.port, agentId, { maxVersion: 'TLSv1.2' })).rejects.toThrow(/protocol version|unsupported protocol|alert/i);
    expect(gw.peers).toHaveLength(0);
  });

  it('a client without a certificate is refused', async () => {
    const gw = await listenAs('gateway', gatewayId, trusting(agentId));
    const raw = await rawClient(gw.port, null);
    raw.socket.write(encodeFrame(agentHello));
    await waitFor(raw.isEnded);
    expect(gw.cap.text()).toContain('presented no certificate');
    expect(raw.frames).toEqual([]);
    expect(gw.peers).toHaveLength(0);
  });

  it('the listener negotiates TLS 1.3 only', async () => {
    const gw = await listenAs('gateway', gatewayId, trusting(agentId));
    const raw = await rawClient(gw.port, agentId);
    expect(raw.socket.getProtocol()).toBe('TLSv1.3');
  });
});

describe('HELLO and protocol rules', () => {
  it('a peer speaking another version gets ERROR VERSION and is closed', async () => {
    const gw = await listenAs('gateway', gatewayId, trusting(agentId));
    const raw = await rawClient(gw.port, agentId);
    raw.socket.write(encodeFrame({ ...agentHello, version: 2 } as Frame));
    await waitFor(raw.isEnded);
    expect(raw.frames[0]).toMatchObject({ type: 'hello', role: 'gateway', version: 1 });
    expect(raw.frames.at(-1)).toMatchObject({ type: 'error', requestId: null, code: ERR_VERSION });
    expect(gw.cap.text()).toContain('unsupported tunnel protocol version 2');
    expect(gw.peers).toHaveLength(0);
  });

  it('two agents refuse each other', async () => {
    const ag = await listenAs('agent', agentId, trusting(gatewayId));
    await expect(dialAs('agent', gatewayId, trusting(agentId), ag.port)).rejects.toThrow();
    expect(ag.peers).toHaveLength(0);
  });

  it('a frame before HELLO, garbage, or a frame of the wrong direction is a protocol error: ERROR then close', async () => {
    const gw = await listenAs('gateway', gatewayId, trusting(agentId));
    // Frame before HELLO.
    const a = await rawClient(gw.port, agentId);
    a.socket.write(encodeFrame(authenticators));
    await waitFor(a.isEnded);
    expect(a.frames.at(-1)).toMatchObject({ type: 'error', requestId: null, code: ERR_PROTOCOL });
    expect((a.frames.at(-1) as { message: string }).message).toContain('expected HELLO first');
    // Garbage after HELLO (an over-long length).
    const b = await rawClient(gw.port, agentId);
    b.socket.write(encodeFrame(agentHello));
    await waitFor(() => gw.peers.length === 1);
    const closed = gw.peers[0].closed;
    b.socket.write(Uint8Array.of(0xff, 0xff, 0xff, 0xff, 1));
    expect((await closed).reason).toBe('protocol-error');
    await waitFor(b.isEnded);
    expect(b.frames.at(-1)).toMatchObject({ type: 'error', code: ERR_PROTOCOL });
    expect((b.frames.at(-1) as { message: string }).message).toContain('FRAME_TOO_LONG');
    // An agent sending REQUEST.
    const c = await rawClient(gw.port, agentId);
    c.socket.write(encodeFrame(agentHello));
    c.socket.write(encodeFrame({ type: 'request', requestId: 1, authenticatorId: 'x', kind: 'cbor', payload: Uint8Array.of(4) }));
    await waitFor(c.isEnded);
    expect((c.frames.at(-1) as { message: string }).message).toContain('may not send REQUEST');
  });

  it('a peer that never sends HELLO is dropped after helloTimeoutMs', async () => {
    const gw = await listenAs('gateway', gatewayId, trusting(agentId), { connection: { helloTimeoutMs: 150 } });
    const raw = await rawClient(gw.port, agentId);
    await waitFor(raw.isEnded, 2000);
    expect(gw.cap.text()).toContain('no HELLO within 150 ms');
    expect(gw.peers).toHaveLength(0);
  });
});

describe('heartbeat', () => {
  const fast = { connection: { heartbeatIntervalMs: 20, deadAfterMs: 120 } };

  it('keeps a healthy idle link up: PINGs are answered with PONGs', async () => {
    const gw = await listenAs('gateway', gatewayId, trusting(agentId), fast);
    const { conn: agent } = await dialAs('agent', agentId, trusting(gatewayId), gw.port, fast);
    await waitFor(() => gw.peers.length === 1);
    await new Promise((r) => setTimeout(r, 600)); // 5x deadAfterMs with no application traffic
    expect(agent.isClosed).toBe(false);
    expect(gw.peers[0].isClosed).toBe(false);
  });

  it('answers a raw PING with a PONG carrying the nonce', async () => {
    const gw = await listenAs('gateway', gatewayId, trusting(agentId));
    const raw = await rawClient(gw.port, agentId);
    raw.socket.write(encodeFrame(agentHello));
    raw.socket.write(encodeFrame({ type: 'ping', nonce: 0xc0ffee }));
    await waitFor(() => raw.frames.some((f) => f.type === 'pong'));
    expect(raw.frames.find((f) => f.type === 'pong')).toEqual({ type: 'pong', nonce: 0xc0ffee });
  });

  it('finds a silently dead peer (it stops reading and answering) within deadAfterMs + one interval', async () => {
    const gw = await listenAs('gateway', gatewayId, trusting(agentId), fast);
    const raw = await rawClient(gw.port, agentId);
    raw.socket.write(encodeFrame(agentHello));
    await waitFor(() => gw.peers.length === 1);
    const start = performance.now();
    raw.socket.pause(); // the peer process hangs: no reads, no PONGs, no FIN
    const info = await gw.peers[0].closed;
    const elapsed = performance.now() - start;
    expect(info.reason).toBe('heartbeat-timeout');
    expect(elapsed).toBeLessThan(120 + 20 + 400); // generous slack for a loaded CI machine
    expect(gw.cap.text()).toContain('heartbeat-timeout');
  });

  it('the dialer also finds a dead listener side', async () => {
    const gw = await listenAs('gateway', gatewayId, trusting(agentId), { connection: { heartbeatIntervalMs: 60_000, deadAfterMs: 600_000 } });
    const { conn: agent } = await dialAs('agent', agentId, trusting(gatewayId), gw.port, fast);
    await waitFor(() => gw.peers.length === 1);
    // The gateway's connection neither pings (long interval) nor reads (paused): from the agent's side it is dead.
    (gw.peers[0] as unknown as { socket: tls.TLSSocket }).socket.pause();
    expect((await agent.closed).reason).toBe('heartbeat-timeout');
  });
});

describe('reconnect over real TLS', () => {
  it('keeps retrying until the listener appears, and reconnects after the link drops', async () => {
    // Find a free port, then leave it closed for a while.
    const probe = await listenAs('gateway', gatewayId, trusting(agentId));
    const port = probe.port;
    await servers.splice(servers.indexOf(probe.server), 1)[0].close();

    const cap = captureLog();
    const connected: PeerConnection[] = [];
    const reconnector = new Reconnector<PeerConnection>({
      connect: () => dial({ host: HOST, port }, agentId, trusting(gatewayId), { role: 'agent', name: 'a', log: cap.log }),
      onConnected: (c) => connected.push(c),
      log: cap.log,
      target: `gateway at ${HOST}:${port}`,
      backoff: { initialMs: 10, maxMs: 40, factor: 2, jitter: 0 },
    });
    reconnector.start();
    await waitFor(() => reconnector.consecutiveFailures >= 3);
    expect(cap.text()).toContain('ECONNREFUSED');

    const cap2 = captureLog();
    const peers: PeerConnection[] = [];
    const server = await listen({ host: HOST, port }, gatewayId, trusting(agentId), (p) => peers.push(p), {
      role: 'gateway',
      name: 'late gateway',
      log: cap2.log,
    });
    servers.push(server);
    await waitFor(() => connected.length === 1 && peers.length === 1);
    expect(connected[0].name).toBe('late gateway');

    peers[0].close('gateway restarting');
    await waitFor(() => connected.length === 2 && peers.length === 2);
    expect(connected[0].isClosed).toBe(true);
    expect(connected[1].isClosed).toBe(false);
    await reconnector.close();
    expect((await connected[1].closed).reason).toBe('local');
  });
});
