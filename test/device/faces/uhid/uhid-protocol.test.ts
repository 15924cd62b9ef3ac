/**
 * The uhid event codec against the kernel ABI (include/uapi/linux/uhid.h; offsets as gcc lays out the packed
 * structs: sizeof(struct uhid_event) = 4380, uhid_create2_req.rd_data at 276 within the request).
 */
import { describe, expect, it } from 'vitest';
import {
  BUS_USB,
  UHID_CLOSE,
  UHID_CREATE2,
  UHID_DESTROY,
  UHID_EVENT_SIZE,
  UHID_GET_REPORT,
  UHID_GET_REPORT_REPLY,
  UHID_INPUT2,
  UHID_OPEN,
  UHID_OUTPUT,
  UHID_OUTPUT_REPORT,
  UHID_FEATURE_REPORT,
  UHID_SET_REPORT,
  UHID_SET_REPORT_REPLY,
  UHID_START,
  UHID_STOP,
  decodeEvent,
  encodeCreate2,
  encodeDestroy,
  encodeGetReportReply,
  encodeInput2,
  encodeSetReportReply,
  outputReport,
} from '../../../../device/faces/uhid/uhid-protocol.ts';
import { FIDO_REPORT_DESCRIPTOR } from '../../../../device/faces/usb-descriptors.ts';

const dv = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);

function event(type: number, fill: (b: Uint8Array, v: DataView) => void = () => {}): Uint8Array {
  const b = new Uint8Array(UHID_EVENT_SIZE);
  dv(b).setUint32(0, type, true);
  fill(b, dv(b));
  return b;
}

