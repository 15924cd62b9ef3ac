/**
 * HID reports over a byte stream. The loopback face (device/faces/loopback.ts) and its client
 * (`LoopbackTransport`, the agent's host-side CTAPHID client) carry every 64-byte report (CTAP 2.1 PS
 * 2021-06-15 §11.2.4) back to back with no framing, so one TCP read may hold part of a report, several, or
 * both. `ReportSplitter` cuts such a stream back into whole reports; the writing side just writes each report.
 *
 * Pure: no I/O. Memory is bounded: only the incomplete tail (fewer than 64 bytes) is kept between chunks.
 */
import { HID_REPORT_SIZE } from './ctaphid.ts';

const EMPTY = new Uint8Array(0);

export class ReportSplitter {
  /** The start of the next report (always fewer than HID_REPORT_SIZE bytes). */
  private pending: Uint8Array = EMPTY;

  /** Bytes held back until the rest of their report arrives. */
  get pendingBytes(): number {
    return this.pending.length;
  }

  /**
   * Feeds the next chunk of the stream and calls `onReport` with each report it completes, in order. Every
   * report is a fresh copy the caller may keep (a socket's Buffers are pooled and reused).
   */
  push(chunk: Uint8Array, onReport: (report: Uint8Array) => void): void {
    let buf = chunk;
    if (this.pending.length > 0) {
      buf = new Uint8Array(this.pending.length + chunk.length);
      buf.set(this.pending);
      buf.set(chunk, this.pending.length);
    }
    let offset = 0;
    while (buf.length - offset >= HID_REPORT_SIZE) {
      onReport(new Uint8Array(buf.subarray(offset, offset + HID_REPORT_SIZE)));
      offset += HID_REPORT_SIZE;
    }
    this.pending = offset === buf.length ? EMPTY : new Uint8Array(buf.subarray(offset));
  }
}
