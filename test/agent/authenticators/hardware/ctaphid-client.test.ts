/**
 * Host-side CTAPHID client: against the real device engine through the loopback face (real TCP, real timers),
 * and against a scripted ReportPort for the cases a well-behaved engine never produces.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Authenticator, RequestContext, RequestKind } from '../../../../protocol/authenticator.ts';
import { STATUS_UPNEEDED } from '../../../../protocol/authenticator.ts';
import { CTAP2_ERR_KEEPALIVE_CANCEL } from '../../../../protocol/ctap2.ts';
import {
  CAPABILITY_CBOR,
  CAPABILITY_NMSG,
  CID_BROADCAST,
  CTAPHID_CBOR,
  CTAPHID_ERR_CHANNEL_BUSY,
  CTAPHID_ERR_INVALID_CMD,
  CTAPHID_ERROR,
  CTAPHID_INIT,
  CTAPHID_KEEPALIVE,
  CTAPHID_PING,
  CtaphidError,
  encodeInitResponse,
  fragment,
  readCid,
} from '../../../../protocol/ctaphid.ts';
import { CtaphidDevice } from '../../../../device/ctaphid-device.ts';
import { startLoopbackFace, type LoopbackFace } from '../../../../device/faces/loopback.ts';
import {
  CtaphidAbortError,
  CtaphidChannel,
  CtaphidClient,
  CtaphidTimeoutError,
  type ReportPort,
} from '../../../../agent/authenticators/hardware/ctaphid-client.ts';
import { LoopbackTransport } from '../../../../agent/authenticators/hardware/loopback-transport.ts';

/** CBOR: echoes with a 0x00 status. Command byte 0xee: waits `holdMs` reporting UPNEEDED; 0xff: waits until aborted. */
class ScriptedAuthenticator implements Authenticator {
  readonly descriptor = { id: 's', label: 'scripted', transport: 'soft' as const, ctap1: false, wink: false };
  aborted = 0;
  calls = 0;
  holdMs = 250;
  request(_kind: RequestKind, payload: Uint8Array, ctx: RequestContext): Promise<Uint8Array> {
    this.calls++;
    const echo = new Uint8Array(payload.length + 1);
    echo.set(payload, 1);
    if (payload[0] === 0xee) {
      ctx.onStatus(STATUS_UPNEEDED);
      return new Promise((resolve) => setTimeout(() => resolve(echo), this.holdMs));
    }
    if (payload[0] === 0xff) {
      return new Promise((_resolve, reject) => {
        ctx.signal.addEventListener('abort', () => {
          this.aborted++;
          reject(new Error('aborted'));
        });
      });
    }
    return Promise.resolve(echo);
  }
}

let face: LoopbackFace | undefined;
let device: CtaphidDevice | undefined;
const transports: LoopbackTransport[] = [];

afterEach(async () => {
  for (const t of transports.splice(0)) await t.close();
  await face?.close();
  device?.close();
  face = undefined;
  device = undefined;
});

async function start(auth = new ScriptedAuthenticator()) {
  device = new CtaphidDevice(auth, { version: { major: 4, minor: 5, build: 6 } });
  face = await startLoopbackFace(device, { host: '127.0.0.1', port: 0 });
  return { auth, port: face.address.port };
}

async function connect(port: number, opts: ConstructorParameters<typeof CtaphidClient>[1] = {}): Promise<CtaphidClient> {
  const t = await LoopbackTransport.connect('127.0.0.1', port);
  transports.push(t);
  return CtaphidClient.open(t, opts);
}

