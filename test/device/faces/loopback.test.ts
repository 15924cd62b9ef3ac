/** The loopback face end to end: real TCP sockets on 127.0.0.1 against the real device engine. */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { Authenticator, RequestContext, RequestKind } from '../../../protocol/authenticator.ts';
import {
  CID_BROADCAST,
  CTAPHID_CBOR,
  CTAPHID_ERR_INVALID_CHANNEL,
  CTAPHID_ERROR,
  CTAPHID_INIT,
  CTAPHID_PING,
  fragment,
  readCid,
} from '../../../protocol/ctaphid.ts';
import { CtaphidDevice } from '../../../device/ctaphid-device.ts';
import { startLoopbackFace, type LoopbackFace } from '../../../device/faces/loopback.ts';

/** Echoes CBOR requests with a 0x00 status prefix; records aborts. */
class EchoAuthenticator implements Authenticator {
  readonly descriptor = { id: 'echo', label: 'echo', transport: 'soft' as const, ctap1: false, wink: false };
  aborted = 0;
  hold = false;
  request(_kind: RequestKind, payload: Uint8Array, ctx: RequestContext): Promise<Uint8Array> {
    if (this.hold) {
      return new Promise((_resolve, reject) => {
        ctx.signal.addEventListener('abort', () => {
          this.aborted++;
          reject(new Error('aborted'));
        });
      });
    }
    const out = new Uint8Array(payload.length + 1);
    out.set(payload, 1);
    return Promise.resolve(out);
  }
}

class RawClient {
  private buf = Buffer.alloc(0);
  private waiters: Array<() => void> = [];
  closed = false;
  private constructor(readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      for (const w of this.waiters.splice(0)) w();
    });
    socket.on('close', () => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w();
    });
  }
  static connect(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }
  async reports(n: number, timeoutMs = 2000): Promise<Uint8Array[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.buf.length < n * 64) {
      if (Date.now() > deadline || this.closed) throw new Error(`only ${this.buf.length} bytes received`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 20);
      });
    }
    const out: Uint8Array[] = [];
    for (let i = 0; i < n; i++) out.push(new Uint8Array(this.buf.subarray(i * 64, (i + 1) * 64)));
    this.buf = this.buf.subarray(n * 64);
    return out;
  }
  get buffered(): number {
    return this.buf.length;
  }
  write(data: Uint8Array): void {
    this.socket.write(data);
  }
  async init(): Promise<number> {
    this.write(fragment(CID_BROADCAST, CTAPHID_INIT, new Uint8Array(8).fill(0x42))[0]);
    const [r] = await this.reports(1);
    expect(r[4]).toBe(CTAPHID_INIT | 0x80);
    return readCid(r.subarray(15, 19));
  }
}

const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));

let face: LoopbackFace | undefined;
let device: CtaphidDevice | undefined;
const clients: RawClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.socket.destroy();
  await face?.close();
  device?.close();
  face = undefined;
  device = undefined;
});

async function start(auth = new EchoAuthenticator(), maxConnections?: number, maxBufferedOutput?: number) {
  device = new CtaphidDevice(auth);
  face = await startLoopbackFace(device, {
    host: '127.0.0.1',
    port: 0,
    ...(maxConnections ? { maxConnections } : {}),
    ...(maxBufferedOutput ? { maxBufferedOutput } : {}),
  });
  return { auth, face, device };
}

async function client(port: number): Promise<RawClient> {
  const c = await RawClient.connect(port);
  clients.push(c);
  return c;
}

