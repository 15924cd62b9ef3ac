/**
 * A framed, authenticated tunnel connection over one byte stream (a TLS socket in production; any Duplex works),
 * speaking protocol/tunnel.ts and enforcing the connection-level rules of protocol/README.md:
 *
 * - HELLO exchange: `PeerConnection.open` sends our HELLO at once and resolves when the peer's HELLO arrives
 *   (version must be TUNNEL_PROTOCOL_VERSION — else ERROR VERSION and close; roles must differ; nothing may come
 *   before it; it may not come twice). A peer that sends no HELLO within `helloTimeoutMs` is dropped.
 * - Direction: a frame the peer's role never sends (e.g. REQUEST from an agent) is a protocol error.
 * - Heartbeat: every `heartbeatIntervalMs` we send PING; PING is answered with PONG; any received byte proves
 *   liveness; after `deadAfterMs` without one the link is declared dead and destroyed. A silently dead peer (VM
 *   paused, cable pulled, half-open TCP) is thus found within deadAfterMs + heartbeatIntervalMs.
 * - Protocol errors (the decoder's TunnelProtocolError, or a rule above): best-effort ERROR(0, PROTOCOL, reason),
 *   then a graceful TLS close, then destroy if the peer does not close within a grace period.
 * - Backpressure: `send` returns false once the socket's write buffer passes its high-water mark (await
 *   `drained()`); a peer that lets more than `maxWriteBufferBytes` pile up (it stopped reading) is dropped.
 *   Reading is paused while more than `maxQueuedFrames` received frames wait for the consumer.
 *
 * PING/PONG and HELLO are handled here; every other frame goes to the consumer, either through `attach(handlers)`
 * or by async iteration (one consumer). Frames that arrive before the consumer attaches are queued for it.
 */
import type { Duplex } from 'node:stream';
import type { Logger } from '../protocol/logger.ts';
import {
  ERR_PROTOCOL,
  ERR_VERSION,
  FrameDecoder,
  MAX_MESSAGE_BYTES,
  TUNNEL_PROTOCOL_VERSION,
  TunnelProtocolError,
  encodeFrame,
  type Frame,
  type HelloFrame,
  type TunnelRole,
} from '../protocol/tunnel.ts';
import { KeytunnelError } from '../protocol/errors.ts';

export const DEFAULT_HEARTBEAT_INTERVAL_MS = 1000;
/** Silence after which the link is dead: with a 1 s tick a dead peer is found 3.5–4.5 s after its last byte. */
export const DEFAULT_DEAD_AFTER_MS = 3500;
export const DEFAULT_HELLO_TIMEOUT_MS = 10_000;
export const DEFAULT_MAX_WRITE_BUFFER_BYTES = 1024 * 1024;
export const DEFAULT_MAX_QUEUED_FRAMES = 256;
/** How long a graceful close may take before the socket is destroyed. */
const CLOSE_GRACE_MS = 2000;

export interface ConnectionOptions {
  /** Our role, announced in HELLO. */
  readonly role: TunnelRole;
  /** Our display name, announced in HELLO (0..256 UTF-8 bytes, no control characters). */
  readonly name: string;
  readonly log: Logger;
  readonly heartbeatIntervalMs?: number;
  readonly deadAfterMs?: number;
  readonly helloTimeoutMs?: number;
  readonly maxWriteBufferBytes?: number;
  readonly maxQueuedFrames?: number;
  /** Monotonic clock in ms (default performance.now). */
  readonly now?: () => number;
}

export type CloseReason =
  | 'local' // close() was called
  | 'remote' // the peer closed the stream
  | 'protocol-error' // the peer broke the protocol (malformed frame, bad order, wrong direction)
  | 'version-mismatch' // the peer speaks another protocol version
  | 'hello-timeout' // no HELLO in time
  | 'heartbeat-timeout' // nothing received for deadAfterMs
  | 'write-overflow' // the peer stopped reading
  | 'socket-error' // the stream failed
  | 'handler-error'; // the consumer's frame handler threw