describe('CtaphidClient over the loopback face', () => {
  it('INIT allocates a channel and reports the device info', async () => {
    const { port } = await start();
    const c = await connect(port);
    expect(c.cid).toBeDefined();
    expect(c.cid).not.toBe(0);
    expect(c.cid).not.toBe(CID_BROADCAST);
    expect(c.info?.protocolVersion).toBe(2);
    expect([c.info?.versionMajor, c.info?.versionMinor, c.info?.versionBuild]).toEqual([4, 5, 6]);
    expect((c.info?.capabilities ?? 0) & (CAPABILITY_CBOR | CAPABILITY_NMSG)).toBe(CAPABILITY_CBOR | CAPABILITY_NMSG);
  });

  it.each([0, 57, 58, 7609])('ping round-trips %i bytes', async (n) => {
    const { port } = await start();
    const c = await connect(port);
    const data = new Uint8Array(n).map((_, i) => (i * 13) & 0xff);
    expect(await c.ping(data)).toEqual(data);
  });

  it('CBOR requests reach the authenticator and come back', async () => {
    const { port } = await start();
    const c = await connect(port);
    const req = new Uint8Array(3000).fill(0x11);
    const resp = await c.cbor(req);
    expect(resp[0]).toBe(0);
    expect(resp.subarray(1)).toEqual(req);
  });

  it('reports KEEPALIVE status while the authenticator works', async () => {
    const { port } = await start();
    const c = await connect(port);
    const statuses: number[] = [];
    const resp = await c.cbor(Uint8Array.of(0xee), { onKeepalive: (s) => statuses.push(s) });
    expect([...resp]).toEqual([0, 0xee]);
    expect(statuses.length).toBeGreaterThanOrEqual(1);
    expect(statuses.every((s) => s === STATUS_UPNEEDED)).toBe(true);
  });

  it('aborting sends CTAPHID_CANCEL and returns the device\'s CTAP2_ERR_KEEPALIVE_CANCEL', async () => {
    const { port, auth } = await start();
    const c = await connect(port);
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 150);
    const resp = await c.cbor(Uint8Array.of(0xff), { signal: ac.signal });
    expect([...resp]).toEqual([CTAP2_ERR_KEEPALIVE_CANCEL]);
    expect(auth.aborted).toBe(1);
    expect(await c.ping(Uint8Array.of(1))).toEqual(Uint8Array.of(1));
  });

  it('CTAPHID_ERROR becomes a typed CtaphidError', async () => {
    const { port } = await start();
    const c = await connect(port);
    const err = await c.msg(Uint8Array.of(0, 3, 0, 0)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CtaphidError);
    expect((err as CtaphidError).code).toBe(CTAPHID_ERR_INVALID_CMD);
    // The channel is still fine afterwards.
    expect(await c.ping(Uint8Array.of(2))).toEqual(Uint8Array.of(2));
  });

  it('a second host gets CHANNEL_BUSY while the first host\'s request is pending', async () => {
    const { port } = await start();
    const a = await connect(port);
    const b = await connect(port);
    const ac = new AbortController();
    const pending = a.cbor(Uint8Array.of(0xff), { signal: ac.signal });
    await new Promise((r) => setTimeout(r, 50));
    const err = await b.cbor(Uint8Array.of(4)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CtaphidError);
    expect((err as CtaphidError).code).toBe(CTAPHID_ERR_CHANNEL_BUSY);
    ac.abort();
    expect([...(await pending)]).toEqual([CTAP2_ERR_KEEPALIVE_CANCEL]);
    expect([...(await b.cbor(Uint8Array.of(4)))]).toEqual([0, 4]);
  });

  it('the overall timeout cancels, throws CtaphidTimeoutError, and the next call re-INITs', async () => {
    const { port, auth } = await start();
    const c = await connect(port);
    const first = c.cid;
    const err = await c.cbor(Uint8Array.of(0xff), { timeoutMs: 300 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CtaphidTimeoutError);
    for (let i = 0; i < 50 && auth.aborted === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(auth.aborted).toBe(1);
    expect(await c.cbor(Uint8Array.of(7))).toEqual(Uint8Array.of(0, 7));
    expect(c.cid).not.toBe(first);
  });

  it('queues concurrent transactions on one client', async () => {
    const { port } = await start();
    const c = await connect(port);
    const results = await Promise.all([1, 2, 3, 4, 5].map((i) => c.ping(new Uint8Array(100).fill(i))));
    results.forEach((r, i) => expect(r).toEqual(new Uint8Array(100).fill(i + 1)));
  });

  it('fails with the transport error when the face goes away', async () => {
    const { port } = await start();
    const c = await connect(port);
    await face!.close();
    await expect(c.ping(Uint8Array.of(1))).rejects.toThrow();
  });
});

/** A ReportPort whose device is a function from output reports to input reports. */
class ScriptedPort implements ReportPort {
  readonly written: Uint8Array[] = [];
  private readonly queue: Uint8Array[] = [];
  constructor(private readonly device: (report: Uint8Array, port: ScriptedPort) => void) {}
  push(...reports: Uint8Array[]): void {
    this.queue.push(...reports);
  }
  async write(report: Uint8Array): Promise<void> {
    this.written.push(report);
    this.device(report, this);
  }
  async read(timeoutMs: number): Promise<Uint8Array | undefined> {
    const r = this.queue.shift();
    if (r) return r;
    await new Promise((res) => setTimeout(res, Math.min(timeoutMs, 5)));
    return this.queue.shift();
  }
  close(): void {}
}

const CID = 0x0badcafe;

function initAnswer(report: Uint8Array, cid = CID, nonceOverride?: Uint8Array): Uint8Array {
  const nonce = nonceOverride ?? report.slice(7, 15);
  const payload = encodeInitResponse({ nonce, cid, protocolVersion: 2, versionMajor: 1, versionMinor: 0, versionBuild: 0, capabilities: CAPABILITY_CBOR });
  return fragment(CID_BROADCAST, CTAPHID_INIT, payload)[0];
}

describe('CtaphidClient against a scripted port', () => {
  it('ignores INIT answers carrying another nonce and reports of other channels', async () => {
    const port = new ScriptedPort((r, p) => {
      if (readCid(r) === CID_BROADCAST) {
        p.push(initAnswer(r, 0x1111, new Uint8Array(8).fill(0xaa)), initAnswer(r));
      } else if ((r[4] & 0x7f) === CTAPHID_PING) {
        p.push(fragment(0x2222, CTAPHID_PING, Uint8Array.of(9))[0], fragment(CID, CTAPHID_KEEPALIVE, Uint8Array.of(1))[0]);
        p.push(fragment(CID, CTAPHID_PING, r.slice(7, 7 + r[6]))[0]);
      }
    });
    const c = await CtaphidClient.open(port, { randomBytes: (n) => new Uint8Array(n).fill(0x55) });
    expect(c.cid).toBe(CID);
    expect([...port.written[0].subarray(7, 15)]).toEqual(new Array(8).fill(0x55));
    const ka: number[] = [];
    expect(await c.ping(Uint8Array.of(3), { onKeepalive: (s) => ka.push(s) })).toEqual(Uint8Array.of(3));
    expect(ka).toEqual([1]);
  });

  it('an ERROR answer to INIT is a CtaphidError; no answer is a CtaphidTimeoutError', async () => {
    const errPort = new ScriptedPort((_r, p) => p.push(fragment(CID_BROADCAST, CTAPHID_ERROR, Uint8Array.of(CTAPHID_ERR_CHANNEL_BUSY))[0]));
    await expect(CtaphidClient.open(errPort)).rejects.toMatchObject({ code: CTAPHID_ERR_CHANNEL_BUSY });
    const silent = new ScriptedPort(() => undefined);
    await expect(CtaphidClient.open(silent, { initTimeoutMs: 50 })).rejects.toBeInstanceOf(CtaphidTimeoutError);
  });

  it('a response with an unexpected command is a CtaphidError and forces a re-INIT', async () => {
    let inits = 0;
    const port = new ScriptedPort((r, p) => {
      if (readCid(r) === CID_BROADCAST) {
        inits++;
        p.push(initAnswer(r));
      } else p.push(fragment(CID, CTAPHID_CBOR, Uint8Array.of(0))[0]);
    });
    const c = await CtaphidClient.open(port);
    await expect(c.ping(Uint8Array.of(1))).rejects.toBeInstanceOf(CtaphidError);
    await expect(c.cbor(Uint8Array.of(4))).resolves.toEqual(Uint8Array.of(0));
    expect(inits).toBe(2);
  });

  it('an abort that lands while the CBOR request is being written still sends CTAPHID_CANCEL', async () => {
    const ac = new AbortController();
    const port = new ScriptedPort((r, p) => {
      if (readCid(r) === CID_BROADCAST) return p.push(initAnswer(r));
      const cmd = r[4] & 0x7f;
      if (r[4] & 0x80 && cmd === CTAPHID_CBOR) ac.abort();
      if (r[4] & 0x80 && cmd === 0x11) p.push(fragment(CID, CTAPHID_CBOR, Uint8Array.of(CTAP2_ERR_KEEPALIVE_CANCEL))[0]);
    });
    const c = await CtaphidClient.open(port);
    const resp = await c.cbor(new Uint8Array(200).fill(1), { signal: ac.signal, timeoutMs: 2000 });
    expect([...resp]).toEqual([CTAP2_ERR_KEEPALIVE_CANCEL]);
    expect(port.written.filter((r) => r[4] === (0x80 | 0x11))).toHaveLength(1);
  });

  it('aborting a non-CBOR transaction rejects with CtaphidAbortError promptly; an aborted signal never sends', async () => {
    const port = new ScriptedPort((r, p) => {
      if (readCid(r) === CID_BROADCAST) p.push(initAnswer(r));
    });
    const c = await CtaphidClient.open(port);
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 30);
    await expect(c.ping(Uint8Array.of(1), { signal: ac.signal })).rejects.toBeInstanceOf(CtaphidAbortError);
    const before = port.written.length;
    await expect(c.ping(Uint8Array.of(1), { signal: AbortSignal.abort() })).rejects.toBeInstanceOf(CtaphidAbortError);
    // Only the re-INIT was written, not the ping.
    expect(port.written.slice(before).map((r) => readCid(r))).toEqual([CID_BROADCAST]);
  });
});

