/**
 * Host-side CTAPHID client (CTAP 2.1 §11.2): what a platform does to talk to a FIDO HID device. It allocates a
 * channel with CTAPHID_INIT (random nonce on the broadcast channel, nonce echo verified), then runs one
 * transaction at a time: fragment the request, reassemble the response from our channel only, report
 * KEEPALIVE status, turn CTAPHID_ERROR into a typed error, send CTAPHID_CANCEL when the caller aborts, and
 * give up after an overall timeout.
 *
 * Transport-agnostic: it speaks to a `ReportPort` (write one 64-byte output report; read the next input
 * report with a timeout). The agent runs it over node-hid; tests and helpers use `LoopbackTransport` below,
 * which connects to the gateway's loopback face (gateway/hid/loopback.ts).
 */

import net from 'node:net';
import { randomBytes as nodeRandomBytes } from 'node:crypto';
import {
  CID_BROADCAST,
  CID_RESERVED,
  CTAPHID_CANCEL,
  CTAPHID_CBOR,
  CTAPHID_ERR_INVALID_CHANNEL,
  CTAPHID_ERR_OTHER,
  CTAPHID_ERROR,
  CTAPHID_INIT,
  CTAPHID_KEEPALIVE,
  CTAPHID_LOCK,
  CTAPHID_MSG,
  CTAPHID_PING,
  CTAPHID_WINK,
  CtaphidError,
  CtaphidReassembler,
  HID_REPORT_SIZE,
  INIT_NONCE_SIZE,
  MAX_LOCK_SECONDS,
  decodeInitResponse,
  fragment,
  type InitResponse,
} from '../../../protocol/ctaphid.ts';
import { ReportQueue } from './report-queue.ts';

/** A HID device as the client sees it: output reports out, input reports in. */
export interface ReportPort {
  /** Sends one 64-byte output report. */
  write(report: Uint8Array): Promise<void>;
  /** Resolves with the next input report, or undefined if none arrives within timeoutMs; rejects once closed. */
  read(timeoutMs: number): Promise<Uint8Array | undefined>;
  close(): void | Promise<void>;
}

/** The device did not answer in time. */
export class CtaphidTimeoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CtaphidTimeoutError';
  }
}

/** The caller aborted a transaction that CTAPHID cannot cancel (anything but CTAPHID_CBOR), or before sending. */
export class CtaphidAbortError extends Error {
  constructor(message = 'CTAPHID transaction aborted') {
    super(message);
    this.name = 'CtaphidAbortError';
  }
}

export interface CtaphidClientOptions {
  /** Nonce source (default node:crypto randomBytes). */
  readonly randomBytes?: (n: number) => Uint8Array;
  /** Milliseconds clock for deadlines (default Date.now). */
  readonly now?: () => number;
  /** Overall transaction timeout (default 30 s: user presence may take a while). */
  readonly timeoutMs?: number;
  /** Timeout for CTAPHID_INIT (default 3 s). */
  readonly initTimeoutMs?: number;
}

export interface TransactOptions {
  /** Aborting sends CTAPHID_CANCEL (CBOR); the device then answers, typically CTAP2_ERR_KEEPALIVE_CANCEL. */
  readonly signal?: AbortSignal;
  /** Called with every KEEPALIVE status byte (STATUS_PROCESSING / STATUS_UPNEEDED). */
  readonly onKeepalive?: (status: number) => void;
  /** Overrides the client's overall timeout for this transaction. */
  readonly timeoutMs?: number;
}

export interface CtaphidResponse {
  readonly cmd: number;
  readonly payload: Uint8Array;
}

const READ_SLICE_MS = 100;

export class CtaphidClient {
  private readonly port: ReportPort;
  private readonly randomBytes: (n: number) => Uint8Array;
  private readonly now: () => number;
  private readonly timeoutMs: number;
  private readonly initTimeoutMs: number;
  private channel: number | undefined;
  private initInfo: InitResponse | undefined;
  /** Set when a transaction ended without its response (timeout, abort, framing error): re-INIT first. */
  private needsInit = true;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(port: ReportPort, options: CtaphidClientOptions = {}) {
    this.port = port;
    this.randomBytes = options.randomBytes ?? ((n) => new Uint8Array(nodeRandomBytes(n)));
    this.now = options.now ?? Date.now;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.initTimeoutMs = options.initTimeoutMs ?? 3_000;
  }

