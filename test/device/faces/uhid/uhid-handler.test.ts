/**
 * The uhid face's event handling on any host (no /dev/uhid): OPEN/CLOSE drive the HostLink lifecycle, OUTPUT
 * reports reach the engine without the report-ID byte, feature-report requests are refused at once, input
 * reports go out as UHID_INPUT2. (The real kernel path is test/vm/uhid.test.ts.)
 */
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../../../protocol/logger.ts';
import type { HostLink, ReportDevice } from '../../../../device/host-link.ts';
import { UhidHandler } from '../../../../device/faces/uhid/uhid-handler.ts';
import {
  EIO,
  UHID_FEATURE_REPORT,
  UHID_GET_REPORT_REPLY,
  UHID_INPUT2,
  UHID_OUTPUT_REPORT,
  UHID_SET_REPORT_REPLY,
} from '../../../../device/faces/uhid/uhid-protocol.ts';

function harness() {
  const written: Uint8Array[] = [];
  const links: { received: Uint8Array[]; closed: boolean; send: (r: Uint8Array) => void }[] = [];
  const device: ReportDevice = {
    attach(sendInput): HostLink {
      const l = { received: [] as Uint8Array[], closed: false, send: sendInput };
      links.push(l);
      return { receive: (r) => void l.received.push(r), close: () => void (l.closed = true) };
    },
  };
  const handler = new UhidHandler(device, (e) => void written.push(e), silentLogger);
  return { handler, written, links };
}

const output = (bytes: number[], rtype = UHID_OUTPUT_REPORT) => ({ type: 'output' as const, rtype, data: Uint8Array.from(bytes) });
const u32 = (b: Uint8Array, o: number) => new DataView(b.buffer, b.byteOffset).getUint32(o, true);
const u16 = (b: Uint8Array, o: number) => new DataView(b.buffer, b.byteOffset).getUint16(o, true);

describe('UhidHandler', () => {
  it('attaches a link on OPEN and closes it on CLOSE; a new OPEN gets a fresh link', () => {
    const { handler, links } = harness();
    expect(handler.attached).toBe(false);
    handler.handle({ type: 'open' });
    expect(handler.attached).toBe(true);
    expect(links.length).toBe(1);
    handler.handle({ type: 'close' });
    expect(links[0].closed).toBe(true);
    expect(handler.attached).toBe(false);
    handler.handle({ type: 'open' });
    expect(links.length).toBe(2);
    expect(links[1].closed).toBe(false);
    handler.handle({ type: 'stop' });
    expect(links[1].closed).toBe(true);
  });

  it('passes the 64-byte report of an OUTPUT (report id 0 stripped) to the link', () => {
    const { handler, links } = harness();
    handler.handle({ type: 'open' });
    const report = Array.from({ length: 64 }, (_, i) => i + 1);
    handler.handle(output([0, ...report]));
    expect(links[0].received).toEqual([Uint8Array.from(report)]);
  });

  it('drops OUTPUT without an opener, with a non-zero report id, or of a feature report', () => {
    const { handler, links } = harness();
    handler.handle(output([0, 1, 2, 3]));
    handler.handle({ type: 'open' });
    handler.handle(output([5, ...new Array(64).fill(1)]));
    handler.handle(output([0, ...new Array(64).fill(1)], UHID_FEATURE_REPORT));
    expect(links[0].received).toEqual([]);
  });

  it('answers GET_REPORT and SET_REPORT with EIO at once', () => {
    const { handler, written } = harness();
    handler.handle({ type: 'get-report', id: 41, rnum: 0, rtype: UHID_FEATURE_REPORT });
    handler.handle({ type: 'set-report', id: 42, rnum: 0, rtype: UHID_FEATURE_REPORT });
    expect(written.length).toBe(2);
    expect([u32(written[0], 0), u32(written[0], 4), u16(written[0], 8)]).toEqual([UHID_GET_REPORT_REPLY, 41, EIO]);
    expect([u32(written[1], 0), u32(written[1], 4), u16(written[1], 8)]).toEqual([UHID_SET_REPORT_REPLY, 42, EIO]);
  });

  it('sends input reports from the engine as UHID_INPUT2, and nothing after the link closed or the face stopped', () => {
    const { handler, written, links } = harness();
    handler.handle({ type: 'open' });
    const report = new Uint8Array(64).fill(7);
    links[0].send(report);
    expect(written.length).toBe(1);
    expect(u32(written[0], 0)).toBe(UHID_INPUT2);
    expect(u16(written[0], 4)).toBe(64);
    expect(written[0].subarray(6)).toEqual(report);
    // A report that is not 64 bytes is a device bug: dropped.
    links[0].send(new Uint8Array(10));
    expect(written.length).toBe(1);
    handler.close();
    links[0].send(report);
    expect(written.length).toBe(1);
    handler.handle({ type: 'open' });
    expect(links.length).toBe(1);
  });

  it('ignores unknown and invalid events', () => {
    const { handler, written, links } = harness();
    handler.handle({ type: 'unknown', code: 99 });
    handler.handle({ type: 'invalid', reason: 'short' });
    handler.handle({ type: 'start', devFlags: 0n });
    expect(written).toEqual([]);
    expect(links).toEqual([]);
  });
});