describe('uhid event codec', () => {
  it('has the kernel event numbers', () => {
    expect([UHID_DESTROY, UHID_START, UHID_STOP, UHID_OPEN, UHID_CLOSE, UHID_OUTPUT]).toEqual([1, 2, 3, 4, 5, 6]);
    expect([UHID_GET_REPORT, UHID_GET_REPORT_REPLY, UHID_CREATE2, UHID_INPUT2, UHID_SET_REPORT, UHID_SET_REPORT_REPLY]).toEqual([
      9, 10, 11, 12, 13, 14,
    ]);
    expect(UHID_EVENT_SIZE).toBe(4380);
  });

  it('encodes UHID_CREATE2 at the packed struct offsets', () => {
    const b = encodeCreate2({
      name: 'keytunnel soft authenticator',
      phys: 'keytunnel',
      uniq: 'abc',
      reportDescriptor: FIDO_REPORT_DESCRIPTOR,
      vendor: 0x1209,
      product: 0x0001,
      version: 0x0102,
      country: 0,
    });
    const v = dv(b);
    expect(b.length).toBe(UHID_EVENT_SIZE);
    expect(v.getUint32(0, true)).toBe(UHID_CREATE2);
    expect(new TextDecoder().decode(b.subarray(4, 4 + 28))).toBe('keytunnel soft authenticator');
    expect(b[4 + 28]).toBe(0);
    expect(new TextDecoder().decode(b.subarray(132, 141))).toBe('keytunnel');
    expect(new TextDecoder().decode(b.subarray(196, 199))).toBe('abc');
    expect(v.getUint16(260, true)).toBe(34); // rd_size
    expect(v.getUint16(262, true)).toBe(BUS_USB);
    expect(v.getUint32(264, true)).toBe(0x1209);
    expect(v.getUint32(268, true)).toBe(0x0001);
    expect(v.getUint32(272, true)).toBe(0x0102);
    expect(v.getUint32(276, true)).toBe(0);
    expect(b.subarray(280, 280 + 34)).toEqual(FIDO_REPORT_DESCRIPTOR);
    expect(b.subarray(280 + 34).every((x) => x === 0)).toBe(true);
  });

  it('keeps the name NUL-terminated and cuts it on a UTF-8 boundary', () => {
    const b = encodeCreate2({ name: 'é'.repeat(100), reportDescriptor: FIDO_REPORT_DESCRIPTOR, vendor: 1, product: 2 });
    const name = b.subarray(4, 132);
    expect(name[127]).toBe(0);
    const text = new TextDecoder('utf-8', { fatal: true }).decode(name.subarray(0, name.indexOf(0)));
    expect(text).toBe('é'.repeat(63));
  });

  it('rejects an empty or oversized report descriptor', () => {
    expect(() => encodeCreate2({ name: 'x', reportDescriptor: new Uint8Array(0), vendor: 1, product: 1 })).toThrow(RangeError);
    expect(() => encodeCreate2({ name: 'x', reportDescriptor: new Uint8Array(4097), vendor: 1, product: 1 })).toThrow(RangeError);
  });

  it('encodes UHID_INPUT2 as type, u16 size and the bare report', () => {
    const report = Uint8Array.from({ length: 64 }, (_, i) => i);
    const b = encodeInput2(report);
    expect(b.length).toBe(70);
    expect(dv(b).getUint32(0, true)).toBe(UHID_INPUT2);
    expect(dv(b).getUint16(4, true)).toBe(64);
    expect(b.subarray(6)).toEqual(report);
  });

  it('encodes DESTROY and the GET/SET_REPORT replies', () => {
    expect([...encodeDestroy()]).toEqual([1, 0, 0, 0]);
    const g = encodeGetReportReply(0x01020304, 5);
    expect(dv(g).getUint32(0, true)).toBe(UHID_GET_REPORT_REPLY);
    expect(dv(g).getUint32(4, true)).toBe(0x01020304);
    expect(dv(g).getUint16(8, true)).toBe(5);
    expect(dv(g).getUint16(10, true)).toBe(0);
    const s = encodeSetReportReply(7, 5);
    expect(dv(s).getUint32(0, true)).toBe(UHID_SET_REPORT_REPLY);
    expect(dv(s).getUint32(4, true)).toBe(7);
    expect(dv(s).getUint16(8, true)).toBe(5);
  });

  it('decodes START/STOP/OPEN/CLOSE', () => {
    expect(decodeEvent(event(UHID_START, (_, v) => v.setBigUint64(4, 4n, true)))).toEqual({ type: 'start', devFlags: 4n });
    expect(decodeEvent(event(UHID_STOP))).toEqual({ type: 'stop' });
    expect(decodeEvent(event(UHID_OPEN))).toEqual({ type: 'open' });
    expect(decodeEvent(event(UHID_CLOSE))).toEqual({ type: 'close' });
  });

  it('decodes UHID_OUTPUT (data, u16 size at 4100, rtype at 4102) and strips the report id byte', () => {
    const ev = decodeEvent(
      event(UHID_OUTPUT, (b, v) => {
        b[4] = 0; // report id
        for (let i = 0; i < 64; i++) b[5 + i] = i + 1;
        v.setUint16(4 + 4096, 65, true);
        b[4 + 4098] = UHID_OUTPUT_REPORT;
      }),
    );
    expect(ev.type).toBe('output');
    if (ev.type !== 'output') return;
    expect(ev.data.length).toBe(65);
    const report = outputReport(ev, 64);
    expect(report).toEqual(Uint8Array.from({ length: 64 }, (_, i) => i + 1));
  });

  it('ignores output that is not a plain output report of at most 64 bytes with report id 0', () => {
    const data = new Uint8Array(65);
    expect(outputReport({ rtype: UHID_FEATURE_REPORT, data }, 64)).toBeUndefined();
    expect(outputReport({ rtype: UHID_OUTPUT_REPORT, data: new Uint8Array(66) }, 64)).toBeUndefined();
    expect(outputReport({ rtype: UHID_OUTPUT_REPORT, data: Uint8Array.of(1, ...new Uint8Array(64)) }, 64)).toBeUndefined();
    expect(outputReport({ rtype: UHID_OUTPUT_REPORT, data: Uint8Array.of(0) }, 64)).toBeUndefined();
    // A short report is zero-padded.
    expect(outputReport({ rtype: UHID_OUTPUT_REPORT, data: Uint8Array.of(0, 9, 8) }, 64)).toEqual(
      Uint8Array.of(9, 8, ...new Uint8Array(62)),
    );
  });

  it('decodes GET_REPORT and SET_REPORT requests', () => {
    const get = decodeEvent(event(UHID_GET_REPORT, (b, v) => { v.setUint32(4, 77, true); b[8] = 3; b[9] = UHID_FEATURE_REPORT; }));
    expect(get).toEqual({ type: 'get-report', id: 77, rnum: 3, rtype: UHID_FEATURE_REPORT });
    const set = decodeEvent(event(UHID_SET_REPORT, (b, v) => { v.setUint32(4, 78, true); b[8] = 0; b[9] = UHID_OUTPUT_REPORT; }));
    expect(set).toEqual({ type: 'set-report', id: 78, rnum: 0, rtype: UHID_OUTPUT_REPORT });
  });

  it('never throws on short, inconsistent or unknown events', () => {
    expect(decodeEvent(new Uint8Array(3)).type).toBe('invalid');
    expect(decodeEvent(event(UHID_OUTPUT).subarray(0, 100)).type).toBe('invalid');
    expect(decodeEvent(event(UHID_OUTPUT, (_, v) => v.setUint16(4100, 5000, true))).type).toBe('invalid');
    expect(decodeEvent(event(UHID_GET_REPORT).subarray(0, 8)).type).toBe('invalid');
    expect(decodeEvent(event(99))).toEqual({ type: 'unknown', code: 99 });
    for (let i = 0; i < 2000; i++) {
      const n = Math.floor(Math.random() * 200);
      const b = Uint8Array.from({ length: n }, () => Math.floor(Math.random() * 256));
      if (n >= 4) b[0] = Math.floor(Math.random() * 16);
      expect(() => decodeEvent(b)).not.toThrow();
    }
  });
});
