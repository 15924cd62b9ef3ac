/**
 * A `ReportPort` (agent/authenticators/hardware/ctaphid-client.ts) over a Linux /dev/hidrawN node, for the benchmark's
 * guest-side client: what libfido2's hid_linux.c does, in Node.
 *
 * - Writes carry a leading report-id byte 0 (the FIDO report descriptor has no report ids), so 65 bytes go to
 *   the kernel for each 64-byte output report.
 * - Reads return exactly one 64-byte input report. One read is always outstanding (an fs.read on the libuv thread
 *   pool), and reports are queued as they arrive, so the kernel's 64-report hidraw buffer never overflows while
 *   the client is busy elsewhere (docs/platform-notes.md). The queue is bounded: a flooding device loses its oldest.
 * - `findFidoHidraw` picks the node whose report descriptor declares the FIDO usage page 0xF1D0
 *   (CTAP 2.1 PS 2021-06-15 §11.2.8.2).
 *
 * The pending read pins one thread-pool thread, and a blocking read on a char device is not interrupted by close():
 * Node's exit would wait for that thread forever. `shutdown(wake)` therefore writes one last report the device
 * answers (e.g. a CTAPHID_INIT), lets the pending read take the answer, and only then closes the fd.
 */
import fs from 'node:fs';
import { join } from 'node:path';
import type { ReportPort } from '../../agent/authenticators/hardware/ctaphid-client.ts';
import { ReportQueue } from '../../agent/authenticators/hardware/report-queue.ts';
import { HID_REPORT_SIZE } from '../../protocol/ctaphid.ts';

/** Bound on queued input reports (a full 7609-byte message is 129 reports). */
const MAX_QUEUED_REPORTS = 1024;
/** HID short item "Usage Page (0xF1D0)": 0x06 (global, 2-byte data) D0 F1 — CTAP 2.1 §11.2.8.2. */
const FIDO_USAGE_PAGE_ITEM = [0x06, 0xd0, 0xf1];

export class HidrawPort implements ReportPort {
  private readonly input = new ReportQueue(MAX_QUEUED_REPORTS, 'HidrawPort');
  /** Resolves when the outstanding fs.read has returned after the port was closed. */
  private readStopped: (() => void) | undefined;
  private reading = false;
  /** Input reports dropped because the queue was full (should stay 0). */
  get dropped(): number {
    return this.input.dropped;
  }

  private constructor(private readonly fd: number, readonly path: string) {
    this.readLoop();
  }

  static open(path: string): HidrawPort {
    return new HidrawPort(fs.openSync(path, 'r+'), path);
  }

  write(report: Uint8Array): Promise<void> {
    if (report.length !== HID_REPORT_SIZE) return Promise.reject(new RangeError(`report of ${report.length} bytes`));
    if (this.input.error) return Promise.reject(this.input.error);
    const out = Buffer.alloc(HID_REPORT_SIZE + 1);
    out.set(report, 1);
    return new Promise((resolve, reject) => {
      fs.write(this.fd, out, 0, out.length, null, (err, written) => {
        if (err) reject(err);
        else if (written !== out.length) reject(new Error(`short hidraw write: ${written} of ${out.length} bytes`));
        else resolve();
      });
    });
  }

  read(timeoutMs: number): Promise<Uint8Array | undefined> {
    return this.input.read(timeoutMs);
  }


  close(): void {
    this.fail(new Error('hidraw port closed'));
    try {
      fs.closeSync(this.fd);
    } catch {
      /* already closed */
    }
  }

  /**
   * Closes the port without leaving a read blocked in the thread pool: writes `wake` (a 64-byte report the device
   * answers), waits up to `timeoutMs` for the pending read to return, then closes the fd. Resolves false when the
   * read did not return (the caller should then exit hard).
   */
  async shutdown(wake: Uint8Array, timeoutMs = 5000): Promise<boolean> {
    this.fail(new Error('hidraw port closed'));
    let stopped = !this.reading;
    if (!stopped) {
      const done = new Promise<void>((r) => (this.readStopped = r));
      const out = Buffer.alloc(HID_REPORT_SIZE + 1);
      out.set(wake.subarray(0, HID_REPORT_SIZE), 1);
      try {
        fs.writeSync(this.fd, out);
      } catch {
        /* the device is gone: its read has failed or will */
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      stopped = await Promise.race([
        done.then(() => true),
        new Promise<boolean>((r) => (timer = setTimeout(() => r(false), timeoutMs))),
      ]);
      clearTimeout(timer);
    }
    try {
      fs.closeSync(this.fd);
    } catch {
      /* already closed */
    }
    return stopped;
  }

  private readLoop(): void {
    const buf = Buffer.alloc(HID_REPORT_SIZE + 1);
    this.reading = true;
    fs.read(this.fd, buf, 0, buf.length, null, (err, n) => {
      this.reading = false;
      if (this.input.error) {
        this.readStopped?.();
        return;
      }
      if (err) return this.fail(err);
      if (n === 0) return this.fail(new Error('hidraw device gone'));
      if (n === HID_REPORT_SIZE) this.input.push(new Uint8Array(buf.subarray(0, n)));
      this.readLoop();
    });
  }

  private fail(err: Error): void {
    this.input.fail(err);
  }

}

/** Whether a HID report descriptor declares the FIDO usage page. */
export function isFidoReportDescriptor(desc: Uint8Array): boolean {
  for (let i = 0; i + 2 < desc.length; i++) {
    if (desc[i] === FIDO_USAGE_PAGE_ITEM[0] && desc[i + 1] === FIDO_USAGE_PAGE_ITEM[1] && desc[i + 2] === FIDO_USAGE_PAGE_ITEM[2]) return true;
  }
  return false;
}

/** The /dev/hidrawN of a FIDO device, or undefined when there is none (yet). */
export function findFidoHidraw(sysClass = '/sys/class/hidraw', devDir = '/dev'): string | undefined {
  let names: string[];
  try {
    names = fs.readdirSync(sysClass).filter((n) => /^hidraw\d+$/.test(n)).sort();
  } catch {
    return undefined;
  }
  for (const name of names) {
    try {
      const desc = fs.readFileSync(join(sysClass, name, 'device', 'report_descriptor'));
      if (isFidoReportDescriptor(desc) && fs.existsSync(join(devDir, name))) return join(devDir, name);
    } catch {
      /* vanished meanwhile */
    }
  }
  return undefined;
}