export interface CloseInfo {
  readonly reason: CloseReason;
  readonly message: string;
}

export interface ConnectionHandlers {
  frame(frame: Frame): void;
  closed(info: CloseInfo): void;
}

/** The connection closed (before HELLO completed, for `open`). */
export class ConnectionClosedError extends KeytunnelError {
  override readonly name = 'ConnectionClosedError';
  readonly code = 'CONNECTION_CLOSED';
  constructor(readonly info: CloseInfo) {
    super(`tunnel connection closed (${info.reason}): ${info.message}`);
  }
}

/** Frame types each role may send (protocol/README.md, "Frame types"). */
const SENDABLE: Record<TunnelRole, ReadonlySet<Frame['type']>> = {
  agent: new Set(['hello', 'authenticators', 'keepalive', 'response', 'error', 'ping', 'pong']),
  gateway: new Set(['hello', 'request', 'cancel', 'error', 'ping', 'pong']),
};

/** A stream with TCP's setNoDelay (net.Socket, tls.TLSSocket). */
type MaybeNoDelay = Duplex & { setNoDelay?: (noDelay?: boolean) => unknown };

export class PeerConnection implements AsyncIterable<Frame> {
  private readonly decoder = new FrameDecoder();
  private readonly now: () => number;
  private readonly heartbeatIntervalMs: number;
  private readonly deadAfterMs: number;
  private readonly maxWriteBufferBytes: number;
  private readonly maxQueuedFrames: number;
  private peerHello: HelloFrame | undefined;
  private lastReceived: number;
  private nextPingNonce = 1;
  private heartbeat: ReturnType<typeof setInterval> | undefined;
  private closeInfo: CloseInfo | undefined;
  private resolveClosed!: (info: CloseInfo) => void;
  private readonly queue: Frame[] = [];
  private handlers: ConnectionHandlers | undefined;
  private iterating = false;
  private wake: (() => void) | undefined;
  private paused = false;
  private helloWaiter: { resolve(): void; reject(err: Error): void } | undefined;

  /** Resolves (never rejects) once the connection is closed, with why. */
  readonly closed: Promise<CloseInfo>;

  /**
   * Run the HELLO exchange on an already authenticated stream (`fingerprint` = the peer certificate's SHA-256).
   * Resolves with the open connection; rejects with ConnectionClosedError when the peer closes, fails HELLO, or
   * is silent for helloTimeoutMs.
   */
  static async open(socket: MaybeNoDelay, fingerprint: string, options: ConnectionOptions): Promise<PeerConnection> {
    const conn = new PeerConnection(socket, fingerprint, options);
    await conn.helloDone(options.helloTimeoutMs ?? DEFAULT_HELLO_TIMEOUT_MS);
    return conn;
  }

  private constructor(
    private readonly socket: MaybeNoDelay,
    /** SHA-256 fingerprint of the peer's certificate. */
    readonly fingerprint: string,
    private readonly options: ConnectionOptions,
  ) {
    this.now = options.now ?? (() => performance.now());
    this.heartbeatIntervalMs = options.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_INTERVAL_MS;
    this.deadAfterMs = options.deadAfterMs ?? DEFAULT_DEAD_AFTER_MS;
    this.maxWriteBufferBytes = options.maxWriteBufferBytes ?? DEFAULT_MAX_WRITE_BUFFER_BYTES;
    this.maxQueuedFrames = options.maxQueuedFrames ?? DEFAULT_MAX_QUEUED_FRAMES;
    this.lastReceived = this.now();
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    socket.setNoDelay?.(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.shutdown('remote', 'the peer closed the connection', { graceful: true }));
    socket.on('close', () => this.shutdown('remote', 'the connection was closed', { graceful: false }));
    socket.on('error', (err: Error) => this.shutdown('socket-error', err.message, { graceful: false }));
    // HELLO first (protocol/README.md rule 1), then the heartbeat.
    this.send({ type: 'hello', version: TUNNEL_PROTOCOL_VERSION, role: options.role, name: options.name });
    this.heartbeat = setInterval(() => this.tick(), this.heartbeatIntervalMs);
    this.heartbeat.unref?.();
  }

