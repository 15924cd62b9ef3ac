/**
 * Host-side CTAPHID (CTAP 2.1 PS 2021-06-15 §11.2): what a platform does to talk to a FIDO HID device. It
 * allocates a channel with CTAPHID_INIT (random nonce on the broadcast channel, nonce echo verified), then runs
 * transactions on it: fragment the request, reassemble the response from our channel only, report KEEPALIVE
 * status, turn CTAPHID_ERROR into a typed error, send CTAPHID_CANCEL when the caller aborts, and give up after an
 * overall timeout.
 *
 * Transport-agnostic: it speaks to a `ReportPort` (write one 64-byte output report; read the next input report
 * with a timeout): node-hid for real keys (node-hid-transport.ts), TCP to a device's loopback face
 * (loopback-transport.ts), hidraw in the benchmark's guest (scripts/bench/hidraw-port.ts).
 *
 * Two classes, one serialiser each way it is used:
 *   - `CtaphidChannel` runs one transaction at a time and leaves the ordering to its caller: the agent's
 *     HidAuthenticator already serialises every key's transactions in its fair TransactionQueue
 *     (transaction-queue.ts), so the channel keeps no queue of its own; a call that overlaps a running one is
 *     refused rather than interleaving reports. It is the `CtaphidSession` HidAuthenticator drives
 *     (ctaphid-session.ts opens it).
 *   - `CtaphidClient` is the same channel for callers with no queue of their own (tests, the demo, the
 *     benchmarks): concurrent calls are taken in turn, and it adds the per-command helpers (ping, cbor, msg, wink,
 *     lock).
 */

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
  INIT_NONCE_SIZE,
  MAX_LOCK_SECONDS,
  decodeInitResponse,
  fragment,
  type InitResponse,
} from '../../../protocol/ctaphid.ts';
import { KeytunnelError } from '../../../protocol/errors.ts';
import { equalBytes } from '../../../protocol/bytes.ts';

/** A HID device as the client sees it: output reports out, input reports in. */
export interface ReportPort {
  /** Sends one 64-byte output report. */
  write(report: Uint8Array): Promise<void>;
  /** Resolves with the next input report, or undefined if none arrives within timeoutMs; rejects once closed. */
  read(timeoutMs: number): Promise<Uint8Array | undefined>;
  close(): void | Promise<void>;
}

/** The device did not answer in time. */
export class CtaphidTimeoutError extends KeytunnelError {
  override readonly name = 'CtaphidTimeoutError';
  readonly code = 'CTAPHID_TIMEOUT';
  constructor(message: string) {
    super(message);
  }
}

/** The caller aborted a transaction that CTAPHID cannot cancel (anything but CTAPHID_CBOR), or before sending. */
export class CtaphidAbortError extends KeytunnelError {
  override readonly name = 'CtaphidAbortError';
  readonly code = 'CTAPHID_ABORTED';
  constructor(message = 'CTAPHID transaction aborted') {
    super(message);
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

const READ_SLICE_MS = 100;

/**
 * One CTAPHID channel on one device, one transaction at a time: the caller serialises (see the header). A call
 * made while another is running rejects at once and leaves the running one alone.
 */
export class CtaphidChannel {
  private readonly port: ReportPort;
  private readonly randomBytes: (n: number) => Uint8Array;
  private readonly now: () => number;
  private readonly timeoutMs: number;
  private readonly initTimeoutMs: number;
  private channel: number | undefined;
  private initInfo: InitResponse | undefined;
  /** Set when a transaction ended without its response (timeout, abort, framing error): re-INIT first. */
  private needsInit = true;
  /** A transaction (or INIT) is on the wire. */
  private active = false;
  private closing: Promise<void> | null = null;

  constructor(port: ReportPort, options: CtaphidClientOptions = {}) {
    this.port = port;
    this.randomBytes = options.randomBytes ?? ((n) => new Uint8Array(nodeRandomBytes(n)));
    this.now = options.now ?? Date.now;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.initTimeoutMs = options.initTimeoutMs ?? 3_000;
  }

  /** Creates a channel and allocates it on the device (CTAPHID_INIT). */
  static async open(port: ReportPort, options: CtaphidClientOptions = {}): Promise<CtaphidChannel> {
    const channel = new CtaphidChannel(port, options);
    await channel.init();
    return channel;
  }

  /** The allocated channel, once INIT succeeded. */
  get cid(): number | undefined {
    return this.channel;
  }

  /** The device's INIT response (protocol/device version, capabilities). */
  get info(): InitResponse | undefined {
    return this.initInfo;
  }

  /** INIT response capability flags (§11.2.9.1.3), 0 before INIT. */
  get capabilities(): number {
    return this.initInfo?.capabilities ?? 0;
  }

  /** §11.2.9.1.3: allocates a fresh channel (broadcast INIT with a random nonce). */
  init(): Promise<InitResponse> {
    return this.exclusive(() => this.doInit());
  }

  /**
   * Runs one transaction on our channel (re-INIT first when the last one ended without its response) and
   * resolves with the response payload; the response command is always `cmd` (anything else is a CtaphidError).
   */
  transact(cmd: number, payload: Uint8Array, options: TransactOptions = {}): Promise<Uint8Array> {
    return this.exclusive(async () => {
      if (this.needsInit || this.channel === undefined) await this.doInit();
      return this.doTransact(cmd, payload, options);
    });
  }

  /** Releases the port. Idempotent; never rejects (a key that is already gone cannot be closed twice). */
  close(): Promise<void> {
    if (!this.closing) this.closing = Promise.resolve().then(() => this.port.close()).catch(() => undefined);
    return this.closing;
  }

  // -------------------------------------------------------------------------------------------------------

  private async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active) throw new Error('CTAPHID channel busy: one transaction at a time (the caller serialises)');
    this.active = true;
    try {
      return await fn();
    } finally {
      this.active = false;
    }
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

  private async doTransact(cmd: number, payload: Uint8Array, options: TransactOptions): Promise<Uint8Array> {
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
        return res.payload;
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }
}


/**
 * A `CtaphidChannel` for callers with no queue of their own (tests, the demo, the benchmarks): concurrent calls
 * are queued and run one after the other, each with the channel's semantics.
 */
export class CtaphidClient extends CtaphidChannel {
  private queue: Promise<unknown> = Promise.resolve();

  /** Creates a client and allocates its channel. */
  static override async open(port: ReportPort, options: CtaphidClientOptions = {}): Promise<CtaphidClient> {
    const client = new CtaphidClient(port, options);
    await client.init();
    return client;
  }

  override init(): Promise<InitResponse> {
    return this.serialize(() => super.init());
  }

  /** Runs one transaction on our channel; concurrent calls are queued. */
  override transact(cmd: number, payload: Uint8Array, options: TransactOptions = {}): Promise<Uint8Array> {
    return this.serialize(() => super.transact(cmd, payload, options));
  }

  ping(data: Uint8Array, options: TransactOptions = {}): Promise<Uint8Array> {
    return this.transact(CTAPHID_PING, data, options);
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
  cbor(request: Uint8Array, options: TransactOptions = {}): Promise<Uint8Array> {
    return this.transact(CTAPHID_CBOR, request, options);
  }

  /** CTAPHID_MSG: a CTAP1/U2F APDU in, response data + status word out. */
  msg(apdu: Uint8Array, options: TransactOptions = {}): Promise<Uint8Array> {
    return this.transact(CTAPHID_MSG, apdu, options);
  }

  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }
}
