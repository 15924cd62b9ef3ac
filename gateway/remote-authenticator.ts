/**
 * An Authenticator that lives on the other side of the tunnel (the gateway's view of one authenticator the agent
 * exports). The device engine (device/ctaphid-device.ts) serves it exactly like a local one.
 *
 * - `request()` is one round trip: a REQUEST frame out, KEEPALIVE frames mapped to `ctx.onStatus`, then a RESPONSE
 *   (resolve with its payload) or an ERROR (reject: the engine answers the host CTAPHID_ERROR ERR_OTHER).
 * - authenticatorGetInfo (CTAP 2.1 PS 2021-06-15 §6.4: command byte 0x04 with no parameters) is answered from the
 *   getInfo the agent announced in AUTHENTICATORS: zero round trips. Browsers and libfido2 send it before every
 *   operation.
 * - `ctx.signal` aborting sends CANCEL (§11.2.9.1.5: the agent aborts the authenticator's operation) and
 *   settles at once; the engine answers CTAP2_ERR_KEEPALIVE_CANCEL itself. The agent's final answer to the
 *   cancelled id is then dropped; until it arrives the id stays reserved (protocol/README.md rule 5).
 * - The tunnel going down rejects every pending request at once (the VM client gets an error, never a hang), and a
 *   request made while the tunnel is down rejects at once too.
 *
 * INIT, PING, WINK and channel handling never get here: the device engine answers them locally.
 *
 * `RemoteRequests` is the per-agent bookkeeping shared by all of that agent's RemoteAuthenticators: request ids
 * (chosen by the gateway, 1..2^32-1, never reused while in flight), the pending table, and the REQUEST counter the
 * tests and the demo read.
 */
import type {
  Authenticator,
  AuthenticatorDescriptor,
  KeepaliveStatus,
  RequestContext,
  RequestKind,
} from '../protocol/authenticator.ts';
import { CTAP2_GET_INFO } from '../protocol/ctap2.ts';
import type { ErrorFrame, ExportedAuthenticator, Frame, KeepaliveFrame, ResponseFrame } from '../protocol/tunnel.ts';
import { KeytunnelError } from '../protocol/errors.ts';

/** Why a remote request failed (the engine maps every rejection to CTAPHID_ERROR ERR_OTHER). */
export type RemoteRequestErrorCode =
  | 'TUNNEL_DOWN' // no connection to the agent right now
  | 'TUNNEL_CLOSED' // the connection dropped while the request was pending
  | 'AUTHENTICATOR_GONE' // the agent no longer exports this authenticator
  | 'AGENT_ERROR' // the agent answered ERROR (code in `agentCode`)
  | 'TOO_MANY_REQUESTS' // local bound on requests in flight
  | 'ABORTED'; // ctx.signal aborted (the engine answers CTAP2_ERR_KEEPALIVE_CANCEL)

export class RemoteRequestError extends KeytunnelError {
  override readonly name = 'RemoteRequestError';
  constructor(
    readonly code: RemoteRequestErrorCode,
    message: string,
    /** The ERR_* code of the agent's ERROR frame, for AGENT_ERROR. */
    readonly agentCode?: number,
  ) {
    super(message);
  }
}

/** What RemoteRequests needs from a live tunnel connection. */
export interface FrameSender {
  send(frame: Frame): void;
}

interface Pending {
  readonly resolve: (payload: Uint8Array) => void;
  readonly reject: (err: Error) => void;
  readonly onStatus: (status: KeepaliveStatus) => void;
  readonly authenticatorId: string;
  /**
   * CANCEL was sent and the caller already got its rejection; the id stays reserved until the agent's one final
   * answer arrives (protocol/README.md rule 5: an id is never reused while the agent may still answer it).
   */
  cancelled: boolean;
}

const MAX_REQUEST_ID = 0xffff_ffff;
/** Bound on requests in flight per agent; each virtual device has at most one, so this is generous. */
export const MAX_PENDING_REQUESTS = 64;

/** Request ids, the pending table and the round-trip counter for one agent (survives reconnects). */
export class RemoteRequests {
  private sender: FrameSender | null = null;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private sent = 0;

  /** Number of REQUEST frames sent so far (each one is a tunnel round trip). */
  get requestsSent(): number {
    return this.sent;
  }

  /** Requests awaiting an answer. */
  get inFlight(): number {
    return this.pending.size;
  }

  /** Whether a live connection is bound. */
  get connected(): boolean {
    return this.sender !== null;
  }

  /** A connection to the agent is up (after HELLO): requests may flow. */
  bind(sender: FrameSender): void {
    if (this.sender !== null && this.sender !== sender) this.unbind(this.sender);
    this.sender = sender;
  }

  /**
   * That connection went away: every pending request rejects now (TUNNEL_CLOSED). Ignored when `sender` is not the
   * bound one (an old connection closing after a new one was bound).
   */
  unbind(sender: FrameSender): void {
    if (this.sender !== sender) return;
    this.sender = null;
    this.failWhere(() => true, 'TUNNEL_CLOSED', 'the tunnel to the agent closed while the request was pending');
  }

  /** Reject the pending requests of one authenticator (the agent stopped exporting it). */
  failAuthenticator(authenticatorId: string): void {
    this.failWhere(
      (p) => p.authenticatorId === authenticatorId,
      'AUTHENTICATOR_GONE',
      `the agent no longer exports authenticator ${authenticatorId}`,
    );
  }

