/**
 * A `ReportPort` (ctaphid-client.ts) over TCP to a device's loopback face (`startLoopbackFace`,
 * device/faces/loopback.ts): every report is exactly 64 raw bytes in each direction, no framing. Tests, the demo
 * and the benchmarks reach a device engine this way instead of through a kernel HID device.
 */
import net from 'node:net';
import { HID_REPORT_SIZE } from '../../../protocol/ctaphid.ts';
import { ReportSplitter } from '../../../protocol/report-stream.ts';
import type { ReportPort } from './ctaphid-client.ts';
import { ReportQueue } from './report-queue.ts';

/** Bounds the input queue: a device flooding us cannot grow memory without limit. */
const MAX_QUEUED_REPORTS = 1024;

/** A `ReportPort` over TCP to a loopback face: raw 64-byte reports, no framing. */
export class LoopbackTransport implements ReportPort {
  private readonly socket: net.Socket;
  private readonly input = new ReportQueue(MAX_QUEUED_REPORTS, 'LoopbackTransport');
  private readonly reports = new ReportSplitter();

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    const onGone = (err?: Error): void => this.fail(err ?? new Error('loopback connection closed'));
    socket.on('error', onGone);
    socket.on('close', () => onGone());
  }

  static connect(host: string, port: number): Promise<LoopbackTransport> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host, port });
      const onError = (err: Error): void => reject(err);
      socket.once('error', onError);
      socket.once('connect', () => {
        socket.off('error', onError);
        resolve(new LoopbackTransport(socket));
      });
    });
  }

  write(report: Uint8Array): Promise<void> {
    if (report.length !== HID_REPORT_SIZE) return Promise.reject(new RangeError(`report of ${report.length} bytes`));
    if (this.input.error) return Promise.reject(this.input.error);
    return new Promise((resolve, reject) => {
      this.socket.write(report, (err) => (err ? reject(err) : resolve()));
    });
  }

  read(timeoutMs: number): Promise<Uint8Array | undefined> {
    return this.input.read(timeoutMs);
  }

  close(): Promise<void> {
    this.fail(new Error('loopback transport closed'));
    return new Promise((resolve) => {
      if (this.socket.destroyed) return resolve();
      this.socket.once('close', () => resolve());
      this.socket.end();
      // Do not wait on a peer that never finishes the close handshake.
      setTimeout(() => this.socket.destroy(), 1000).unref();
    });
  }

  private onData(chunk: Buffer): void {
    this.reports.push(chunk, (report) => this.input.push(report));
  }

  private fail(err: Error): void {
    this.input.fail(err);
  }

}
