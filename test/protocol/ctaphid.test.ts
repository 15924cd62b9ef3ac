import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  CID_BROADCAST,
  CTAPHID_CBOR,
  CTAPHID_ERR_CHANNEL_BUSY,
  CTAPHID_ERR_INVALID_CHANNEL,
  CTAPHID_ERR_INVALID_LEN,
  CTAPHID_ERR_INVALID_SEQ,
  CTAPHID_ERR_MSG_TIMEOUT,
  CTAPHID_ERROR,
  CTAPHID_INIT,
  CTAPHID_PING,
  CtaphidError,
  CtaphidReassembler,
  HID_REPORT_SIZE,
  MAX_MESSAGE_SIZE,
  decodeInitResponse,
  encodeInitResponse,
  errorReport,
  fragment,
  parsePacketHeader,
  reportCount,
  type ReassemblyResult,
} from '../../protocol/ctaphid.ts';

const CID = 0x01020304;

function feedAll(r: CtaphidReassembler, reports: Uint8Array[], now = 0): ReassemblyResult {
  let last: ReassemblyResult = { kind: 'ignored', reason: 'none' };
  for (const rep of reports) last = r.accept(rep, now);
  return last;
}

function initReport(cid: number, cmd: number, bcnt: number): Uint8Array {
  const r = new Uint8Array(64);
  new DataView(r.buffer).setUint32(0, cid);
  r[4] = cmd | 0x80;
  r[5] = bcnt >> 8;
  r[6] = bcnt & 0xff;
  return r;
}

function contReport(cid: number, seq: number): Uint8Array {
  const r = new Uint8Array(64);
  new DataView(r.buffer).setUint32(0, cid);
  r[4] = seq;
  return r;
}

describe('constants', () => {
  it('MAX_MESSAGE_SIZE is 57 + 128*59', () => {
    expect(MAX_MESSAGE_SIZE).toBe(7609);
  });
});

describe('fragment', () => {
  it('lays out an init packet per §11.2.4', () => {
    const [r, ...rest] = fragment(0xaabbccdd, CTAPHID_PING, Uint8Array.of(1, 2, 3));
    expect(rest).toHaveLength(0);
    expect(r.length).toBe(64);
    expect([...r.subarray(0, 10)]).toEqual([0xaa, 0xbb, 0xcc, 0xdd, 0x81, 0, 3, 1, 2, 3]);
    expect(r.subarray(10).every((b) => b === 0)).toBe(true);
  });

  it('uses continuation packets with seq 0.. for long payloads', () => {
    const payload = new Uint8Array(57 + 59 + 1).map((_, i) => i & 0xff);
    const reps = fragment(CID, CTAPHID_CBOR, payload);
    expect(reps).toHaveLength(3);
    expect(reps[1][4]).toBe(0);
    expect(reps[2][4]).toBe(1);
    expect(reps[1][5]).toBe(57);
    expect(reps[2][5]).toBe((57 + 59) & 0xff);
    expect(reps[2].subarray(6).every((b) => b === 0)).toBe(true);
  });

  it('produces 129 reports for 7609 bytes and rejects 7610', () => {
    expect(fragment(CID, CTAPHID_PING, new Uint8Array(7609))).toHaveLength(129);
    expect(reportCount(7609)).toBe(129);
    expect(() => fragment(CID, CTAPHID_PING, new Uint8Array(7610))).toThrow(CtaphidError);
  });

  it('an empty payload is one report', () => {
    const reps = fragment(CID, CTAPHID_PING, new Uint8Array(0));
    expect(reps).toHaveLength(1);
    expect(parsePacketHeader(reps[0])).toEqual({ type: 'init', cid: CID, cmd: CTAPHID_PING, bcnt: 0 });
  });

  it('rejects bad cid and cmd', () => {
    expect(() => fragment(-1, 1, new Uint8Array())).toThrow(RangeError);
    expect(() => fragment(CID, 0x80, new Uint8Array())).toThrow(RangeError);
  });

  it('errorReport is a one-byte CTAPHID_ERROR', () => {
    const r = errorReport(CID, CTAPHID_ERR_INVALID_SEQ);
    expect(parsePacketHeader(r)).toEqual({ type: 'init', cid: CID, cmd: CTAPHID_ERROR, bcnt: 1 });
    expect(r[7]).toBe(CTAPHID_ERR_INVALID_SEQ);
  });
});

