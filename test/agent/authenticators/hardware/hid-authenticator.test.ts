import { describe, expect, it } from 'vitest';
import type { KeepaliveStatus, RequestContext } from '../../../../protocol/authenticator.ts';
import {
  CAPABILITY_CBOR,
  CAPABILITY_LOCK,
  CAPABILITY_NMSG,
  CAPABILITY_WINK,
  CTAPHID_CBOR,
  CTAPHID_MSG,
  CTAPHID_ERR_CHANNEL_BUSY,
  CTAPHID_ERR_INVALID_CMD,
  CTAPHID_WINK,
  CtaphidError,
  MAX_MESSAGE_SIZE,
} from '../../../../protocol/ctaphid.ts';
import type { FidoDeviceInfo } from '../../../../agent/authenticators/hardware/device-info.ts';
import {
  HidBadRequestError,
  HidClosedError,
  HidDeviceRemovedError,
} from '../../../../agent/authenticators/hardware/errors.ts';
import type { CtaphidSession } from '../../../../agent/authenticators/hardware/ctaphid-session.ts';
import { BUSY_RETRY_LIMIT, HidAuthenticator } from '../../../../agent/authenticators/hardware/hid-authenticator.ts';
import { settle } from '../../../support/fake-clock.ts';

const GET_INFO_ANSWER = Uint8Array.of(0x00, 0xa1, 0x01, 0x81, 0x68, ...new TextEncoder().encode('FIDO_2_0'));

interface Call {
  cmd: number;
  payload: Uint8Array;
  signal: AbortSignal | undefined;
  onKeepalive: ((s: number) => void) | undefined;
  resolve: (v: Uint8Array) => void;
  reject: (e: unknown) => void;
}

/** A CTAPHID session whose transactions the test answers by hand (getInfo answered automatically). */
class FakeSession implements CtaphidSession {
  calls: Call[] = [];
  closeCalls = 0;
  constructor(
    readonly capabilities: number,
    private autoGetInfo: Uint8Array | Error | null = GET_INFO_ANSWER,
  ) {}
  transact(cmd: number, payload: Uint8Array, options: { signal?: AbortSignal; onKeepalive?: (s: number) => void }) {
    if (cmd === CTAPHID_CBOR && payload.length === 1 && payload[0] === 0x04 && this.autoGetInfo) {
      const a = this.autoGetInfo;
      this.autoGetInfo = null;
      return a instanceof Error ? Promise.reject(a) : Promise.resolve(a);
    }
    return new Promise<Uint8Array>((resolve, reject) => {
      this.calls.push({ cmd, payload, signal: options.signal, onKeepalive: options.onKeepalive, resolve, reject });
    });
  }
  async close(): Promise<void> {
    this.closeCalls++;
  }
}

const info: FidoDeviceInfo = {
  path: '/dev/hidraw4',
  vendorId: 0x1050,
  productId: 0x0407,
  product: 'YubiKey 5 NFC',
  manufacturer: 'Yubico',
  serialNumber: '9876543',
};

async function openWith(session: FakeSession): Promise<HidAuthenticator> {
  return HidAuthenticator.open(info, { openSession: async () => session });
}

function ctx(signal: AbortSignal = new AbortController().signal) {
  const statuses: KeepaliveStatus[] = [];
  const c: RequestContext = { signal, onStatus: (s) => statuses.push(s) };
  return { c, statuses };
}