  /** Creates a client and allocates its channel. */
  static async open(port: ReportPort, options: CtaphidClientOptions = {}): Promise<CtaphidClient> {
    const client = new CtaphidClient(port, options);
    await client.init();
    return client;
  }

  /** The allocated channel, once INIT succeeded. */
  get cid(): number | undefined {
    return this.channel;
  }

  /** The device's INIT response (protocol/device version, capabilities). */
  get info(): InitResponse | undefined {
    return this.initInfo;
  }

  /** §11.2.9.1.3: allocates a fresh channel (broadcast INIT with a random nonce). */
  init(): Promise<InitResponse> {
    return this.serialize(() => this.doInit());
  }

  /** Runs one transaction on our channel; concurrent calls are queued. */
  transact(cmd: number, payload: Uint8Array, options: TransactOptions = {}): Promise<CtaphidResponse> {
    return this.serialize(async () => {
      if (this.needsInit || this.channel === undefined) await this.doInit();
      return this.doTransact(cmd, payload, options);
    });
  }

  async ping(data: Uint8Array, options: TransactOptions = {}): Promise<Uint8Array> {
    return (await this.transact(CTAPHID_PING, data, options)).payload;
  }

  async wink(): Promise<void> {
    await this.transact(CTAPHID_WINK, new Uint8Array(0));
  }

  /** §11.2.9.2.2: locks the device to our channel for 1..10 s; 0 releases. */
  async lock(seconds: number): Promise<void> {
    if (!Number.isInteger(seconds) || seconds < 0 || seconds > MAX_LOCK_SECONDS) throw new RangeError(`bad lock time ${seconds}`);
    await this.transact(CTAPHID_LOCK, Uint8Array.of(seconds));
  }

  /** CTAPHID_CBOR: CTAP2 command byte + CBOR in, status byte + CBOR out. */
  async cbor(request: Uint8Array, options: TransactOptions = {}): Promise<Uint8Array> {
    return (await this.transact(CTAPHID_CBOR, request, options)).payload;
  }

  /** CTAPHID_MSG: a CTAP1/U2F APDU in, response data + status word out. */
  async msg(apdu: Uint8Array, options: TransactOptions = {}): Promise<Uint8Array> {
    return (await this.transact(CTAPHID_MSG, apdu, options)).payload;
  }

  async close(): Promise<void> {
    await this.port.close();
  }

  // -------------------------------------------------------------------------------------------------------

  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async writeMessage(cid: number, cmd: number, payload: Uint8Array): Promise<void> {
    for (const report of fragment(cid, cmd, payload)) await this.port.write(report);
  }

  private async doInit(): Promise<InitResponse> {
    this.needsInit = true;
    const nonce = this.randomBytes(INIT_NONCE_SIZE).slice(0, INIT_NONCE_SIZE);
    if (nonce.length !== INIT_NONCE_SIZE) throw new RangeError('nonce source returned too few bytes');
    await this.writeMessage(CID_BROADCAST, CTAPHID_INIT, nonce);
    const reassembler = new CtaphidReassembler({ channel: CID_BROADCAST });
    const deadline = this.now() + this.initTimeoutMs;
    for (;;) {
      const remaining = deadline - this.now();
      if (remaining <= 0) throw new CtaphidTimeoutError('no CTAPHID_INIT response');
      const report = await this.port.read(remaining);
      if (report === undefined) continue;
      const res = reassembler.accept(report, this.now());
      if (res.kind !== 'complete') continue;
      if (res.cmd === CTAPHID_ERROR) throw new CtaphidError(res.payload[0] ?? CTAPHID_ERR_OTHER, undefined, CID_BROADCAST);
      if (res.cmd !== CTAPHID_INIT || res.payload.length < 17) continue;
      const info = decodeInitResponse(res.payload);
      // Another host's INIT answer on a shared device carries another nonce: not ours.
      if (!equalBytes(info.nonce, nonce)) continue;
      if (info.cid === CID_RESERVED || info.cid === CID_BROADCAST) {
        throw new CtaphidError(CTAPHID_ERR_INVALID_CHANNEL, `device allocated channel 0x${info.cid.toString(16)}`);
      }
      this.channel = info.cid;
      this.initInfo = info;
      this.needsInit = false;
      return info;
    }
  }