describe('parsePacketHeader', () => {
  it('parses continuation packets and refuses wrong sizes', () => {
    expect(parsePacketHeader(contReport(CID, 5))).toEqual({ type: 'cont', cid: CID, seq: 5 });
    expect(parsePacketHeader(new Uint8Array(63))).toBeUndefined();
    expect(parsePacketHeader(new Uint8Array(65))).toBeUndefined();
  });
});

describe('INIT response codec', () => {
  it('round-trips 17 bytes', () => {
    const nonce = Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8);
    const enc = encodeInitResponse({
      nonce, cid: 0xdeadbeef, protocolVersion: 2, versionMajor: 1, versionMinor: 2, versionBuild: 3, capabilities: 5,
    });
    expect(enc.length).toBe(17);
    const dec = decodeInitResponse(enc);
    expect(dec.cid).toBe(0xdeadbeef);
    expect([...dec.nonce]).toEqual([...nonce]);
    expect(dec.capabilities).toBe(5);
    expect(() => decodeInitResponse(enc.subarray(0, 16))).toThrow(CtaphidError);
  });
});

describe('CtaphidReassembler (device side)', () => {
  it('reassembles a multi-packet message', () => {
    const payload = new Uint8Array(1000).map((_, i) => (i * 7) & 0xff);
    const r = new CtaphidReassembler();
    const res = feedAll(r, fragment(CID, CTAPHID_CBOR, payload));
    expect(res.kind).toBe('complete');
    if (res.kind === 'complete') {
      expect(res.cmd).toBe(CTAPHID_CBOR);
      expect(res.cid).toBe(CID);
      expect(res.payload).toEqual(payload);
    }
    expect(r.activeChannel).toBeUndefined();
  });

  it('BCNT 7610 -> INVALID_LEN; smaller configured max honoured', () => {
    expect(new CtaphidReassembler().accept(initReport(CID, CTAPHID_PING, 7610), 0)).toMatchObject({
      kind: 'error', code: CTAPHID_ERR_INVALID_LEN, cid: CID,
    });
    const small = new CtaphidReassembler({ maxMessageSize: 100 });
    expect(small.accept(initReport(CID, CTAPHID_PING, 101), 0)).toMatchObject({ kind: 'error', code: CTAPHID_ERR_INVALID_LEN });
    expect(small.accept(initReport(CID, CTAPHID_PING, 100), 0)).toMatchObject({ kind: 'partial' });
  });

  it('skipped sequence -> INVALID_SEQ and drops the message', () => {
    const r = new CtaphidReassembler();
    expect(r.accept(initReport(CID, CTAPHID_PING, 200), 0).kind).toBe('partial');
    expect(r.accept(contReport(CID, 0), 1).kind).toBe('partial');
    expect(r.accept(contReport(CID, 2), 2)).toMatchObject({ kind: 'error', code: CTAPHID_ERR_INVALID_SEQ, aborted: true });
    expect(r.activeChannel).toBeUndefined();
  });

  it('a new non-INIT init packet on the same channel mid-message -> INVALID_SEQ', () => {
    const r = new CtaphidReassembler();
    r.accept(initReport(CID, CTAPHID_PING, 200), 0);
    expect(r.accept(initReport(CID, CTAPHID_PING, 2), 1)).toMatchObject({ kind: 'error', code: CTAPHID_ERR_INVALID_SEQ });
  });

  it('INIT on the same channel resynchronises', () => {
    const r = new CtaphidReassembler();
    r.accept(initReport(CID, CTAPHID_PING, 200), 0);
    const res = r.accept(initReport(CID, CTAPHID_INIT, 8), 1);
    expect(res.kind).toBe('complete');
    expect(r.activeChannel).toBeUndefined();
  });

  it('late continuation -> MSG_TIMEOUT judged with the injected clock', () => {
    const r = new CtaphidReassembler({ timeoutMs: 500 });
    r.accept(initReport(CID, CTAPHID_PING, 200), 1000);
    expect(r.accept(contReport(CID, 0), 1500).kind).toBe('partial');
    expect(r.expire(1999)).toBeUndefined();
    expect(r.accept(contReport(CID, 1), 2001)).toMatchObject({ kind: 'error', code: CTAPHID_ERR_MSG_TIMEOUT, cid: CID });
  });

  it('expire() reports the timeout once', () => {
    const r = new CtaphidReassembler({ timeoutMs: 500 });
    r.accept(initReport(CID, CTAPHID_PING, 200), 0);
    expect(r.lastPacketAt).toBe(0);
    expect(r.expire(501)).toMatchObject({ kind: 'error', code: CTAPHID_ERR_MSG_TIMEOUT, cid: CID });
    expect(r.expire(502)).toBeUndefined();
  });

  it('another channel mid-message -> CHANNEL_BUSY, the first message carries on', () => {
    const r = new CtaphidReassembler();
    const reps = fragment(CID, CTAPHID_PING, new Uint8Array(100).fill(9));
    r.accept(reps[0], 0);
    expect(r.accept(initReport(0x55, CTAPHID_PING, 1), 1)).toMatchObject({
      kind: 'error', cid: 0x55, code: CTAPHID_ERR_CHANNEL_BUSY, aborted: false,
    });
    expect(r.accept(contReport(0x55, 0), 1).kind).toBe('ignored');
    const done = r.accept(reps[1], 2);
    expect(done.kind).toBe('complete');
  });

  it('cid 0 and broadcast (non-INIT) -> INVALID_CHANNEL; broadcast INIT passes', () => {
    const r = new CtaphidReassembler();
    expect(r.accept(initReport(0, CTAPHID_PING, 0), 0)).toMatchObject({ kind: 'error', code: CTAPHID_ERR_INVALID_CHANNEL });
    expect(r.accept(initReport(CID_BROADCAST, CTAPHID_PING, 0), 0)).toMatchObject({ kind: 'error', code: CTAPHID_ERR_INVALID_CHANNEL });
    expect(r.accept(initReport(CID_BROADCAST, CTAPHID_INIT, 8), 0)).toMatchObject({ kind: 'complete', cmd: CTAPHID_INIT });
  });

  it('spurious continuation and wrong-sized reports are ignored', () => {
    const r = new CtaphidReassembler();
    expect(r.accept(contReport(CID, 0), 0).kind).toBe('ignored');
    expect(r.accept(new Uint8Array(10), 0).kind).toBe('ignored');
  });
});

