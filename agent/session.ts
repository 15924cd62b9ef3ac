/**
 * One gateway session on the agent: one authenticated tunnel peer (identified by its certificate fingerprint) and
 * the requests it makes. The agent (agent/agent.ts) owns the exported authenticators and the connections; a
 * session only turns frames into authenticator calls and back:
 *
 * - REQUEST → look the authenticator up (through the per-gateway view, the seam where the policy layer wraps
 *   each authenticator), call `request(kind, payload, {signal, onStatus, origin})`, forward each status change
 *   as a KEEPALIVE frame, then answer RESPONSE (or ERROR when the authenticator rejects: a transport failure).
 * - CANCEL → abort that request's signal (CTAP 2.1 PS 2021-06-15 §11.2.9.1.5); the authenticator settles promptly.
 * - the session closing (connection dropped) → abort every request it still has in flight.
 *
 * The gateway runs inside the untrusted VM, so every REQUEST is checked: unknown authenticator, reused request id
 * and too many requests in flight are refused with ERROR; frames a gateway must never send are a protocol error
 * (ERROR ERR_PROTOCOL, then the connection is closed).
 */
import type {
  Authenticator,
  KeepaliveStatus,
  RequestOrigin,
} from '../protocol/authenticator.ts';
import { CTAP2_OK } from '../protocol/ctap2.ts';
import {
  ERR_AUTHENTICATOR_FAILED,
  ERR_CANCELLED,
  ERR_DUPLICATE_REQUEST,
  ERR_PROTOCOL,
  ERR_TOO_MANY_REQUESTS,
  ERR_UNKNOWN_AUTHENTICATOR,
  MAX_MESSAGE_BYTES,
  type ExportedAuthenticator,
  type Frame,
  type RequestFrame,
} from '../protocol/tunnel.ts';
import type { Logger } from '../protocol/logger.ts';
import { displayText } from './display-text.ts';
import { LogRateLimit } from './log-rate-limit.ts';

/** Who the session talks to. `fingerprint` is the gateway certificate's SHA-256; `name` what it announced. */
export interface GatewayIdentity {
  readonly fingerprint: string;
  readonly name: string;
}

/**
 * The per-gateway seam for the policy layer: given the gateway, a function that wraps each exported authenticator
 * into the view that gateway gets (allow-list, scope, consent, audit). The default is the identity.
 */
export type AuthenticatorView = (gateway: GatewayIdentity) => (auth: Authenticator) => Authenticator;

export const identityView: AuthenticatorView = () => (auth) => auth;

/** What the session needs from the agent. */
export interface SessionHost {
  /** The authenticator exported under `id`, or undefined. */
  lookup(id: string): Authenticator | undefined;
  /** The current AUTHENTICATORS list. */
  exported(): ExportedAuthenticator[];
  /**
   * Called after an authenticator answered a CTAP2 request with CTAP2_OK, before the RESPONSE is sent: lets the agent refresh its getInfo cache
   * (and re-announce to every gateway) when the request may have changed it, so the gateway never serves a stale
   * getInfo after e.g. setPIN.
   */
  afterRequest?(authenticatorId: string, frame: RequestFrame): Promise<void>;
}

/** What the session needs from its connection. */
export interface SessionLink {
  send(frame: Frame): void;
  /** Close the connection (after a protocol error). */
  close(reason: string): void;
}

/** Bound on concurrent requests per gateway (a device engine has at most one per virtual device). */
export const MAX_SESSION_REQUESTS = 32;

interface InFlight {
  readonly controller: AbortController;
  readonly authenticatorId: string;
}

export class GatewaySession {
  private readonly inFlight = new Map<number, InFlight>();
  private readonly wrap: (auth: Authenticator) => Authenticator;
  private readonly views = new WeakMap<Authenticator, Authenticator>();
  private closed = false;
  private readonly origin: RequestOrigin;
  /** Bounds the log lines this gateway's ERROR frames can cause. */
  private readonly errorLogLimit = new LogRateLimit();
  /** REQUEST frames received (for diagnostics and tests). */
  requestsReceived = 0;

  constructor(
    readonly gateway: GatewayIdentity,
    private readonly link: SessionLink,
    private readonly host: SessionHost,
    view: AuthenticatorView,
    private readonly log: Logger,
  ) {
    this.wrap = view(gateway);
    this.origin = { gatewayFingerprint: gateway.fingerprint, gatewayName: gateway.name };
  }

  /** Requests currently in flight. */
  get pendingRequests(): number {
    return this.inFlight.size;
  }

  /** Send the current AUTHENTICATORS list (first thing after HELLO, then on every change). */
  announce(): void {
    if (this.closed) return;
    this.link.send({ type: 'authenticators', authenticators: this.host.exported() });
  }

  /** One frame from the gateway (HELLO and PING/PONG are handled by the connection layer). */
  handleFrame(frame: Frame): void {
    if (this.closed) return;
    switch (frame.type) {
      case 'request':
        this.handleRequest(frame);
        return;
      case 'cancel': {
        const entry = this.inFlight.get(frame.requestId);
        if (entry !== undefined) {
          this.log.debug({ requestId: frame.requestId }, 'gateway cancelled a request');
          entry.controller.abort();
        }
        return;
      }
      case 'error':
        this.logGatewayError(frame.code, frame.requestId, frame.message);
        return;
      case 'ping':
      case 'pong':
      case 'hello':
        return;
      default:
        this.protocolError(`a gateway must not send ${frame.type} frames`);
    }
  }