  /** The peer's display name from its HELLO. */
  get name(): string {
    return this.peerHello?.name ?? '';
  }

  /** The peer's role from its HELLO. */
  get role(): TunnelRole | undefined {
    return this.peerHello?.role;
  }

  get isClosed(): boolean {
    return this.closeInfo !== undefined;
  }

  /**
   * Send one frame. Returns false when the write buffer is above its high-water mark (await `drained()` before
   * sending more bulk data) or the connection is closed (the frame is dropped: a late answer to a peer that is
   * gone is not an error). Throws TunnelProtocolError for a frame that cannot be encoded (a caller bug).
   */
  send(frame: Frame): boolean {
    const bytes = encodeFrame(frame);
    if (this.closeInfo) {
      this.options.log.debug({ peer: this.fingerprint, frame: frame.type }, 'dropping a frame sent after close');
      return false;
    }
    const below = this.socket.write(bytes);
    if (this.socket.writableLength > this.maxWriteBufferBytes) {
      this.shutdown('write-overflow', `more than ${this.maxWriteBufferBytes} bytes waiting: the peer is not reading`, {
        graceful: false,
      });
      return false;
    }
    return below;
  }

  /** Resolves when the write buffer has drained (or the connection closed). */
  drained(): Promise<void> {
    if (this.closeInfo || !this.socket.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        this.socket.off('drain', done);
        resolve();
      };
      this.socket.on('drain', done);
      void this.closed.then(done);
    });
  }

  /** Close gracefully (TLS close_notify, then FIN). Idempotent. */
  close(reason = 'closed locally'): void {
    this.shutdown('local', reason, { graceful: true });
  }

  /** Deliver frames to `handlers` (queued frames first). One consumer per connection. */
  attach(handlers: ConnectionHandlers): void {
    if (this.handlers || this.iterating) throw new Error('this connection already has a consumer');
    this.handlers = handlers;
    while (this.queue.length > 0 && this.handlers) this.dispatch(this.queue.shift()!);
    this.resumeIfDrained();
    if (this.closeInfo) handlers.closed(this.closeInfo);
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Frame> {
    if (this.handlers || this.iterating) throw new Error('this connection already has a consumer');
    this.iterating = true;
    for (;;) {
      const frame = this.queue.shift();
      if (frame) {
        this.resumeIfDrained();
        yield frame;
        continue;
      }
      if (this.closeInfo) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
  }

  // -------------------------------------------------------------------------------------------------------------

  private helloDone(timeoutMs: number): Promise<void> {
    if (this.peerHello) return Promise.resolve();
    if (this.closeInfo) return Promise.reject(new ConnectionClosedError(this.closeInfo));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => this.shutdown('hello-timeout', `no HELLO within ${timeoutMs} ms`, { graceful: false }),
        timeoutMs,
      );
      this.helloWaiter = {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      };
    });
  }

  private tick(): void {
    if (this.closeInfo) return;
    const silent = this.now() - this.lastReceived;
    if (silent >= this.deadAfterMs) {
      this.shutdown('heartbeat-timeout', `nothing received for ${Math.round(silent)} ms`, { graceful: false });
      return;
    }
    this.send({ type: 'ping', nonce: this.nextPingNonce });
    this.nextPingNonce = (this.nextPingNonce + 1) >>> 0;
  }

  private onData(chunk: Buffer): void {
    if (this.closeInfo) return;
    this.lastReceived = this.now();
    let frames: Frame[];
    try {
      frames = this.decoder.push(chunk);
    } catch (err) {
      const message = err instanceof TunnelProtocolError ? `${err.code}: ${err.message}` : String(err);
      this.protocolError(message);
      return;
    }
    for (const frame of frames) {
      if (this.closeInfo) return;
      this.receive(frame);
    }
  }

  private receive(frame: Frame): void {
    if (!this.peerHello) {
      if (frame.type !== 'hello') return this.protocolError(`expected HELLO first, got ${frame.type.toUpperCase()}`);
      if (frame.version !== TUNNEL_PROTOCOL_VERSION) {
        const message = `unsupported tunnel protocol version ${frame.version} (this side speaks ${TUNNEL_PROTOCOL_VERSION})`;
        this.send({ type: 'error', requestId: null, code: ERR_VERSION, message });
        return this.shutdown('version-mismatch', message, { graceful: true });
      }
      if (frame.role === this.options.role) {
        return this.protocolError(`both sides are ${frame.role}s: one side must be the agent, the other the gateway`);
      }
      this.peerHello = frame;
      this.options.log.debug({ peer: this.fingerprint, name: frame.name, role: frame.role }, 'tunnel HELLO received');
      this.helloWaiter?.resolve();
      this.helloWaiter = undefined;
      return;
    }
    if (!SENDABLE[this.peerHello.role].has(frame.type) || frame.type === 'hello') {
      return this.protocolError(`a ${this.peerHello.role} may not send ${frame.type.toUpperCase()} here`);
    }
    if (frame.type === 'ping') {
      this.send({ type: 'pong', nonce: frame.nonce });
      return;
    }
    if (frame.type === 'pong') return; // liveness was recorded on receipt
    if (frame.type === 'error' && frame.requestId === null) {
      this.options.log.warn({ peer: this.fingerprint, code: frame.code, message: frame.message }, 'the peer reported a connection error');
    }
    this.deliver(frame);
  }

  private deliver(frame: Frame): void {
    if (this.handlers) {
      this.dispatch(frame);
      return;
    }
    this.queue.push(frame);
    if (this.queue.length >= this.maxQueuedFrames && !this.paused) {
      this.paused = true;
      this.socket.pause();
    }
    this.wake?.();
  }

  private dispatch(frame: Frame): void {
    try {
      this.handlers!.frame(frame);
    } catch (err) {
      this.options.log.error({ peer: this.fingerprint, err }, 'tunnel frame handler failed');
      this.shutdown('handler-error', `frame handler failed: ${(err as Error).message}`, { graceful: true });
    }
  }

  private resumeIfDrained(): void {
    if (this.paused && this.queue.length <= this.maxQueuedFrames / 2 && !this.closeInfo) {
      this.paused = false;
      this.socket.resume();
    }
  }

  private protocolError(message: string): void {
    this.options.log.warn({ peer: this.fingerprint, err: message }, 'tunnel protocol error; closing the connection');
    const bounded = Buffer.from(message, 'utf8').subarray(0, MAX_MESSAGE_BYTES - 3).toString('utf8').replace(/\uFFFD$/, '');
    try {
      this.send({ type: 'error', requestId: null, code: ERR_PROTOCOL, message: bounded.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?') });
    } catch {
      // the reason could not be encoded; close anyway
    }
    this.shutdown('protocol-error', message, { graceful: true });
  }

  private shutdown(reason: CloseReason, message: string, { graceful }: { graceful: boolean }): void {
    if (this.closeInfo) return;
    const info: CloseInfo = { reason, message };
    this.closeInfo = info;
    clearInterval(this.heartbeat);
    const level = reason === 'local' || reason === 'remote' ? 'info' : 'warn';
    this.options.log[level]({ peer: this.fingerprint, name: this.name, reason, message }, 'tunnel connection closed');
    if (graceful && !this.socket.destroyed) {
      this.socket.end();
      const timer = setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS);
      timer.unref?.();
      this.socket.once('close', () => clearTimeout(timer));
    } else this.socket.destroy();
    if (this.paused) this.socket.resume();
    this.resolveClosed(info);
    this.helloWaiter?.reject(new ConnectionClosedError(info));
    this.helloWaiter = undefined;
    this.wake?.();
    if (this.handlers) this.handlers.closed(info);
  }
}