describe('CtaphidReassembler (host side)', () => {
  it('ignores other channels and does not judge channel validity', () => {
    const r = new CtaphidReassembler({ channel: CID_BROADCAST });
    expect(r.accept(fragment(CID, CTAPHID_PING, new Uint8Array(1))[0], 0).kind).toBe('ignored');
    expect(r.accept(fragment(CID_BROADCAST, CTAPHID_INIT, new Uint8Array(17))[0], 0).kind).toBe('complete');
  });
});

describe('properties', () => {
  it('fragment -> reassemble is the identity (10,000 runs)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 0xfffffffe }),
        fc.integer({ min: 0, max: 0x7f }),
        fc.uint8Array({ minLength: 0, maxLength: MAX_MESSAGE_SIZE, size: 'max' }),
        (cid, cmd, payload) => {
          const reps = fragment(cid, cmd, payload);
          if (reps.some((x) => x.length !== HID_REPORT_SIZE)) return false;
          const r = new CtaphidReassembler();
          const res = feedAll(r, reps);
          return res.kind === 'complete' && res.cid === cid && res.cmd === cmd && Buffer.from(res.payload).equals(payload);
        },
      ),
      { numRuns: 10_000 },
    );
  });

  it('random reports never throw and only produce typed results (10,000 runs)', () => {
    const codes = new Set([CTAPHID_ERR_INVALID_LEN, CTAPHID_ERR_INVALID_SEQ, CTAPHID_ERR_MSG_TIMEOUT, CTAPHID_ERR_CHANNEL_BUSY, CTAPHID_ERR_INVALID_CHANNEL]);
    // Mostly 64-byte reports on a few channels so that sequences actually interact.
    const report = fc.tuple(
      fc.constantFrom(0, 1, 2, CID_BROADCAST),
      fc.uint8Array({ minLength: 60, maxLength: 60 }),
      fc.integer({ min: 0, max: 400 }),
    );
    fc.assert(
      fc.property(fc.array(fc.oneof(report, fc.uint8Array({ maxLength: 70 })), { maxLength: 30 }), fc.boolean(), (items, host) => {
        const r = new CtaphidReassembler(host ? { channel: 1 } : {});
        let now = 0;
        for (const it of items) {
          let rep: Uint8Array;
          if (it instanceof Uint8Array) rep = it;
          else {
            rep = new Uint8Array(64);
            new DataView(rep.buffer).setUint32(0, it[0]);
            rep.set(it[1], 4);
            now += it[2];
          }
          const res = r.accept(rep, now);
          if (res.kind === 'error' && !codes.has(res.code)) return false;
          if (res.kind === 'complete' && res.payload.length > MAX_MESSAGE_SIZE) return false;
          r.expire(now);
        }
        return true;
      }),
      { numRuns: 10_000 },
    );
  });
});