describe('HidAuthenticator open', () => {
  it('describes the key from the enumeration record and INIT capabilities, and caches getInfo', async () => {
    const a = await openWith(new FakeSession(CAPABILITY_CBOR | CAPABILITY_WINK | CAPABILITY_LOCK));
    expect(a.descriptor).toEqual({
      id: 'hid:1050:0407:sn:9876543',
      label: 'YubiKey 5 NFC (serial 9876543)',
      transport: 'hid',
      ctap1: true,
      wink: true,
    });
    expect([...a.getInfo]).toEqual([...GET_INFO_ANSWER]);
    expect(a.gone).toBe(false);
  });

  it('CAPABILITY_NMSG means no CTAP1; no WINK capability means no wink', async () => {
    const a = await openWith(new FakeSession(CAPABILITY_CBOR | CAPABILITY_NMSG));
    expect(a.descriptor.ctap1).toBe(false);
    expect(a.descriptor.wink).toBe(false);
    await expect(a.wink()).rejects.toBeInstanceOf(HidBadRequestError);
  });

  it('a U2F-only key (no CAPABILITY_CBOR) is not asked for getInfo', async () => {
    const session = new FakeSession(CAPABILITY_WINK, null);
    const a = await openWith(session);
    expect(a.getInfo.length).toBe(0);
    expect(session.calls).toHaveLength(0);
    expect(a.descriptor.ctap1).toBe(true);
  });

  it('a getInfo error status is not cached', async () => {
    const a = await openWith(new FakeSession(CAPABILITY_CBOR, Uint8Array.of(0x01)));
    expect(a.getInfo.length).toBe(0);
  });

  it('getInfo at open is bounded by the open timeout, not the long per-request one', async () => {
    let seen: { signal?: AbortSignal; timeoutMs?: number } | undefined;
    const session = new FakeSession(CAPABILITY_CBOR, null);
    const transact = session.transact.bind(session);
    session.transact = (cmd, payload, options: { signal?: AbortSignal; timeoutMs?: number }) => {
      seen = options;
      return cmd === CTAPHID_CBOR ? Promise.resolve(GET_INFO_ANSWER) : transact(cmd, payload, options);
    };
    await HidAuthenticator.open(info, { openSession: async () => session, openTimeoutMs: 1234 });
    expect(seen?.timeoutMs).toBe(1234);
    expect(seen?.signal).toBeInstanceOf(AbortSignal);
  });

  it('a getInfo transport failure fails the open and releases the device', async () => {
    const session = new FakeSession(CAPABILITY_CBOR, new Error('read timeout'));
    await expect(openWith(session)).rejects.toThrow('read timeout');
    expect(session.closeCalls).toBe(1);
  });
});

