/**
 * tunnel/connection.ts on plain TCP sockets over 127.0.0.1 (the TLS layer is tested in tls.test.ts): frames that
 * arrive before the consumer attaches are queued (reading pauses when the queue is full), a throwing handler closes
 * the connection, a peer that stops reading is dropped once the write buffer bound is passed, sends after close
 * are dropped, and a bad frame from the consumer throws without touching the connection.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { FrameDecoder, TunnelProtocolError, encodeFrame, type Frame } from '../../protocol/tunnel.ts';
import { PeerConnection, type ConnectionOptions } from '../../tunnel/connection.ts';
import { captureLog, waitFor } from './helpers.ts';

const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const fn of cleanup.splice(0)) fn();
});

/** A connected pair of TCP sockets on 127.0.0.1. */
async function socketPair(): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const client = net.connect(port, '127.0.0.1');
  await new Promise<void>((r) => client.once('connect', () => r()));
  const serverSide = await accepted;
  server.close();
  cleanup.push(() => {
    client.destroy();
    serverSide.destroy();
  });
  return [client, serverSide];
}

function options(role: 'agent' | 'gateway', extra: Partial<ConnectionOptions> = {}): ConnectionOptions {
  return { role, name: role, log: captureLog().log, heartbeatIntervalMs: 60_000, deadAfterMs: 600_000, ...extra };
}

async function openPair(agentExtra: Partial<ConnectionOptions> = {}, gatewayExtra: Partial<ConnectionOptions> = {}) {
  const [a, g] = await socketPair();
  const [agent, gateway] = await Promise.all([
    PeerConnection.open(a, 'ag', options('agent', agentExtra)),
    PeerConnection.open(g, 'gw', options('gateway', gatewayExtra)),
  ]);
  cleanup.push(() => {
    agent.close();
    gateway.close();
  });
  return { agent, gateway, agentSocket: a, gatewaySocket: g };
}

const response = (requestId: number, size = 8): Frame => ({ type: 'response', requestId, payload: new Uint8Array(size).fill(requestId & 0xff) });

describe('PeerConnection', () => {
  it('exposes the peer HELLO', async () => {
    const { agent, gateway } = await openPair();
    expect([agent.name, agent.role, agent.fingerprint]).toEqual(['gateway', 'gateway', 'ag']);
    expect([gateway.name, gateway.role]).toEqual(['agent', 'agent']);
  });

  it('queues frames until the consumer attaches, pausing reads while the queue is full; nothing is lost or reordered', async () => {
    const { agent, gateway, gatewaySocket } = await openPair({}, { maxQueuedFrames: 10 });
    for (let i = 1; i <= 300; i++) agent.send(response(i));
    await waitFor(() => gatewaySocket.isPaused());
    const got: number[] = [];
    gateway.attach({ frame: (f) => f.type === 'response' && got.push(f.requestId), closed: () => {} });
    await waitFor(() => got.length === 300);
    expect(got).toEqual(Array.from({ length: 300 }, (_, i) => i + 1));
    expect(gatewaySocket.isPaused()).toBe(false);
  });

  it('async iteration ends when the connection closes', async () => {
    const { agent, gateway } = await openPair();
    agent.send(response(1));
    agent.send(response(2));
    agent.close();
    const got: Frame[] = [];
    for await (const f of gateway) got.push(f);
    expect(got).toEqual([response(1), response(2)]);
    expect((await gateway.closed).reason).toBe('remote');
  });

  it('a consumer attaching after the close still gets the queued frames, then closed()', async () => {
    const { agent, gateway } = await openPair();
    agent.send(response(5));
    agent.close();
    await gateway.closed;
    const events: string[] = [];
    gateway.attach({ frame: (f) => events.push(f.type), closed: (i) => events.push(`closed:${i.reason}`) });
    expect(events).toEqual(['response', 'closed:remote']);
  });

  it('allows one consumer only', async () => {
    const { gateway } = await openPair();
    gateway.attach({ frame: () => {}, closed: () => {} });
    expect(() => gateway.attach({ frame: () => {}, closed: () => {} })).toThrow(/consumer/);
  });

  it('a throwing frame handler closes the connection (handler-error)', async () => {
    const { agent, gateway } = await openPair();
    gateway.attach({
      frame: () => {
        throw new Error('bug');
      },
      closed: () => {},
    });
    agent.send(response(1));
    expect(await gateway.closed).toEqual({ reason: 'handler-error', message: 'frame handler failed: bug' });
    expect((await agent.closed).reason).toBe('remote');
  });

  it('drops a peer that stops reading once more than maxWriteBufferBytes are waiting', async () => {
    const { agent, gatewaySocket } = await openPair({ maxWriteBufferBytes: 64 * 1024 });
    gatewaySocket.pause(); // the gateway hangs: the kernel buffers fill, then ours grows
    let sent = 0;
    while (!agent.isClosed && sent < 20_000) {
      agent.send(response((sent % 1000) + 1, 7000));
      sent++;
    }
    expect(agent.isClosed).toBe(true);
    expect((await agent.closed).reason).toBe('write-overflow');
    expect(agent.send(response(1))).toBe(false); // later sends are dropped, not thrown
  });

  it('send() reports backpressure and drained() resolves once the buffer empties', async () => {
    const { agent, gateway } = await openPair();
    const got: Frame[] = [];
    gateway.attach({ frame: (f) => got.push(f), closed: () => {} });
    let below = true;
    let n = 0;
    while (below && n < 5000) below = agent.send(response(++n, 7000));
    await agent.drained();
    await waitFor(() => got.length === n, 10_000);
    expect(agent.isClosed).toBe(false);
  });

  it('a frame that cannot be encoded throws TunnelProtocolError and leaves the connection open', async () => {
    const { agent } = await openPair();
    expect(() => agent.send({ type: 'response', requestId: 0, payload: Uint8Array.of(1) })).toThrow(TunnelProtocolError);
    expect(agent.isClosed).toBe(false);
  });

  it('close() is graceful and idempotent; both sides learn why', async () => {
    const { agent, gateway } = await openPair();
    const closes: string[] = [];
    gateway.attach({ frame: () => {}, closed: (i) => closes.push(i.reason) });
    agent.close('done');
    agent.close('again');
    expect(await agent.closed).toEqual({ reason: 'local', message: 'done' });
    expect((await gateway.closed).reason).toBe('remote');
    expect(closes).toEqual(['remote']);
  });

  it('a connection-level ERROR from the peer is delivered and logged', async () => {
    const [a, g] = await socketPair();
    const cap = captureLog();
    const opening = PeerConnection.open(g, 'raw', { ...options('gateway'), log: cap.log });
    const decoder = new FrameDecoder();
    const received: Frame[] = [];
    a.on('data', (d: Buffer) => received.push(...decoder.push(d)));
    a.write(encodeFrame({ type: 'hello', version: 1, role: 'agent', name: 'raw' }));
    a.write(encodeFrame({ type: 'error', requestId: null, code: 9, message: 'agent shutting down' }));
    const gateway = await opening;
    const got: Frame[] = [];
    gateway.attach({ frame: (f) => got.push(f), closed: () => {} });
    expect(got).toEqual([{ type: 'error', requestId: null, code: 9, message: 'agent shutting down' }]);
    expect(cap.text()).toContain('agent shutting down');
    await waitFor(() => received.length >= 1);
    expect(received[0]).toEqual({ type: 'hello', version: 1, role: 'gateway', name: 'gateway' });
  });
});