describe('loopback face', () => {
  it('binds 127.0.0.1 on a free port', async () => {
    const { face } = await start();
    expect(face.address.host).toBe('127.0.0.1');
    expect(face.address.port).toBeGreaterThan(0);
  });

  it('reassembles reports split across TCP segments and answers in whole 64-byte reports', async () => {
    const { face } = await start();
    const c = await client(face.address.port);
    const init = fragment(CID_BROADCAST, CTAPHID_INIT, Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8))[0];
    c.write(init.subarray(0, 10));
    await settle(20);
    c.write(init.subarray(10, 60));
    await settle(20);
    c.write(init.subarray(60));
    const [r] = await c.reports(1);
    expect(readCid(r)).toBe(CID_BROADCAST);
    expect([...r.subarray(7, 15)]).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    const cid = readCid(r.subarray(15, 19));

    // Many reports in one write (a 7609-byte ping: 129 reports) plus a byte-at-a-time tail.
    const payload = new Uint8Array(7609).map((_, i) => i & 0xff);
    const reps = fragment(cid, CTAPHID_PING, payload);
    const all = Buffer.concat(reps.map((x) => Buffer.from(x)));
    c.write(all.subarray(0, all.length - 5));
    for (const b of all.subarray(all.length - 5)) {
      await settle(5);
      c.write(Uint8Array.of(b));
    }
    const back = await c.reports(129);
    expect(Buffer.concat(back.map((x) => Buffer.from(x))).equals(all)).toBe(true);
  });

  it('sends a channel\'s reports to the connection that opened it', async () => {
    const { face } = await start();
    const a = await client(face.address.port);
    const b = await client(face.address.port);
    const ca = await a.init();
    const cb = await b.init();
    b.write(fragment(ca, CTAPHID_PING, Uint8Array.of(1))[0]);
    const [err] = await b.reports(1);
    expect(readCid(err)).toBe(ca);
    expect(err[4]).toBe(CTAPHID_ERROR | 0x80);
    expect(err[7]).toBe(CTAPHID_ERR_INVALID_CHANNEL);
    a.write(fragment(ca, CTAPHID_CBOR, Uint8Array.of(4, 5))[0]);
    b.write(fragment(cb, CTAPHID_PING, Uint8Array.of(9))[0]);
    const [ra] = await a.reports(1);
    const [rb] = await b.reports(1);
    expect([...ra.subarray(0, 10)]).toEqual([...fragment(ca, CTAPHID_CBOR, Uint8Array.of(0, 4, 5))[0].subarray(0, 10)]);
    expect(readCid(rb)).toBe(cb);
    expect(rb[7]).toBe(9);
    await settle(50);
    expect(a.buffered).toBe(0);
    expect(b.buffered).toBe(0);
  });

  it('closing a connection closes its HostLink: channels dropped, pending request aborted', async () => {
    const auth = new EchoAuthenticator();
    auth.hold = true;
    const { face, device } = await start(auth);
    const a = await client(face.address.port);
    const ca = await a.init();
    a.write(fragment(ca, CTAPHID_CBOR, Uint8Array.of(4))[0]);
    await settle(150); // at least one keepalive
    expect(a.buffered).toBeGreaterThanOrEqual(64);
    expect(device.channelCount).toBe(1);
    a.socket.destroy();
    for (let i = 0; i < 50 && auth.aborted === 0; i++) await settle(10);
    expect(auth.aborted).toBe(1);
    expect(device.channelCount).toBe(0);
    expect(face.connections).toBe(0);
  });

  it('refuses connections beyond maxConnections', async () => {
    const { face } = await start(new EchoAuthenticator(), 1);
    const a = await client(face.address.port);
    await a.init();
    const b = await client(face.address.port);
    for (let i = 0; i < 50 && !b.closed; i++) await settle(10);
    expect(b.closed).toBe(true);
    expect(face.connections).toBe(1);
  });

  it('drops a host that keeps writing but never reads, instead of buffering without bound', async () => {
    const { face, device } = await start(new EchoAuthenticator(), undefined, 64 * 1024);
    const a = await client(face.address.port);
    const cid = await a.init();
    a.socket.pause();
    const ping = Buffer.concat(fragment(cid, CTAPHID_PING, new Uint8Array(7609)).map((x) => Buffer.from(x)));
    for (let i = 0; i < 4000 && !a.closed && face.connections > 0; i++) {
      if (!a.socket.write(ping)) await new Promise((r) => setTimeout(r, 5));
    }
    for (let i = 0; i < 100 && face.connections > 0; i++) await settle(10);
    expect(face.connections).toBe(0);
    expect(device.channelCount).toBe(0);
  });

  it('close() drops every connection and stops listening', async () => {
    const { face } = await start();
    const a = await client(face.address.port);
    await a.init();
    const port = face.address.port;
    await face.close();
    for (let i = 0; i < 50 && !a.closed; i++) await settle(10);
    expect(a.closed).toBe(true);
    await expect(RawClient.connect(port)).rejects.toThrow();
  });
});
