/**
 * ReportSplitter (protocol/report-stream.ts): a byte stream cut at arbitrary points comes back as the same
 * 64-byte reports in order, each a copy, with only the incomplete tail held back.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HID_REPORT_SIZE } from '../../protocol/ctaphid.ts';
import { ReportSplitter } from '../../protocol/report-stream.ts';

/** Cuts `bytes` at the given offsets (any order, duplicates allowed) into consecutive chunks. */
function cut(bytes: Uint8Array, at: readonly number[]): Uint8Array[] {
  const points = [...new Set(at.map((p) => p % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let start = 0;
  for (const p of [...points, bytes.length]) {
    chunks.push(bytes.subarray(start, p));
    start = p;
  }
  return chunks;
}

describe('ReportSplitter', () => {
  it('yields the stream\'s whole reports in order however it is cut, and holds back only the tail (500 runs)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 5 * HID_REPORT_SIZE + 63 }), fc.array(fc.nat(), { maxLength: 12 }), (bytes, at) => {
        const splitter = new ReportSplitter();
        const reports: Uint8Array[] = [];
        for (const chunk of cut(bytes, at)) splitter.push(chunk, (r) => reports.push(r));
        const whole = Math.floor(bytes.length / HID_REPORT_SIZE);
        expect(reports.length).toBe(whole);
        reports.forEach((r, i) => expect(r).toEqual(bytes.subarray(i * HID_REPORT_SIZE, (i + 1) * HID_REPORT_SIZE)));
        expect(splitter.pendingBytes).toBe(bytes.length - whole * HID_REPORT_SIZE);
      }),
      { numRuns: 500 },
    );
  });

  it('gives copies: reusing the chunk\'s memory afterwards does not change a report', () => {
    const splitter = new ReportSplitter();
    const chunk = new Uint8Array(HID_REPORT_SIZE + 10).fill(7);
    const reports: Uint8Array[] = [];
    splitter.push(chunk, (r) => reports.push(r));
    chunk.fill(0);
    splitter.push(new Uint8Array(HID_REPORT_SIZE - 10).fill(9), (r) => reports.push(r));
    expect(reports).toHaveLength(2);
    expect(reports[0]).toEqual(new Uint8Array(HID_REPORT_SIZE).fill(7));
    expect([...reports[1].subarray(0, 10)]).toEqual(new Array(10).fill(7));
    expect([...reports[1].subarray(10)]).toEqual(new Array(HID_REPORT_SIZE - 10).fill(9));
  });
});
