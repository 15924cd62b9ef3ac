/**
 * A userspace TCP proxy that adds a fixed one-way delay in each direction (so the round-trip time a client sees
 * grows by 2 × delay), for benchmarking the relay and USB/IP against a slow link without netem (the build
 * machines' kernel has none).
 *
 * - Order is preserved: every chunk is due at max(arrival + delay, due time of the previous chunk), so lowering
 *   the delay while bytes are queued never reorders them.
 * - Timing is accurate to well under a millisecond: Node's timers add 0.5–1.5 ms per hop (docs/platform-notes.md), so
 *   the proxy sleeps with setTimeout until SPIN_MARGIN_MS before the due time and then polls with setImmediate.
 * - Memory is bounded: when a direction holds more than `maxQueuedBytes` (queued for the delay, or waiting for a
 *   slow receiver), its source socket is paused until the queue drains below half of that.
 * - TCP_NODELAY on both sides (a delayed-ACK/Nagle stall would swamp the delay being measured).
 * - Loopback only: listen and target addresses outside 127.0.0.0/8 and ::1 are refused.
 *
 * Module: `startDelayProxy({ listen, target, delayMs })`; the delay can be changed while running (`setDelay`).
 * CLI:    npx tsx scripts/delay-proxy.ts --listen 127.0.0.1:P --target 127.0.0.1:Q --delay-ms 25
 */
import net from 'node:net';
import { isIP } from 'node:net';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';

/** Sleep with setTimeout until this long before a chunk is due, then poll with setImmediate. */
export const SPIN_MARGIN_MS = 2;
/** Default bound on the bytes one direction of one connection holds before its source is paused. */
export const DEFAULT_MAX_QUEUED_BYTES = 1024 * 1024;
/** Largest accepted one-way delay (one minute is far beyond any link worth simulating). */
export const MAX_DELAY_MS = 60_000;

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

export interface DelayProxyOptions {
  /** Where to listen (loopback only; port 0 picks a free one). */
  readonly listen: HostPort;
  /** Where each accepted connection is forwarded (loopback only). */
  readonly target: HostPort;
  /** Added one-way delay in milliseconds, applied in both directions. */
  readonly delayMs: number;
  /** Bytes one direction may hold before its source is paused (default 1 MiB). */
  readonly maxQueuedBytes?: number;
}

export interface DelayProxyStats {
  /** Connections currently open. */
  readonly connections: number;
  /** Connections accepted since start. */
  readonly accepted: number;
  /** Bytes forwarded (both directions, all connections). */
  readonly forwardedBytes: number;
  /** Largest number of bytes any one direction held at once. */
  readonly peakQueuedBytes: number;
  /** How many times a source socket was paused because its direction held too much. */
  readonly pauses: number;
}

export interface DelayProxy {
  readonly address: HostPort;
  /** The current one-way delay. */
  readonly delayMs: number;
  /** Change the one-way delay for data arriving from now on (already queued data keeps its due time). */
  setDelay(delayMs: number): void;
  stats(): DelayProxyStats;
  /** Stop listening and destroy every connection. */
  close(): Promise<void>;
}

export class DelayProxyError extends Error {
  override readonly name = 'DelayProxyError';
}

/** 127.0.0.0/8 or ::1 ("localhost" means 127.0.0.1); anything else is refused. */
export function loopbackHost(host: string, what: string): string {
  if (host === 'localhost') return '127.0.0.1';
  const version = isIP(host);
  if (version === 4 && host.split('.')[0] === '127') return host;
  if (version === 6 && (host === '::1' || host === '0:0:0:0:0:0:0:1')) return '::1';
  throw new DelayProxyError(`${what} ${JSON.stringify(host)} is not a loopback address (127.0.0.0/8 or ::1)`);
}

function checkDelay(delayMs: number): number {
  if (!Number.isFinite(delayMs) || delayMs < 0 || delayMs > MAX_DELAY_MS) {
    throw new DelayProxyError(`delay must be 0..${MAX_DELAY_MS} ms, got ${delayMs}`);
  }
  return delayMs;
}

function checkPort(port: number, what: string, allowZero: boolean): number {
  if (!Number.isInteger(port) || port < (allowZero ? 0 : 1) || port > 65535) {
    throw new DelayProxyError(`${what} port must be ${allowZero ? 0 : 1}..65535, got ${port}`);
  }
  return port;
}

interface Counters {
  forwardedBytes: number;
  peakQueuedBytes: number;
  pauses: number;
}

