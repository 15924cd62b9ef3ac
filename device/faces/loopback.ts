/**
 * The loopback HID face: a TCP server on which every report is exactly 64 raw bytes in each direction, with
 * no framing. Each TCP connection is one `HostLink`, so the device engine sends a channel's reports back to
 * the connection that opened it. Used by tests and by TS CTAPHID clients (see
 * agent/authenticators/hardware/loopback-transport.ts `LoopbackTransport`) instead of a kernel HID device.
 *
 * Bind it to 127.0.0.1 only: the face trusts nothing it receives, but it is not meant for a network.
 */

import net from 'node:net';
import { ReportSplitter } from '../../protocol/report-stream.ts';
import { HID_REPORT_SIZE, type ReportDevice } from '../host-link.ts';

export interface LoopbackFaceOptions {
  readonly host?: string;
  /** 0 picks a free port. */
  readonly port?: number;
  /** Cap on simultaneous connections (default 32); further ones are closed at once. */
  readonly maxConnections?: number;
  /** A connection with more than this many unsent output bytes (its host stopped reading) is dropped (1 MiB). */
  readonly maxBufferedOutput?: number;
}

export interface LoopbackFace {
  /** The bound address (port resolved when 0 was asked). */
  readonly address: { readonly host: string; readonly port: number };
  /** Number of open connections. */
  readonly connections: number;
  /** Stops listening, closes every connection (their HostLinks close) and resolves when the server is down. */
  close(): Promise<void>;
}

/** Starts the loopback face for `device` and resolves once it listens. */
export async function startLoopbackFace(device: ReportDevice, options: LoopbackFaceOptions = {}): Promise<LoopbackFace> {
  const host = options.host ?? '127.0.0.1';
  const maxConnections = options.maxConnections ?? 32;
  const maxBufferedOutput = options.maxBufferedOutput ?? 1024 * 1024;
  const sockets = new Set<net.Socket>();

  const server = net.createServer((socket) => {
    if (sockets.size >= maxConnections) {
      socket.destroy();
      return;
    }
    sockets.add(socket);
    socket.setNoDelay(true);
    let open = true;
    const link = device.attach((report) => {
      if (!open || socket.destroyed || report.length !== HID_REPORT_SIZE) return;
      // A host that writes but never reads must not make us buffer without bound (PING echoes 7609 bytes).
      if (socket.writableLength > maxBufferedOutput) {
        socket.destroy();
        return;
      }
      socket.write(report);
    });
    // Partial reads wait for the rest of their report; each whole one goes to the engine as a copy it may keep.
    const reports = new ReportSplitter();
    socket.on('data', (chunk: Buffer) => {
      reports.push(chunk, (report) => {
        if (open) link.receive(report);
      });
    });
    const finish = (): void => {
      if (!open) return;
      open = false;
      sockets.delete(socket);
      link.close();
    };
    socket.on('error', () => {
      finish();
      socket.destroy();
    });
    socket.on('end', () => {
      finish();
      socket.end();
    });
    socket.on('close', finish);
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  // Errors after listening (rare: EMFILE on accept) must not crash the process.
  server.on('error', () => undefined);

  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('loopback face: unexpected server address');
  let closing: Promise<void> | undefined;

  return {
    address: { host: addr.address, port: addr.port },
    get connections() {
      return sockets.size;
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
      return closing;
    },
  };
}