describe('CtaphidChannel: one transaction at a time, ordered by its caller', () => {
  /** Answers INIT, and answers a PING only when the test says so. */
  function heldPingPort() {
    const held: Uint8Array[] = [];
    const port = new ScriptedPort((r, p) => {
      if (readCid(r) === CID_BROADCAST) p.push(initAnswer(r));
      else if ((r[4] & 0x7f) === CTAPHID_PING) held.push(fragment(CID, CTAPHID_PING, r.slice(7, 7 + r[6]))[0]);
    });
    return { port, release: () => port.push(...held.splice(0)) };
  }

  it('refuses a transaction that overlaps a running one, without disturbing it', async () => {
    const { port, release } = heldPingPort();
    const channel = await CtaphidChannel.open(port);
    expect(channel.capabilities).toBe(CAPABILITY_CBOR);
    const first = channel.transact(CTAPHID_PING, Uint8Array.of(1), { timeoutMs: 2000 });
    const written = port.written.length;
    await expect(channel.transact(CTAPHID_PING, Uint8Array.of(2))).rejects.toThrow(/one transaction at a time/);
    expect(port.written.length).toBe(written);
    release();
    expect(await first).toEqual(Uint8Array.of(1));
    // Once the first is done the channel takes the next one.
    const second = channel.transact(CTAPHID_PING, Uint8Array.of(3), { timeoutMs: 2000 });
    await new Promise((r) => setTimeout(r, 10));
    release();
    expect(await second).toEqual(Uint8Array.of(3));
  });

  it('close never rejects and releases the port once', async () => {
    let closes = 0;
    const port = new ScriptedPort((r, p) => {
      if (readCid(r) === CID_BROADCAST) p.push(initAnswer(r));
    });
    port.close = () => {
      closes++;
      throw new Error('already gone');
    };
    const channel = await CtaphidChannel.open(port);
    await expect(channel.close()).resolves.toBeUndefined();
    await expect(channel.close()).resolves.toBeUndefined();
    expect(closes).toBe(1);
  });
});