/** One direction of one connection: chunks wait in a FIFO until their due time, then go to `dest`. */
class DelayedPipe {
  private readonly queue: { due: number; chunk: Buffer | null }[] = [];
  private head = 0;
  private queuedBytes = 0;
  private lastDue = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private immediate: ReturnType<typeof setImmediate> | undefined;
  private waitingForDrain = false;
  private sourcePaused = false;
  private ended = false;

  constructor(
    private readonly source: net.Socket,
    private readonly dest: net.Socket,
    private readonly delay: () => number,
    private readonly maxQueuedBytes: number,
    private readonly counters: Counters,
  ) {
    source.on('data', (chunk: Buffer) => this.push(chunk));
    // A half-close travels in order too: the destination is ended after the last delayed chunk.
    source.on('end', () => this.pushEnd());
    dest.on('drain', () => {
      if (!this.waitingForDrain) return;
      this.waitingForDrain = false;
      this.schedule();
    });
  }

  private dueFromNow(): number {
    const due = Math.max(performance.now() + this.delay(), this.lastDue);
    this.lastDue = due;
    return due;
  }

  private push(chunk: Buffer): void {
    this.queue.push({ due: this.dueFromNow(), chunk });
    this.queuedBytes += chunk.length;
    if (this.queuedBytes > this.counters.peakQueuedBytes) this.counters.peakQueuedBytes = this.queuedBytes;
    if (this.queuedBytes > this.maxQueuedBytes && !this.sourcePaused) {
      this.sourcePaused = true;
      this.counters.pauses++;
      this.source.pause();
    }
    this.schedule();
  }

  private pushEnd(): void {
    this.queue.push({ due: this.dueFromNow(), chunk: null });
    this.schedule();
  }

  private schedule(): void {
    if (this.timer !== undefined || this.immediate !== undefined || this.waitingForDrain) return;
    if (this.head >= this.queue.length) return;
    const wait = this.queue[this.head].due - performance.now();
    if (wait > SPIN_MARGIN_MS) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.schedule();
      }, wait - SPIN_MARGIN_MS);
    } else {
      this.immediate = setImmediate(() => {
        this.immediate = undefined;
        this.flush();
      });
    }
  }

  private flush(): void {
    const now = performance.now();
    while (this.head < this.queue.length && this.queue[this.head].due <= now) {
      const { chunk } = this.queue[this.head++];
      if (chunk === null) {
        this.ended = true;
        this.dest.end();
        break;
      }
      this.queuedBytes -= chunk.length;
      this.counters.forwardedBytes += chunk.length;
      if (this.dest.destroyed) return;
      if (!this.dest.write(chunk)) {
        // The receiver is slow: hold the rest (and, past the bound, the source) until it drains.
        this.waitingForDrain = true;
        break;
      }
    }
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
    if (this.sourcePaused && this.queuedBytes <= this.maxQueuedBytes / 2 && !this.ended) {
      this.sourcePaused = false;
      this.source.resume();
    }
    if (!this.ended) this.schedule();
  }

  /** Bytes waiting in this direction (for tests). */
  get queued(): number {
    return this.queuedBytes;
  }

  stop(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.immediate !== undefined) clearImmediate(this.immediate);
    this.timer = undefined;
    this.immediate = undefined;
    this.queue.length = 0;
    this.head = 0;
    this.queuedBytes = 0;
  }
}