  private async doTransact(cmd: number, payload: Uint8Array, options: TransactOptions): Promise<CtaphidResponse> {
    const cid = this.channel;
    if (cid === undefined) throw new CtaphidError(CTAPHID_ERR_INVALID_CHANNEL, 'no channel');
    const signal = options.signal;
    if (signal?.aborted) throw new CtaphidAbortError();
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    const deadline = this.now() + timeoutMs;
    // Until the response is complete, any early exit leaves the channel in an unknown state.
    this.needsInit = true;
    await this.writeMessage(cid, cmd, payload);

    let cancelSent = false;
    let abortedUncancellable = false;
    const onAbort = (): void => {
      if (cmd === CTAPHID_CBOR) {
        if (!cancelSent) {
          cancelSent = true;
          // §11.2.9.1.5: CANCEL has no response; the pending CBOR request is answered instead.
          this.writeMessage(cid, CTAPHID_CANCEL, new Uint8Array(0)).catch(() => undefined);
        }
      } else {
        abortedUncancellable = true;
      }
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    // Aborted while the request was being written: the listener above will never fire.
    if (signal?.aborted) onAbort();
    try {
      const reassembler = new CtaphidReassembler({ channel: cid });
      for (;;) {
        if (abortedUncancellable) throw new CtaphidAbortError();
        const remaining = deadline - this.now();
        if (remaining <= 0) {
          if (cmd === CTAPHID_CBOR && !cancelSent) {
            cancelSent = true;
            await this.writeMessage(cid, CTAPHID_CANCEL, new Uint8Array(0)).catch(() => undefined);
          }
          throw new CtaphidTimeoutError(`no CTAPHID response within ${timeoutMs} ms`);
        }
        // Read in short slices so an abort of an uncancellable command is noticed promptly without leaving a
        // read outstanding on the port.
        const report = await this.port.read(Math.min(remaining, READ_SLICE_MS));
        if (report === undefined) continue;
        const res = reassembler.accept(report, this.now());
        if (res.kind === 'error') throw new CtaphidError(res.code, `malformed response: ${res.code}`, cid);
        if (res.kind !== 'complete') continue;
        if (res.cmd === CTAPHID_KEEPALIVE) {
          options.onKeepalive?.(res.payload[0] ?? 0);
          continue;
        }
        if (res.cmd === CTAPHID_ERROR) {
          this.needsInit = false;
          throw new CtaphidError(res.payload[0] ?? CTAPHID_ERR_OTHER, undefined, cid);
        }
        if (res.cmd !== cmd) {
          throw new CtaphidError(CTAPHID_ERR_OTHER, `unexpected response command 0x${res.cmd.toString(16)}`, cid);
        }
        this.needsInit = false;
        return { cmd: res.cmd, payload: res.payload };
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------------------

/** Bounds the input queue: a device flooding us cannot grow memory without limit. */
const MAX_QUEUED_REPORTS = 1024;

/** A `ReportPort` over TCP to a loopback face: raw 64-byte reports, no framing. */
export class LoopbackTransport implements ReportPort {
  private readonly socket: net.Socket;
  private readonly input = new ReportQueue(MAX_QUEUED_REPORTS, 'LoopbackTransport');
  private partial: Buffer = Buffer.alloc(0);

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
    let buf = this.partial.length === 0 ? chunk : Buffer.concat([this.partial, chunk]);
    let offset = 0;
    while (buf.length - offset >= HID_REPORT_SIZE) {
      const report = new Uint8Array(buf.subarray(offset, offset + HID_REPORT_SIZE));
      offset += HID_REPORT_SIZE;
      this.input.push(report);
    }
    buf = buf.subarray(offset);
    this.partial = buf.length === 0 ? Buffer.alloc(0) : Buffer.from(buf);
  }

  private fail(err: Error): void {
    this.input.fail(err);
  }

}
