/**
 * The agent's tunnel listener under a connection flood (issue 11, finding 4), over real TLS 1.3 on 127.0.0.1
 * through startAgent: 200 idle TCP connections that never start TLS do not keep a trusted gateway out (it connects
 * and a request is answered within 2 s), and one trusted gateway opening many tunnels keeps at most a few — the
 * newest replace the oldest.
 */
import net from 'node:net';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { startAgent, type RunningAgent } from '../../agent/agent.ts';
import type { Authenticator, RequestContext, RequestKind } from '../../protocol/authenticator.ts';
import type { Frame } from '../../protocol/tunnel.ts';
import { DEFAULT_MAX_CONNECTIONS_PER_PEER } from '../../tunnel/admission.ts';
import type { CloseInfo, PeerConnection } from '../../tunnel/connection.ts';
import type { Identity } from '../../tunnel/identity.ts';
import { DEFAULT_HANDSHAKE_TIMEOUT_MS, dial } from '../../tunnel/tls.ts';
import { TrustSet } from '../../tunnel/trust.ts';
import { captureLog, newIdentity, removeTempDirs, waitFor } from '../tunnel/helpers.ts';

const HOST = '127.0.0.1';
const trusting = (...ids: Identity[]): TrustSet => new TrustSet(ids.map((i) => ({ fingerprint: i.fingerprint, source: 'cli' as const })));
const [agentId, gatewayId] = await Promise.all([newIdentity(), newIdentity()]);

/** Answers every request with status OK + the command byte it got. */
class EchoAuthenticator implements Authenticator {
  readonly descriptor = { id: 'echo', label: 'echo', transport: 'soft' as const, ctap1: false, wink: false };
  request(_kind: RequestKind, payload: Uint8Array, _ctx: RequestContext): Promise<Uint8Array> {
    return Promise.resolve(Uint8Array.of(0x00, payload[0]));
  }
}

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
afterAll(removeTempDirs);

async function agent(): Promise<RunningAgent> {
  const running = await startAgent({
    identity: agentId,
    trust: trusting(gatewayId),
    listen: { host: HOST, port: 0 },
    logger: captureLog().log,
    name: 'agent',
  });
  cleanups.push(() => running.close());
  await running.core.add(new EchoAuthenticator(), Uint8Array.of(0x00, 0xa0));
  return running;
}

async function gatewayDial(port: number): Promise<{ conn: PeerConnection; frames: Frame[]; closed: CloseInfo[] }> {
  const conn = await dial({ host: HOST, port }, gatewayId, trusting(agentId), { role: 'gateway', name: 'vm', log: captureLog().log });
  cleanups.push(() => conn.close());
  const out = { conn, frames: [] as Frame[], closed: [] as CloseInfo[] };
  conn.attach({ frame: (f) => out.frames.push(f), closed: (i) => out.closed.push(i) });
  return out;
}

/**
 * Open `n` TCP connections that never finish TLS — every other one sends the first bytes of a TLS record header
 * and stalls (a slow client) — and resolve once all are established.
 */
async function idleConnections(port: number, n: number): Promise<net.Socket[]> {
  const sockets: net.Socket[] = [];
  cleanups.push(() => sockets.forEach((s) => s.destroy()));
  await Promise.all(
    Array.from({ length: n }, () => {
      const s = net.connect(port, HOST);
      sockets.push(s);
      s.on('error', () => {}); // evicted ones are reset
      return new Promise<void>((resolve) =>
        s.once('connect', () => {
          if (sockets.length % 2 === 0) s.write(Uint8Array.of(0x16, 0x03, 0x01)); // handshake record, length never sent
          resolve();
        }),
      );
    }),
  );
  return sockets;
}

describe('agent listener under a connection flood', () => {
  it('200 idle TCP connections: a trusted gateway still connects and is answered within 2 s', async () => {
    const running = await agent();
    const port = running.address!.port;
    await idleConnections(port, 200);
    // Let the listener see every one of them before the gateway arrives.
    await new Promise((r) => setTimeout(r, 200));

    const started = performance.now();
    const gw = await gatewayDial(port);
    await waitFor(() => gw.frames.some((f) => f.type === 'authenticators'), 2000);
    gw.conn.send({ type: 'request', requestId: 1, authenticatorId: 'echo', kind: 'cbor', payload: Uint8Array.of(0x01, 0xa0) });
    await waitFor(() => gw.frames.some((f) => f.type === 'response'), 2000);
    const elapsed = performance.now() - started;

    expect(gw.frames.find((f) => f.type === 'response')).toEqual({ type: 'response', requestId: 1, payload: Uint8Array.of(0x00, 0x01) });
    expect(elapsed).toBeLessThan(2000);
    expect(running.core.gateways()).toHaveLength(1);
  }, 20_000);

  it(`a connection that never finishes TLS is dropped after the handshake timeout (${DEFAULT_HANDSHAKE_TIMEOUT_MS} ms)`, async () => {
    const running = await agent();
    const [idle] = await idleConnections(running.address!.port, 1);
    const started = performance.now();
    await new Promise<void>((resolve) => idle.once('close', () => resolve()));
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThan(DEFAULT_HANDSHAKE_TIMEOUT_MS - 500);
    expect(elapsed).toBeLessThan(DEFAULT_HANDSHAKE_TIMEOUT_MS + 1000);
    expect(DEFAULT_HANDSHAKE_TIMEOUT_MS).toBeLessThanOrEqual(5000);
  }, 20_000);

  it('a gateway opening many tunnels keeps at most a few: each new one replaces the oldest', async () => {
    const running = await agent();
    const port = running.address!.port;
    const tunnels: Awaited<ReturnType<typeof gatewayDial>>[] = [];
    for (let i = 0; i < 8; i++) {
      tunnels.push(await gatewayDial(port));
      await waitFor(() => tunnels[i].frames.some((f) => f.type === 'authenticators'));
    }
    const max = DEFAULT_MAX_CONNECTIONS_PER_PEER;
    // The oldest ones were closed by the agent; the newest `max` stay up and work.
    await waitFor(() => tunnels.slice(0, 8 - max).every((t) => t.closed.length === 1));
    await waitFor(() => running.core.gateways().length === max);
    for (const t of tunnels.slice(8 - max)) expect(t.closed).toEqual([]);
    const newest = tunnels[7];
    newest.conn.send({ type: 'request', requestId: 9, authenticatorId: 'echo', kind: 'cbor', payload: Uint8Array.of(0x02, 0xa0) });
    await waitFor(() => newest.frames.some((f) => f.type === 'response'));
    expect(running.core.gateways()).toHaveLength(max);
  }, 20_000);
});