/** Starts the proxy and resolves once it listens. */
export async function startDelayProxy(options: DelayProxyOptions): Promise<DelayProxy> {
  const listenHost = loopbackHost(options.listen.host, 'listen address');
  const targetHost = loopbackHost(options.target.host, 'target address');
  const listenPort = checkPort(options.listen.port, 'listen', true);
  const targetPort = checkPort(options.target.port, 'target', false);
  let delayMs = checkDelay(options.delayMs);
  const maxQueuedBytes = options.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES;
  if (!Number.isInteger(maxQueuedBytes) || maxQueuedBytes < 1) throw new DelayProxyError('maxQueuedBytes must be a positive integer');

  const counters: Counters = { forwardedBytes: 0, peakQueuedBytes: 0, pauses: 0 };
  const open = new Set<{ client: net.Socket; upstream: net.Socket; pipes: DelayedPipe[] }>();
  let accepted = 0;

  // allowHalfOpen: a FIN from one side is forwarded (delayed, in order) while the other direction keeps flowing.
  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    accepted++;
    client.setNoDelay(true);
    const upstream = net.connect({ host: targetHost, port: targetPort, allowHalfOpen: true });
    upstream.setNoDelay(true);
    const delay = (): number => delayMs;
    const conn = {
      client,
      upstream,
      pipes: [
        new DelayedPipe(client, upstream, delay, maxQueuedBytes, counters),
        new DelayedPipe(upstream, client, delay, maxQueuedBytes, counters),
      ],
    };
    open.add(conn);
    let closed = 0;
    const teardown = (): void => {
      if (!open.delete(conn)) return;
      for (const p of conn.pipes) p.stop();
      client.destroy();
      upstream.destroy();
    };
    // An error on either side kills the connection; a clean close of both ends finishes it.
    client.on('error', teardown);
    upstream.on('error', teardown);
    const onClose = (): void => {
      closed++;
      if (closed === 2) teardown();
    };
    client.on('close', onClose);
    upstream.on('close', onClose);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: listenHost, port: listenPort }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = server.address() as net.AddressInfo;

  return {
    address: { host: bound.address, port: bound.port },
    get delayMs() {
      return delayMs;
    },
    setDelay(ms: number) {
      delayMs = checkDelay(ms);
    },
    stats() {
      return {
        connections: open.size,
        accepted,
        forwardedBytes: counters.forwardedBytes,
        peakQueuedBytes: counters.peakQueuedBytes,
        pauses: counters.pauses,
      };
    },
    close() {
      return new Promise<void>((resolve) => {
        for (const c of [...open]) {
          for (const p of c.pipes) p.stop();
          c.client.destroy();
          c.upstream.destroy();
          open.delete(c);
        }
        server.close(() => resolve());
      });
    },
  };
}

// ------------------------------------------------------------------------------------------------------------
// CLI

/** Parses `HOST:PORT` (IPv6 as `[::1]:PORT`). */
export function parseHostPort(text: string, flag: string): HostPort {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(text) ?? /^([^:[\]\s]+):(\d{1,5})$/.exec(text);
  if (m === null) throw new DelayProxyError(`${flag} ${JSON.stringify(text.slice(0, 80))}: expected HOST:PORT`);
  return { host: m[1], port: Number(m[2]) };
}

export interface CliOptions {
  readonly listen: HostPort;
  readonly target: HostPort;
  readonly delayMs: number;
  readonly maxQueuedBytes?: number;
}

const USAGE = 'usage: delay-proxy --listen 127.0.0.1:P --target 127.0.0.1:Q --delay-ms MS [--max-queued-bytes N]';

export function parseCliArgs(argv: readonly string[]): CliOptions {
  const values = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const eq = arg.indexOf('=');
    const [flag, inline] = eq > 0 ? [arg.slice(0, eq), arg.slice(eq + 1)] : [arg, undefined];
    if (!['--listen', '--target', '--delay-ms', '--max-queued-bytes'].includes(flag)) {
      throw new DelayProxyError(`unknown argument ${JSON.stringify(arg)}\n${USAGE}`);
    }
    const value = inline ?? argv[++i];
    if (value === undefined) throw new DelayProxyError(`${flag} needs a value\n${USAGE}`);
    values.set(flag, value);
  }
  const listen = values.get('--listen');
  const target = values.get('--target');
  const delay = values.get('--delay-ms');
  if (listen === undefined || target === undefined || delay === undefined) throw new DelayProxyError(USAGE);
  if (!/^\d+(\.\d+)?$/.test(delay)) throw new DelayProxyError(`--delay-ms must be a number, got ${JSON.stringify(delay)}`);
  const max = values.get('--max-queued-bytes');
  if (max !== undefined && !/^\d+$/.test(max)) throw new DelayProxyError(`--max-queued-bytes must be an integer`);
  return {
    listen: parseHostPort(listen, '--listen'),
    target: parseHostPort(target, '--target'),
    delayMs: Number(delay),
    maxQueuedBytes: max === undefined ? undefined : Number(max),
  };
}

async function cli(): Promise<void> {
  let proxy: DelayProxy;
  try {
    proxy = await startDelayProxy(parseCliArgs(process.argv.slice(2)));
  } catch (err) {
    process.stderr.write(`delay-proxy: ${(err as Error).message}\n`);
    process.exitCode = 2;
    return;
  }
  process.stdout.write(
    `delay-proxy: listening on ${proxy.address.host}:${proxy.address.port}, +${proxy.delayMs} ms each way (+${2 * proxy.delayMs} ms RTT)\n`,
  );
  const stop = (): void => {
    void proxy.close().then(() => process.stdout.write(`delay-proxy: stopped ${JSON.stringify(proxy.stats())}\n`));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await cli();