describe('HidAuthenticator requests', () => {
  it("maps 'cbor' to CTAPHID_CBOR and 'msg' to CTAPHID_MSG and returns the key's answer as is", async () => {
    const session = new FakeSession(CAPABILITY_CBOR);
    const a = await openWith(session);
    const p1 = a.request('cbor', Uint8Array.of(0x01, 0xa0), ctx().c);
    await settle();
    expect(session.calls[0].cmd).toBe(CTAPHID_CBOR);
    expect([...session.calls[0].payload]).toEqual([0x01, 0xa0]);
    session.calls[0].resolve(Uint8Array.of(0x2e)); // CTAP2_ERR_NO_CREDENTIALS is an answer, not a rejection
    expect([...(await p1)]).toEqual([0x2e]);

    const p2 = a.request('msg', Uint8Array.of(0x00, 0x03, 0x00, 0x00), ctx().c);
    await settle();
    expect(session.calls[1].cmd).toBe(CTAPHID_MSG);
    session.calls[1].resolve(Uint8Array.of(0x55, 0x32, 0x46, 0x5f, 0x56, 0x32, 0x90, 0x00));
    expect([...(await p2)].slice(-2)).toEqual([0x90, 0x00]);
  });

  it('passes PROCESSING and UPNEEDED keepalives to ctx.onStatus and drops unknown statuses', async () => {
    const session = new FakeSession(CAPABILITY_CBOR);
    const a = await openWith(session);
    const { c, statuses } = ctx();
    const p = a.request('cbor', Uint8Array.of(0x01), c);
    await settle();
    const k = session.calls[0].onKeepalive!;
    k(1);
    k(2);
    k(7);
    k(2);
    session.calls[0].resolve(Uint8Array.of(0x00));
    await p;
    expect(statuses).toEqual([1, 2, 2]);
  });

  it('abort rejects the caller at once, tells the client (CANCEL), and holds the key until it has answered', async () => {
    const session = new FakeSession(CAPABILITY_CBOR);
    const a = await openWith(session);
    const ac = new AbortController();
    const p1 = a.request('cbor', Uint8Array.of(0x01), ctx(ac.signal).c);
    const p2 = a.request('cbor', Uint8Array.of(0x02), ctx().c);
    await settle();
    expect(session.calls).toHaveLength(1);
    ac.abort(new Error('host cancelled'));
    await expect(p1).rejects.toThrow('host cancelled');
    expect(session.calls[0].signal?.aborted).toBe(true);
    await settle();
    expect(session.calls).toHaveLength(1); // the key has not answered the cancelled message yet
    session.calls[0].resolve(Uint8Array.of(0x2d)); // CTAP2_ERR_KEEPALIVE_CANCEL
    await settle();
    expect(session.calls).toHaveLength(2);
    expect(session.calls[1].payload[0]).toBe(0x02);
    session.calls[1].resolve(Uint8Array.of(0x00));
    expect([...(await p2)]).toEqual([0x00]);
  });

  it('a request aborted while queued never reaches the key', async () => {
    const session = new FakeSession(CAPABILITY_CBOR);
    const a = await openWith(session);
    const ac = new AbortController();
    const p1 = a.request('cbor', Uint8Array.of(0x01), ctx().c);
    const p2 = a.request('cbor', Uint8Array.of(0x02), ctx(ac.signal).c);
    const p3 = a.request('cbor', Uint8Array.of(0x03), ctx().c);
    await settle();
    ac.abort(new Error('VM went away'));
    await expect(p2).rejects.toThrow('VM went away');
    session.calls[0].resolve(Uint8Array.of(0x00));
    await settle();
    session.calls[1].resolve(Uint8Array.of(0x00));
    await Promise.all([p1, p3]);
    expect(session.calls.map((c) => c.payload[0])).toEqual([0x01, 0x03]);
  });

  it('requests from several callers reach the key one at a time, in order', async () => {
    const session = new FakeSession(CAPABILITY_CBOR);
    const a = await openWith(session);
    const ps = [1, 2, 3].map((n) => a.request('cbor', Uint8Array.of(n), ctx().c));
    for (let i = 0; i < 3; i++) {
      await settle();
      expect(session.calls).toHaveLength(i + 1);
      expect(session.calls[i].payload[0]).toBe(i + 1);
      session.calls[i].resolve(Uint8Array.of(0x00, i));
    }
    expect((await Promise.all(ps)).map((r) => r[1])).toEqual([0, 1, 2]);
  });

  it('a removed key fails its pending and queued requests fast, and every later one', async () => {
    const session = new FakeSession(CAPABILITY_CBOR);
    const a = await openWith(session);
    const p1 = a.request('cbor', Uint8Array.of(0x01), ctx().c);
    const p2 = a.request('cbor', Uint8Array.of(0x02), ctx().c);
    await settle();
    a.markRemoved();
    await expect(p1).rejects.toBeInstanceOf(HidDeviceRemovedError);
    await expect(p2).rejects.toBeInstanceOf(HidDeviceRemovedError);
    expect(session.calls[0].signal?.aborted).toBe(true);
    expect(session.calls).toHaveLength(1);
    await expect(a.request('cbor', Uint8Array.of(0x03), ctx().c)).rejects.toBeInstanceOf(HidDeviceRemovedError);
    expect(a.gone).toBe(true);
    await settle();
    expect(session.closeCalls).toBe(1);
  });

  it('a device-gone failure from the transport removes the key for everyone queued behind', async () => {
    const session = new FakeSession(CAPABILITY_CBOR);
    const a = await openWith(session);
    const p1 = a.request('cbor', Uint8Array.of(0x01), ctx().c);
    const p2 = a.request('cbor', Uint8Array.of(0x02), ctx().c);
    await settle();
    session.calls[0].reject(new HidDeviceRemovedError(info.path));
    await expect(p1).rejects.toBeInstanceOf(HidDeviceRemovedError);
    await expect(p2).rejects.toBeInstanceOf(HidDeviceRemovedError);
    expect(session.calls).toHaveLength(1);
    expect(a.gone).toBe(true);
  });

  it('close fails outstanding requests with HidClosedError and releases the device once', async () => {
    const session = new FakeSession(CAPABILITY_CBOR);
    const a = await openWith(session);
    const p = a.request('cbor', Uint8Array.of(0x01), ctx().c);
    await settle();
    await a.close();
    await a.close();
    await expect(p).rejects.toBeInstanceOf(HidClosedError);
    expect(session.closeCalls).toBe(1);
  });

  it('refuses unknown kinds and oversize payloads without touching the key', async () => {
    const session = new FakeSession(CAPABILITY_CBOR);
    const a = await openWith(session);
    await expect(a.request('bogus' as 'cbor', Uint8Array.of(1), ctx().c)).rejects.toBeInstanceOf(HidBadRequestError);
    await expect(a.request('cbor', new Uint8Array(MAX_MESSAGE_SIZE + 1), ctx().c)).rejects.toBeInstanceOf(HidBadRequestError);
    expect(session.calls).toHaveLength(0);
  });

  it('wink sends CTAPHID_WINK through the queue', async () => {
    const session = new FakeSession(CAPABILITY_CBOR | CAPABILITY_WINK);
    const a = await openWith(session);
    const w = a.wink();
    await settle();
    expect(session.calls[0].cmd).toBe(CTAPHID_WINK);
    expect(session.calls[0].payload.length).toBe(0);
    session.calls[0].resolve(new Uint8Array(0));
    await w;
  });

  it('a wink while the key is busy is skipped, not queued behind the touch', async () => {
    const session = new FakeSession(CAPABILITY_CBOR | CAPABILITY_WINK);
    const a = await openWith(session);
    const p = a.request('cbor', Uint8Array.of(0x01), ctx().c);
    await settle();
    await a.wink();
    expect(session.calls.map((c) => c.cmd)).toEqual([CTAPHID_CBOR]);
    session.calls[0].resolve(Uint8Array.of(0x00));
    await p;
    await settle();
    expect(session.calls).toHaveLength(1);
  });

  it('retries after ERR_CHANNEL_BUSY (another program uses the key) and then answers', async () => {
    const session = new FakeSession(CAPABILITY_CBOR);
    const delays: number[] = [];
    const a = await HidAuthenticator.open(info, {
      openSession: async () => session,
      delay: async (ms) => {
        delays.push(ms);
      },
    });
    const p = a.request('cbor', Uint8Array.of(0x01), ctx().c);
    await settle();
    session.calls[0].reject(new CtaphidError(CTAPHID_ERR_CHANNEL_BUSY));
    await settle();
    session.calls[1].reject(new CtaphidError(CTAPHID_ERR_CHANNEL_BUSY));
    await settle();
    session.calls[2].resolve(Uint8Array.of(0x00));
    expect([...(await p)]).toEqual([0x00]);
    expect(delays).toEqual([100, 100]);
    expect(session.calls.map((c) => c.payload[0])).toEqual([1, 1, 1]);
  });

  it('gives up after the retry limit, and does not retry other CTAPHID errors', async () => {
    const session = new FakeSession(CAPABILITY_CBOR);
    const a = await HidAuthenticator.open(info, { openSession: async () => session, delay: async () => undefined });
    const p = a.request('cbor', Uint8Array.of(0x01), ctx().c);
    p.catch(() => undefined);
    for (let i = 0; i < BUSY_RETRY_LIMIT; i++) {
      await settle();
      session.calls[i].reject(new CtaphidError(CTAPHID_ERR_CHANNEL_BUSY));
    }
    await expect(p).rejects.toMatchObject({ code: CTAPHID_ERR_CHANNEL_BUSY });
    expect(session.calls).toHaveLength(BUSY_RETRY_LIMIT);

    const q = a.request('cbor', Uint8Array.of(0x02), ctx().c);
    await settle();
    session.calls[BUSY_RETRY_LIMIT].reject(new CtaphidError(CTAPHID_ERR_INVALID_CMD));
    await expect(q).rejects.toMatchObject({ code: CTAPHID_ERR_INVALID_CMD });
    expect(session.calls).toHaveLength(BUSY_RETRY_LIMIT + 1);
  });

  it('an abort during the busy back-off stops retrying', async () => {
    const session = new FakeSession(CAPABILITY_CBOR);
    let release!: () => void;
    const a = await HidAuthenticator.open(info, {
      openSession: async () => session,
      delay: (_ms, signal) =>
        new Promise<void>((resolve, reject) => {
          release = resolve;
          signal.addEventListener('abort', () => reject(signal.reason), { once: true });
        }),
    });
    const ac = new AbortController();
    const p = a.request('cbor', Uint8Array.of(0x01), ctx(ac.signal).c);
    await settle();
    session.calls[0].reject(new CtaphidError(CTAPHID_ERR_CHANNEL_BUSY));
    await settle();
    ac.abort(new Error('gave up'));
    await expect(p).rejects.toThrow('gave up');
    release();
    await settle();
    expect(session.calls).toHaveLength(1);
    // The key is free for the next caller.
    const q = a.request('cbor', Uint8Array.of(0x02), ctx().c);
    await settle();
    session.calls[1].resolve(Uint8Array.of(0x00));
    expect([...(await q)]).toEqual([0x00]);
  });
});
