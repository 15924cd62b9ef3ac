/**
 * Device engine tests, including the transport checks of the public fido2-tests suite's test_hid.py
 * (BCNT overflow, bad sequence, message timeout, busy interleaving, bad channels, INIT/resync, ping sizes),
 * driven with reports and a fake clock.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  CAPABILITY_CBOR,
  CAPABILITY_LOCK,
  CAPABILITY_NMSG,
  CAPABILITY_WINK,
  CID_BROADCAST,
  CTAPHID_CANCEL,
  CTAPHID_CBOR,
  CTAPHID_ERR_CHANNEL_BUSY,
  CTAPHID_ERR_INVALID_CHANNEL,
  CTAPHID_ERR_INVALID_CMD,
  CTAPHID_ERR_INVALID_LEN,
  CTAPHID_ERR_INVALID_PAR,
  CTAPHID_ERR_INVALID_SEQ,
  CTAPHID_ERR_MSG_TIMEOUT,
  CTAPHID_ERR_OTHER,
  CTAPHID_ERROR,
  CTAPHID_INIT,
  CTAPHID_KEEPALIVE,
  CTAPHID_LOCK,
  CTAPHID_MSG,
  CTAPHID_PING,
  CTAPHID_WINK,
  STATUS_PROCESSING,
  STATUS_UPNEEDED,
  fragment,
  readCid,
} from '../../protocol/ctaphid.ts';
import { CTAP2_ERR_KEEPALIVE_CANCEL } from '../../protocol/ctap2.ts';
import { FakeAuthenticator, Host, makeDevice, type Message } from './ctaphid-device-harness.ts';
import { FakeClock } from '../support/fake-clock.ts';

function setup(opts: Parameters<typeof makeDevice>[2] = {}, auth = new FakeAuthenticator()) {
  const clock = new FakeClock();
  const device = makeDevice(auth, clock, opts);
  const host = new Host(device);
  return { clock, device, host, auth };
}

function initReport(cid: number, cmd: number, bcnt: number, data: number[] = []): Uint8Array {
  const r = new Uint8Array(64);
  new DataView(r.buffer).setUint32(0, cid);
  r[4] = cmd | 0x80;
  r[5] = bcnt >> 8;
  r[6] = bcnt & 0xff;
  r.set(data, 7);
  return r;
}

function contReport(cid: number, seq: number): Uint8Array {
  const r = new Uint8Array(64);
  new DataView(r.buffer).setUint32(0, cid);
  r[4] = seq;
  return r;
}

function expectError(msgs: Message[], cid: number, code: number): void {
  expect(msgs).toHaveLength(1);
  expect(msgs[0].cid).toBe(cid);
  expect(msgs[0].cmd).toBe(CTAPHID_ERROR);
  expect([...msgs[0].payload]).toEqual([code]);
}

const flush = () => new Promise<void>((r) => setImmediate(r));

describe('CTAPHID_INIT', () => {
  it('allocates a channel on broadcast with a 17-byte response (§11.2.9.1.3)', () => {
    const { host } = setup({}, new FakeAuthenticator({ ctap1: false, wink: true }));
    const nonce = Uint8Array.of(9, 8, 7, 6, 5, 4, 3, 2);
    host.send(CID_BROADCAST, CTAPHID_INIT, nonce);
    const [m, ...rest] = host.take();
    expect(rest).toHaveLength(0);
    expect(m.cid).toBe(CID_BROADCAST);
    expect(m.cmd).toBe(CTAPHID_INIT);
    expect(m.payload.length).toBe(17);
    expect([...m.payload.subarray(0, 8)]).toEqual([...nonce]);
    const cid = readCid(m.payload.subarray(8, 12));
    expect(cid).not.toBe(0);
    expect(cid).not.toBe(CID_BROADCAST);
    expect([...m.payload.subarray(12)]).toEqual([2, 1, 2, 3, CAPABILITY_CBOR | CAPABILITY_LOCK | CAPABILITY_WINK | CAPABILITY_NMSG]);
  });

  it('does not set NMSG when CTAP1 is supported, nor WINK when the authenticator cannot wink', () => {
    const { host } = setup({}, new FakeAuthenticator({ ctap1: true, wink: false }));
    host.send(CID_BROADCAST, CTAPHID_INIT, new Uint8Array(8));
    expect(host.take()[0].payload[16]).toBe(CAPABILITY_CBOR | CAPABILITY_LOCK);
  });

  it('never hands out 0, broadcast, or a channel in use', () => {
    const clock = new FakeClock();
    const seq = [0, 0xffffffff, 0x11111111, 0x11111111, 0x22222222];
    const device = makeDevice(new FakeAuthenticator(), clock, {
      randomBytes: () => {
        const b = new Uint8Array(4);
        new DataView(b.buffer).setUint32(0, seq.shift() ?? 0x33333333);
        return b;
      },
    });
    const host = new Host(device);
    expect(host.init()).toBe(0x11111111);
    expect(host.init()).toBe(0x22222222);
  });

  it('INIT with a payload length other than 8 -> INVALID_LEN', () => {
    const { host } = setup();
    host.send(CID_BROADCAST, CTAPHID_INIT, new Uint8Array(7));
    expectError(host.take(), CID_BROADCAST, CTAPHID_ERR_INVALID_LEN);
    host.send(CID_BROADCAST, CTAPHID_INIT, new Uint8Array(9));
    expectError(host.take(), CID_BROADCAST, CTAPHID_ERR_INVALID_LEN);
    const cid = host.init();
    host.send(cid, CTAPHID_INIT, new Uint8Array(0));
    expectError(host.take(), cid, CTAPHID_ERR_INVALID_LEN);
  });

  it('INIT on an allocated channel resynchronises it, dropping a half-sent message', () => {
    const { host } = setup();
    const cid = host.init();
    const reps = fragment(cid, CTAPHID_PING, new Uint8Array(200).fill(1));
    host.raw(reps[0]);
    host.raw(reps[1]);
    host.send(cid, CTAPHID_INIT, Uint8Array.of(1, 1, 1, 1, 1, 1, 1, 1));
    const [m] = host.take();
    expect(m.cid).toBe(cid);
    expect(m.cmd).toBe(CTAPHID_INIT);
    expect(readCid(m.payload.subarray(8, 12))).toBe(cid);
    host.raw(reps[2]); // the rest of the old message is now spurious
    host.raw(reps[3]);
    expect(host.take()).toEqual([]);
    host.send(cid, CTAPHID_PING, Uint8Array.of(5));
    expect(host.take()).toEqual([{ cid, cmd: CTAPHID_PING, payload: Uint8Array.of(5) }]);
  });

  it('INIT on an allocated channel aborts its pending request, whose late answer is dropped', async () => {
    const { host, auth } = setup();
    const cid = host.init();
    host.send(cid, CTAPHID_CBOR, Uint8Array.of(4));
    expect(auth.requests).toHaveLength(1);
    host.send(cid, CTAPHID_INIT, new Uint8Array(8));
    expect(auth.last.ctx.signal.aborted).toBe(true);
    expect(host.take().map((m) => m.cmd)).toEqual([CTAPHID_INIT]);
    auth.last.resolve(Uint8Array.of(0));
    await flush();
    expect(host.take()).toEqual([]);
    host.send(cid, CTAPHID_PING, Uint8Array.of(1));
    expect(host.take()[0].cmd).toBe(CTAPHID_PING);
  });

  it('broadcast INIT is answered even while another channel is mid-message', () => {
    const { host, device } = setup();
    const cid = host.init();
    const reps = fragment(cid, CTAPHID_PING, new Uint8Array(100).fill(3));
    host.raw(reps[0]);
    const other = new Host(device);
    const cid2 = other.init();
    expect(cid2).not.toBe(cid);
    host.raw(reps[1]);
    expect(host.take()).toEqual([{ cid, cmd: CTAPHID_PING, payload: new Uint8Array(100).fill(3) }]);
  });
});

describe('test_hid.py transport checks', () => {
  it.each([0, 57, 58, 7609])('ping echoes %i bytes', (n) => {
    const { host } = setup();
    const cid = host.init();
    const payload = new Uint8Array(n).map((_, i) => (i * 31 + 7) & 0xff);
    host.send(cid, CTAPHID_PING, payload);
    const msgs = host.take();
    expect(msgs).toHaveLength(1);
    expect(msgs[0].cmd).toBe(CTAPHID_PING);
    expect(msgs[0].cid).toBe(cid);
    expect(Buffer.from(msgs[0].payload).equals(Buffer.from(payload))).toBe(true);
  });

  it('BCNT 7610 -> INVALID_LEN', () => {
    const { host } = setup();
    const cid = host.init();
    host.raw(initReport(cid, CTAPHID_PING, 7610));
    expectError(host.take(), cid, CTAPHID_ERR_INVALID_LEN);
  });

  it('skipped sequence -> INVALID_SEQ', () => {
    const { host } = setup();
    const cid = host.init();
    host.raw(initReport(cid, CTAPHID_PING, 200));
    host.raw(contReport(cid, 0));
    host.raw(contReport(cid, 2));
    expectError(host.take(), cid, CTAPHID_ERR_INVALID_SEQ);
    // The channel recovers.
    host.send(cid, CTAPHID_PING, Uint8Array.of(1, 2));
    expect(host.take()[0].cmd).toBe(CTAPHID_PING);
  });

  it('missing continuation -> MSG_TIMEOUT between 0.4 and 1 s', () => {
    const { host, clock } = setup();
    const cid = host.init();
    host.raw(initReport(cid, CTAPHID_PING, 100));
    clock.advance(400);
    expect(host.take()).toEqual([]);
    clock.advance(600);
    expectError(host.take(), cid, CTAPHID_ERR_MSG_TIMEOUT);
    expect(clock.pending).toBe(0);
  });

  it('the message timeout restarts with each continuation', () => {
    const { host, clock } = setup();
    const cid = host.init();
    const reps = fragment(cid, CTAPHID_PING, new Uint8Array(200));
    host.raw(reps[0]);
    clock.advance(450);
    host.raw(reps[1]);
    clock.advance(450);
    host.raw(reps[2]);
    clock.advance(450);
    host.raw(reps[3]);
    const msgs = host.take();
    expect(msgs.map((m) => m.cmd)).toEqual([CTAPHID_PING]);
  });

  it('a continuation arriving after the timeout is answered MSG_TIMEOUT once, then ignored', () => {
    const { host, clock } = setup();
    const cid = host.init();
    const reps = fragment(cid, CTAPHID_PING, new Uint8Array(100));
    host.raw(reps[0]);
    clock.advance(1000);
    expectError(host.take(), cid, CTAPHID_ERR_MSG_TIMEOUT);
    host.raw(reps[1]);
    expect(host.take()).toEqual([]);
  });

  it('interleaved channel -> CHANNEL_BUSY at once; its continuation is ignored; the first transaction completes', () => {
    // test_check_busy_interleaved: a 99-byte ping on each of two channels.
    const { host, clock } = setup();
    const a = host.init();
    const b = host.init();
    host.raw(initReport(a, CTAPHID_PING, 0x63));
    host.raw(initReport(b, CTAPHID_PING, 0x63));
    expectError(host.take(), b, CTAPHID_ERR_CHANNEL_BUSY);
    clock.advance(100);
    host.raw(contReport(b, 0));
    expect(host.take()).toEqual([]);
    host.raw(contReport(a, 0));
    expect(host.take()).toEqual([{ cid: a, cmd: CTAPHID_PING, payload: new Uint8Array(0x63) }]);
  });

  it('busy for the second channel, then MSG_TIMEOUT for the first (test_check_busy)', () => {
    const { host, clock } = setup();
    const a = host.init();
    const b = host.init();
    host.raw(initReport(a, CTAPHID_PING, 0x400));
    host.raw(initReport(b, CTAPHID_PING, 0x400));
    expectError(host.take(), b, CTAPHID_ERR_CHANNEL_BUSY);
    clock.advance(500);
    expectError(host.take(), a, CTAPHID_ERR_MSG_TIMEOUT);
  });

  it('INIT from another channel mid-message is answered; the first message then times out (test_ping_abort_from_different_cid)', () => {
    const { host, clock } = setup();
    const a = host.init();
    const b = host.init();
    host.raw(initReport(a, CTAPHID_PING, 0x1000));
    host.raw(contReport(a, 0));
    host.raw(contReport(a, 1));
    host.send(b, CTAPHID_INIT, Uint8Array.of(0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88));
    const [m] = host.take();
    expect(m.cid).toBe(b);
    expect(m.cmd).toBe(CTAPHID_INIT);
    clock.advance(500);
    expectError(host.take(), a, CTAPHID_ERR_MSG_TIMEOUT);
  });

  it('a stray continuation with no message in progress gets no answer (test_not_cont)', () => {
    const { host, clock } = setup();
    const a = host.init();
    host.raw(contReport(a, 1));
    clock.advance(2000);
    expect(host.take()).toEqual([]);
  });

  it('a new command on the same channel mid-message -> INVALID_SEQ', () => {
    const { host } = setup();
    const a = host.init();
    host.raw(initReport(a, CTAPHID_PING, 100));
    host.send(a, CTAPHID_PING, Uint8Array.of(1));
    expectError(host.take(), a, CTAPHID_ERR_INVALID_SEQ);
  });

  it('CID 0 and ffffffff -> INVALID_CHANNEL', () => {
    const { host } = setup();
    host.init();
    host.send(0, CTAPHID_PING, Uint8Array.of(1));
    expectError(host.take(), 0, CTAPHID_ERR_INVALID_CHANNEL);
    host.send(0, CTAPHID_INIT, Uint8Array.of(0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88));
    expectError(host.take(), 0, CTAPHID_ERR_INVALID_CHANNEL);
    host.send(CID_BROADCAST, CTAPHID_PING, Uint8Array.of(0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88));
    expectError(host.take(), CID_BROADCAST, CTAPHID_ERR_INVALID_CHANNEL);
    host.send(CID_BROADCAST, CTAPHID_PING, Uint8Array.of(1));
    expectError(host.take(), CID_BROADCAST, CTAPHID_ERR_INVALID_CHANNEL);
    host.send(CID_BROADCAST, CTAPHID_CBOR, Uint8Array.of(4));
    expectError(host.take(), CID_BROADCAST, CTAPHID_ERR_INVALID_CHANNEL);
  });

  it('an unallocated channel, or another host link\'s channel -> INVALID_CHANNEL', () => {
    const { host, device } = setup();
    const a = host.init();
    host.send(0x12345678, CTAPHID_PING, Uint8Array.of(1));
    expectError(host.take(), 0x12345678, CTAPHID_ERR_INVALID_CHANNEL);
    const other = new Host(device);
    other.send(a, CTAPHID_PING, Uint8Array.of(1));
    expectError(other.take(), a, CTAPHID_ERR_INVALID_CHANNEL);
    expect(host.take()).toEqual([]);
  });

  it('unknown commands -> INVALID_CMD', () => {
    const { host } = setup();
    const a = host.init();
    for (const cmd of [0x00, 0x02, 0x05, CTAPHID_KEEPALIVE, CTAPHID_ERROR, 0x40, 0x7f]) {
      host.send(a, cmd, Uint8Array.of(1));
      expectError(host.take(), a, CTAPHID_ERR_INVALID_CMD);
    }
  });

  it('reports of the wrong size and spurious continuations are ignored', () => {
    const { host } = setup();
    const a = host.init();
    host.raw(new Uint8Array(63));
    host.raw(new Uint8Array(65));
    host.raw(contReport(a, 0));
    expect(host.take()).toEqual([]);
  });
});

describe('CTAPHID_MSG / CTAPHID_CBOR', () => {
  it('hands CBOR to the authenticator and returns its answer', async () => {
    const { host, auth } = setup();
    const a = host.init();
    const req = new Uint8Array(300).map((_, i) => i & 0xff);
    req[0] = 0x01;
    host.send(a, CTAPHID_CBOR, req);
    expect(auth.requests).toHaveLength(1);
    expect(auth.last.kind).toBe('cbor');
    expect(auth.last.payload).toEqual(req);
    const answer = new Uint8Array(1000).fill(0xab);
    answer[0] = 0;
    auth.last.resolve(answer);
    await flush();
    expect(host.take()).toEqual([{ cid: a, cmd: CTAPHID_CBOR, payload: answer }]);
  });

  it('MSG goes to the authenticator as kind msg when CTAP1 is supported, else INVALID_CMD', async () => {
    const s1 = setup({}, new FakeAuthenticator({ ctap1: true }));
    const a = s1.host.init();
    s1.host.send(a, CTAPHID_MSG, Uint8Array.of(0, 3, 0, 0));
    expect(s1.auth.last.kind).toBe('msg');
    s1.auth.last.resolve(Uint8Array.of(0x90, 0));
    await flush();
    expect(s1.host.take()).toEqual([{ cid: a, cmd: CTAPHID_MSG, payload: Uint8Array.of(0x90, 0) }]);

    const s2 = setup({}, new FakeAuthenticator({ ctap1: false }));
    const b = s2.host.init();
    s2.host.send(b, CTAPHID_MSG, Uint8Array.of(0, 3, 0, 0));
    expectError(s2.host.take(), b, CTAPHID_ERR_INVALID_CMD);
    expect(s2.auth.requests).toHaveLength(0);
  });

  it('an empty MSG -> INVALID_LEN whether or not CTAP1 is supported (test_no_data_in_u2f_msg)', () => {
    for (const ctap1 of [true, false]) {
      const { host, auth } = setup({}, new FakeAuthenticator({ ctap1 }));
      const a = host.init();
      host.send(a, CTAPHID_MSG, new Uint8Array(0));
      expectError(host.take(), a, CTAPHID_ERR_INVALID_LEN);
      expect(auth.requests).toHaveLength(0);
    }
  });

  it('an empty CBOR request -> INVALID_LEN', () => {
    const { host, auth } = setup();
    const a = host.init();
    host.send(a, CTAPHID_CBOR, new Uint8Array(0));
    expectError(host.take(), a, CTAPHID_ERR_INVALID_LEN);
    expect(auth.requests).toHaveLength(0);
  });

  it('KEEPALIVE every 100 ms with the latest status while pending, none after', async () => {
    const { host, auth, clock } = setup();
    const a = host.init();
    host.send(a, CTAPHID_CBOR, Uint8Array.of(1));
    clock.advance(99);
    expect(host.take()).toEqual([]);
    clock.advance(1);
    expect(host.take()).toEqual([{ cid: a, cmd: CTAPHID_KEEPALIVE, payload: Uint8Array.of(STATUS_PROCESSING) }]);
    auth.last.ctx.onStatus(STATUS_UPNEEDED);
    clock.advance(100);
    expect(host.take()).toEqual([{ cid: a, cmd: CTAPHID_KEEPALIVE, payload: Uint8Array.of(STATUS_UPNEEDED) }]);
    clock.advance(800);
    const ka = host.take();
    expect(ka).toHaveLength(8);
    expect(ka.every((m) => m.cmd === CTAPHID_KEEPALIVE && m.payload[0] === STATUS_UPNEEDED)).toBe(true);
    auth.last.resolve(Uint8Array.of(0));
    await flush();
    expect(host.take().map((m) => m.cmd)).toEqual([CTAPHID_CBOR]);
    clock.advance(1000);
    expect(host.take()).toEqual([]);
    expect(clock.pending).toBe(0);
  });

  it('a pending request makes the device busy for every other channel and link', async () => {
    const { host, auth, device } = setup();
    const a = host.init();
    const b = host.init();
    const other = new Host(device);
    const c = other.init();
    host.send(a, CTAPHID_CBOR, Uint8Array.of(4));
    host.send(b, CTAPHID_PING, Uint8Array.of(1));
    expectError(host.take(), b, CTAPHID_ERR_CHANNEL_BUSY);
    other.send(c, CTAPHID_CBOR, Uint8Array.of(4));
    expectError(other.take(), c, CTAPHID_ERR_CHANNEL_BUSY);
    host.send(a, CTAPHID_CBOR, Uint8Array.of(4));
    expectError(host.take(), a, CTAPHID_ERR_CHANNEL_BUSY);
    expect(auth.requests).toHaveLength(1);
    auth.last.resolve(Uint8Array.of(0));
    await flush();
    expect(host.take().map((m) => m.cmd)).toEqual([CTAPHID_CBOR]);
    other.send(c, CTAPHID_PING, Uint8Array.of(1));
    expect(other.take().map((m) => m.cmd)).toEqual([CTAPHID_PING]);
  });

  it('CTAPHID_CANCEL aborts the request and answers CTAP2_ERR_KEEPALIVE_CANCEL (0x2D)', async () => {
    const { host, auth, clock } = setup();
    const a = host.init();
    host.send(a, CTAPHID_CBOR, Uint8Array.of(2));
    clock.advance(100);
    host.take();
    host.send(a, CTAPHID_CANCEL);
    expect(auth.last.ctx.signal.aborted).toBe(true);
    expect(host.take()).toEqual([{ cid: a, cmd: CTAPHID_CBOR, payload: Uint8Array.of(CTAP2_ERR_KEEPALIVE_CANCEL) }]);
    auth.last.reject(new Error('aborted'));
    await flush();
    clock.advance(500);
    expect(host.take()).toEqual([]);
    expect(clock.pending).toBe(0);
    // The device is free again.
    host.send(a, CTAPHID_PING, Uint8Array.of(1));
    expect(host.take().map((m) => m.cmd)).toEqual([CTAPHID_PING]);
  });

  it('CANCEL from another channel, or with nothing pending, is ignored', async () => {
    const { host, auth } = setup();
    const a = host.init();
    const b = host.init();
    host.send(a, CTAPHID_CANCEL);
    expect(host.take()).toEqual([]);
    host.send(a, CTAPHID_CBOR, Uint8Array.of(2));
    host.send(b, CTAPHID_CANCEL);
    expect(host.take()).toEqual([]);
    expect(auth.last.ctx.signal.aborted).toBe(false);
    auth.last.resolve(Uint8Array.of(0, 0xa0));
    await flush();
    expect(host.take()).toEqual([{ cid: a, cmd: CTAPHID_CBOR, payload: Uint8Array.of(0, 0xa0) }]);
  });

  it('an authenticator rejection (or synchronous throw) -> ERROR OTHER', async () => {
    const { host, auth } = setup();
    const a = host.init();
    host.send(a, CTAPHID_CBOR, Uint8Array.of(4));
    auth.last.reject(new Error('tunnel down'));
    await flush();
    expectError(host.take(), a, CTAPHID_ERR_OTHER);

    const thrower = new FakeAuthenticator();
    thrower.request = () => {
      throw new Error('sync failure');
    };
    const s = setup({}, thrower);
    const b = s.host.init();
    s.host.send(b, CTAPHID_CBOR, Uint8Array.of(4));
    await flush();
    expectError(s.host.take(), b, CTAPHID_ERR_OTHER);
  });

  it('passes the configured origin to the authenticator', () => {
    const { host, auth } = setup({ origin: { gatewayName: 'vm1' } });
    const a = host.init();
    host.send(a, CTAPHID_CBOR, Uint8Array.of(4));
    expect(auth.last.ctx.origin).toEqual({ gatewayName: 'vm1' });
  });
});

describe('WINK and LOCK', () => {
  it('WINK calls the authenticator and answers with an empty WINK', async () => {
    const { host, auth } = setup();
    const a = host.init();
    host.send(a, CTAPHID_WINK);
    expect(host.take()).toEqual([{ cid: a, cmd: CTAPHID_WINK, payload: new Uint8Array(0) }]);
    await flush();
    expect(auth.winks).toBe(1);
  });

  it('LOCK gives one channel exclusive access for N seconds; 0 releases (§11.2.9.2.2)', () => {
    const { host, clock, device } = setup();
    const a = host.init();
    const b = host.init();
    host.send(a, CTAPHID_LOCK, Uint8Array.of(5));
    expect(host.take()).toEqual([{ cid: a, cmd: CTAPHID_LOCK, payload: new Uint8Array(0) }]);
    host.send(b, CTAPHID_PING, Uint8Array.of(1));
    expectError(host.take(), b, CTAPHID_ERR_CHANNEL_BUSY);
    host.send(a, CTAPHID_PING, Uint8Array.of(1));
    expect(host.take().map((m) => m.cmd)).toEqual([CTAPHID_PING]);
    // A new host can still allocate a channel, but cannot use it.
    const other = new Host(device);
    const c = other.init();
    other.send(c, CTAPHID_PING, Uint8Array.of(1));
    expectError(other.take(), c, CTAPHID_ERR_CHANNEL_BUSY);
    clock.advance(4999);
    host.send(b, CTAPHID_PING, Uint8Array.of(1));
    expectError(host.take(), b, CTAPHID_ERR_CHANNEL_BUSY);
    clock.advance(1);
    host.send(b, CTAPHID_PING, Uint8Array.of(1));
    expect(host.take().map((m) => m.cmd)).toEqual([CTAPHID_PING]);

    host.send(a, CTAPHID_LOCK, Uint8Array.of(10));
    host.take();
    host.send(a, CTAPHID_LOCK, Uint8Array.of(0));
    expect(host.take().map((m) => m.cmd)).toEqual([CTAPHID_LOCK]);
    host.send(b, CTAPHID_PING, Uint8Array.of(1));
    expect(host.take().map((m) => m.cmd)).toEqual([CTAPHID_PING]);
  });

  it('LOCK validates its parameter', () => {
    const { host } = setup();
    const a = host.init();
    host.send(a, CTAPHID_LOCK, Uint8Array.of(11));
    expectError(host.take(), a, CTAPHID_ERR_INVALID_PAR);
    host.send(a, CTAPHID_LOCK, Uint8Array.of(1, 2));
    expectError(host.take(), a, CTAPHID_ERR_INVALID_LEN);
    host.send(a, CTAPHID_LOCK);
    expectError(host.take(), a, CTAPHID_ERR_INVALID_LEN);
  });

  it('closing the locking link releases the lock', () => {
    const { host, device } = setup();
    const a = host.init();
    host.send(a, CTAPHID_LOCK, Uint8Array.of(10));
    const other = new Host(device);
    const c = other.init();
    host.link.close();
    other.send(c, CTAPHID_PING, Uint8Array.of(1));
    expect(other.take().map((m) => m.cmd)).toEqual([CTAPHID_PING]);
  });
});

describe('channel bookkeeping', () => {
  it('reports for a channel go to the host link that opened it', () => {
    const { host, device } = setup();
    const other = new Host(device);
    const a = host.init();
    const b = other.init();
    host.send(a, CTAPHID_PING, Uint8Array.of(1));
    other.send(b, CTAPHID_PING, Uint8Array.of(2));
    expect(host.take()).toEqual([{ cid: a, cmd: CTAPHID_PING, payload: Uint8Array.of(1) }]);
    expect(other.take()).toEqual([{ cid: b, cmd: CTAPHID_PING, payload: Uint8Array.of(2) }]);
  });

  it('caps allocated channels, evicting the least recently used idle one', () => {
    const { host, device } = setup({ maxChannels: 3 });
    const a = host.init();
    const b = host.init();
    const c = host.init();
    host.send(a, CTAPHID_PING, Uint8Array.of(1)); // a is now more recent than b
    host.take();
    const d = host.init();
    expect(device.channelCount).toBe(3);
    host.send(b, CTAPHID_PING, Uint8Array.of(1));
    expectError(host.take(), b, CTAPHID_ERR_INVALID_CHANNEL);
    for (const cid of [a, c, d]) {
      host.send(cid, CTAPHID_PING, Uint8Array.of(1));
      expect(host.take().map((m) => m.cmd)).toEqual([CTAPHID_PING]);
    }
  });

  it('never evicts the channel with a pending request', async () => {
    const { host, device, auth } = setup({ maxChannels: 2 });
    const a = host.init();
    host.send(a, CTAPHID_CBOR, Uint8Array.of(4));
    for (let i = 0; i < 5; i++) host.init();
    expect(device.channelCount).toBe(2);
    expect(auth.last.ctx.signal.aborted).toBe(false);
    auth.last.resolve(Uint8Array.of(0));
    await flush();
    expect(host.take().map((m) => m.cmd)).toEqual([CTAPHID_CBOR]);
  });

  it('idle channels expire', () => {
    const { host, clock } = setup({ channelIdleMs: 10_000 });
    const a = host.init();
    const b = host.init();
    clock.advance(9_000);
    host.send(b, CTAPHID_PING, Uint8Array.of(1));
    host.take();
    clock.advance(2_000);
    host.send(a, CTAPHID_PING, Uint8Array.of(1));
    expectError(host.take(), a, CTAPHID_ERR_INVALID_CHANNEL);
    host.send(b, CTAPHID_PING, Uint8Array.of(1));
    expect(host.take().map((m) => m.cmd)).toEqual([CTAPHID_PING]);
  });

  it('HostLink.close() drops the link\'s channels and aborts its pending request', async () => {
    const { host, device, auth, clock } = setup();
    const a = host.init();
    const other = new Host(device);
    const c = other.init();
    host.send(a, CTAPHID_CBOR, Uint8Array.of(4));
    host.link.close();
    expect(auth.last.ctx.signal.aborted).toBe(true);
    expect(device.channelCount).toBe(1);
    auth.last.resolve(Uint8Array.of(0));
    await flush();
    clock.advance(500);
    expect(host.take()).toEqual([]);
    expect(clock.pending).toBe(0);
    other.send(c, CTAPHID_PING, Uint8Array.of(1));
    expect(other.take().map((m) => m.cmd)).toEqual([CTAPHID_PING]);
  });

  it('close() clears every timer and silences the device', async () => {
    const { host, device, auth, clock } = setup();
    const other = new Host(device);
    const a = host.init();
    const c = other.init();
    host.send(a, CTAPHID_CBOR, Uint8Array.of(4));
    expect(clock.pending).toBeGreaterThan(0);
    device.close();
    expect(clock.pending).toBe(0);
    expect(auth.last.ctx.signal.aborted).toBe(true);
    other.send(c, CTAPHID_PING, Uint8Array.of(1));
    expect(other.take()).toEqual([]);

    const s = setup();
    const x = s.host.init();
    s.host.raw(initReport(x, CTAPHID_PING, 100));
    expect(s.clock.pending).toBe(1);
    s.device.close();
    expect(s.clock.pending).toBe(0);
  });
});

describe('robustness', () => {
  it('random report streams never throw, every output is a 64-byte report, and the device still answers (2,000 runs)', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            chan: fc.integer({ min: 0, max: 3 }),
            body: fc.uint8Array({ minLength: 60, maxLength: 60 }),
            dt: fc.integer({ min: 0, max: 300 }),
            link: fc.boolean(),
          }),
          { maxLength: 40 },
        ),
        (items) => {
          const { host, device, clock, auth } = setup({ maxChannels: 4 });
          const other = new Host(device);
          const cids = [0, CID_BROADCAST, host.init(), other.init()];
          for (const it of items) {
            const r = new Uint8Array(64);
            new DataView(r.buffer).setUint32(0, cids[it.chan]);
            r.set(it.body, 4);
            (it.link ? host : other).raw(r);
            clock.advance(it.dt);
          }
          for (const req of auth.requests) req.resolve(Uint8Array.of(0));
          host.take();
          other.take();
          device.close();
          return clock.pending === 0;
        },
      ),
      { numRuns: 2_000 },
    );
  });
});