  /** Route a KEEPALIVE, RESPONSE or request-scoped ERROR frame. Answers for unknown ids are dropped (false). */
  handle(frame: KeepaliveFrame | ResponseFrame | ErrorFrame): boolean {
    if (frame.requestId === null) return false;
    const p = this.pending.get(frame.requestId);
    if (p === undefined) return false;
    if (p.cancelled) {
      // The final answer to a cancelled request frees its id; nobody is waiting for it any more.
      if (frame.type !== 'keepalive') this.pending.delete(frame.requestId);
      return true;
    }
    switch (frame.type) {
      case 'keepalive':
        p.onStatus(frame.status);
        return true;
      case 'response':
        this.pending.delete(frame.requestId);
        p.resolve(frame.payload);
        return true;
      case 'error':
        this.pending.delete(frame.requestId);
        p.reject(
          new RemoteRequestError('AGENT_ERROR', `the agent answered error ${frame.code}: ${frame.message}`, frame.code),
        );
        return true;
    }
  }

  /** One round trip: REQUEST out, KEEPALIVEs to ctx.onStatus, RESPONSE in. */
  request(authenticatorId: string, kind: RequestKind, payload: Uint8Array, ctx: RequestContext): Promise<Uint8Array> {
    const sender = this.sender;
    if (ctx.signal.aborted) return Promise.reject(new RemoteRequestError('ABORTED', 'request aborted'));
    if (sender === null) {
      return Promise.reject(new RemoteRequestError('TUNNEL_DOWN', 'no tunnel to the agent (reconnecting)'));
    }
    if (this.pending.size >= MAX_PENDING_REQUESTS) {
      return Promise.reject(new RemoteRequestError('TOO_MANY_REQUESTS', 'too many requests in flight'));
    }
    const requestId = this.allocateId();
    return new Promise<Uint8Array>((resolve, reject) => {
      const onAbort = (): void => {
        const entry = this.pending.get(requestId);
        if (entry === undefined || entry.cancelled) return;
        entry.cancelled = true;
        // Best effort: the connection may be closing; the agent aborts the request when it drops anyway.
        try {
          this.sender?.send({ type: 'cancel', requestId });
        } catch {
          /* connection already gone */
        }
        reject(new RemoteRequestError('ABORTED', 'request aborted'));
      };
      const settle = (): void => ctx.signal.removeEventListener('abort', onAbort);
      this.pending.set(requestId, {
        authenticatorId,
        cancelled: false,
        onStatus: (status) => ctx.onStatus(status),
        resolve: (answer) => {
          settle();
          resolve(answer);
        },
        reject: (err) => {
          settle();
          reject(err);
        },
      });
      ctx.signal.addEventListener('abort', onAbort, { once: true });
      try {
        sender.send({ type: 'request', requestId, authenticatorId, kind, payload });
        this.sent++;
      } catch (err) {
        this.pending.delete(requestId);
        settle();
        reject(new RemoteRequestError('TUNNEL_CLOSED', `could not send the request: ${String(err)}`));
      }
    });
  }

  private allocateId(): number {
    // Never 0 (NO_REQUEST), never an id still in flight; the pending bound makes this loop short.
    for (;;) {
      const id = this.nextId;
      this.nextId = id >= MAX_REQUEST_ID ? 1 : id + 1;
      if (!this.pending.has(id)) return id;
    }
  }

  private failWhere(match: (p: Pending) => boolean, code: RemoteRequestErrorCode, message: string): void {
    for (const [id, p] of [...this.pending]) {
      if (!match(p)) continue;
      if (p.cancelled) {
        // Still reserved for the agent's final answer; freed when it comes or the connection drops.
        if (code === 'TUNNEL_CLOSED') this.pending.delete(id);
        continue;
      }
      this.pending.delete(id);
      p.reject(new RemoteRequestError(code, message));
    }
  }
}

/** True for an authenticatorGetInfo request: the command byte alone (CTAP 2.1 §6.4 takes no parameters). */
export function isGetInfoRequest(kind: RequestKind, payload: Uint8Array): boolean {
  return kind === 'cbor' && payload.length === 1 && payload[0] === CTAP2_GET_INFO;
}

/** One authenticator exported by the agent, seen from the gateway. */
export class RemoteAuthenticator implements Authenticator {
  private announced: ExportedAuthenticator;
  private present = true;
  /** getInfo requests answered from the cache (no round trip). */
  getInfoFromCache = 0;

  constructor(
    announced: ExportedAuthenticator,
    private readonly requests: RemoteRequests,
  ) {
    this.announced = announced;
  }

  get descriptor(): AuthenticatorDescriptor {
    const a = this.announced;
    return { id: a.id, label: a.label, transport: 'remote', ctap1: a.ctap1, wink: a.wink };
  }

  /** The latest announcement of this authenticator (same id): refreshes the getInfo cache, marks it present. */
  update(announced: ExportedAuthenticator): void {
    if (announced.id !== this.announced.id) throw new Error('RemoteAuthenticator.update: id mismatch');
    this.announced = announced;
    this.present = true;
  }

  /** The agent stopped exporting it (or the tunnel is down): pending requests fail now, new ones at once. */
  markAbsent(): void {
    this.present = false;
    this.requests.failAuthenticator(this.announced.id);
  }

  get isPresent(): boolean {
    return this.present;
  }

  request(kind: RequestKind, payload: Uint8Array, ctx: RequestContext): Promise<Uint8Array> {
    if (!this.present) {
      return Promise.reject(
        new RemoteRequestError('AUTHENTICATOR_GONE', `authenticator ${this.announced.id} is not available`),
      );
    }
    if (isGetInfoRequest(kind, payload) && this.announced.getInfo.length > 0) {
      this.getInfoFromCache++;
      return Promise.resolve(this.announced.getInfo.slice());
    }
    return this.requests.request(this.announced.id, kind, payload, ctx);
  }
}