  /**
   * A gateway's ERROR frame, logged through a per-session rate limit (a VM controls how many it sends) with its
   * VM-written message made printable and bounded.
   */
  private logGatewayError(code: number, requestId: number | null, message: string): void {
    const suppressed = this.errorLogLimit.take();
    if (suppressed === undefined) return;
    if (suppressed > 0) this.log.warn({ suppressed }, `${suppressed} similar messages from this gateway suppressed`);
    this.log.warn({ code, requestId, message: displayText(message, 200) }, 'gateway reported an error');
  }

  /** The connection is gone: abort everything still in flight. */
  handleClose(): void {
    if (this.closed) return;
    this.closed = true;
    const suppressed = this.errorLogLimit.drainSuppressed();
    if (suppressed > 0) this.log.warn({ suppressed }, `${suppressed} similar messages from this gateway suppressed`);
    for (const entry of this.inFlight.values()) entry.controller.abort();
    this.inFlight.clear();
  }

  /** Abort the requests in flight to one authenticator (it was removed). */
  abortAuthenticator(authenticatorId: string): void {
    for (const entry of this.inFlight.values()) {
      if (entry.authenticatorId === authenticatorId) entry.controller.abort();
    }
  }

  private handleRequest(frame: RequestFrame): void {
    const { requestId } = frame;
    this.requestsReceived++;
    if (this.inFlight.has(requestId)) {
      this.sendError(requestId, ERR_DUPLICATE_REQUEST, `request id ${requestId} is already in flight`);
      return;
    }
    if (this.inFlight.size >= MAX_SESSION_REQUESTS) {
      this.sendError(requestId, ERR_TOO_MANY_REQUESTS, `at most ${MAX_SESSION_REQUESTS} requests in flight`);
      return;
    }
    const raw = this.host.lookup(frame.authenticatorId);
    if (raw === undefined) {
      this.sendError(requestId, ERR_UNKNOWN_AUTHENTICATOR, `no authenticator ${frame.authenticatorId}`);
      return;
    }
    const auth = this.viewOf(raw);
    const controller = new AbortController();
    this.inFlight.set(requestId, { controller, authenticatorId: frame.authenticatorId });
    let lastStatus: KeepaliveStatus | 0 = 0;
    const onStatus = (status: KeepaliveStatus): void => {
      // The gateway's device engine repeats the latest status every 100 ms on its own: send changes only.
      if (status === lastStatus || this.closed || controller.signal.aborted) return;
      lastStatus = status;
      this.link.send({ type: 'keepalive', requestId, status });
    };
    let answer: Promise<Uint8Array>;
    try {
      answer = auth.request(frame.kind, frame.payload, { signal: controller.signal, onStatus, origin: this.origin });
    } catch (err) {
      answer = Promise.reject(err);
    }
    answer.then(
      async (payload) => {
        // Only an OK answer can have changed the authenticator (a refusal, by the policy or the authenticator, changed
        // nothing): anything else must not cost the authenticator a getInfo (issue 11, finding 6).
        if (this.host.afterRequest !== undefined && !this.closed && frame.kind === 'cbor' && payload[0] === CTAP2_OK) {
          try {
            await this.host.afterRequest(frame.authenticatorId, frame);
          } catch (err) {
            this.log.warn({ err: String(err) }, 'refreshing the getInfo cache failed');
          }
        }
        this.finish(requestId, controller, () => {
          if (payload.length === 0) {
            this.link.send({ type: 'error', requestId, code: ERR_AUTHENTICATOR_FAILED, message: 'empty answer' });
          } else {
            this.link.send({ type: 'response', requestId, payload });
          }
        });
      },
      (err: unknown) => {
        this.finish(requestId, controller, () => {
          if (controller.signal.aborted) {
            this.link.send({ type: 'error', requestId, code: ERR_CANCELLED, message: 'cancelled' });
          } else {
            this.log.warn({ authenticator: frame.authenticatorId, err: String(err) }, 'authenticator request failed');
            this.sendError(requestId, ERR_AUTHENTICATOR_FAILED, `authenticator failed: ${String(err)}`);
          }
        });
      },
    );
  }

  private finish(requestId: number, controller: AbortController, send: () => void): void {
    if (this.inFlight.get(requestId)?.controller !== controller) return; // session closed meanwhile
    this.inFlight.delete(requestId);
    if (this.closed) return;
    try {
      send();
    } catch (err) {
      this.log.debug({ err: String(err) }, 'could not send an answer (connection closing)');
    }
  }

  private viewOf(auth: Authenticator): Authenticator {
    let v = this.views.get(auth);
    if (v === undefined) {
      v = this.wrap(auth);
      this.views.set(auth, v);
    }
    return v;
  }

  private sendError(requestId: number | null, code: number, message: string): void {
    try {
      this.link.send({ type: 'error', requestId, code, message: sanitizeMessage(message) });
    } catch (err) {
      this.log.debug({ err: String(err) }, 'could not send ERROR (connection closing)');
    }
  }

  private protocolError(message: string): void {
    this.log.warn({ gateway: this.gateway.fingerprint }, `protocol error: ${message}; closing the session`);
    this.sendError(null, ERR_PROTOCOL, message);
    this.handleClose();
    this.link.close(message);
  }
}

/** ERROR messages: no control characters, at most MAX_MESSAGE_BYTES UTF-8 bytes. */
export function sanitizeMessage(message: string): string {
  // eslint-disable-next-line no-control-regex
  let text = message.replace(/[\u0000-\u001f\u007f-\u009f]/g, ' ');
  while (Buffer.byteLength(text, 'utf8') > MAX_MESSAGE_BYTES) text = text.slice(0, Math.floor(text.length * 0.9));
  return text.replace(/[\ud800-\udbff]$/, '');
}
