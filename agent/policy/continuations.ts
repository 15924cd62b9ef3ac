/**
 * Who may continue a stateful CTAP sequence on a shared authenticator (issue 11, finding 2).
 *
 * Three CTAP 2.1 PS 2021-06-15 commands continue what an earlier request began, and carry nothing that says whose it was:
 * authenticatorGetNextAssertion (§6.3, after a getAssertion answered numberOfCredentials > 1) and the
 * credential-management enumerateRPsGetNextRP / enumerateCredentialsGetNextCredential (§6.8.3 / §6.8.4, after a
 * Begin answered totalRPs / totalCredentials > 1). An authenticator continues whatever sequence it holds, so one
 * gateway must never be able to send them after another gateway's request began the sequence.
 *
 * Ownership is decided by what the authenticator actually answered, never by who merely asked:
 *
 * - every request the policy forwards is recorded at the moment it is handed to the authenticator ("reached"),
 *   whoever sent it, whatever the authenticator then does with it (answers it, refuses it early, or a queued
 *   request is cancelled before it reaches the key): any forwarded request other than the owner's continuation
 *   ends the live sequence;
 * - a gateway owns a sequence only when its own request's OK answer announced more items and nothing else reached
 *   the authenticator while that request was under way (none in flight when it was forwarded, none forwarded
 *   before it was answered). Requests in flight together may be served in any order (a hardware key's queue may
 *   be shared fairly between gateways; the soft authenticator is asynchronous), so an answer whose order
 *   against another request is unknown never makes its gateway an owner;
 * - a continuation is forwarded only for the owner of the live sequence of that kind, only while nothing else has
 *   reached the authenticator since the owner's last answer, and only while items remain (the count is taken
 *   from the answer and counted down, so a finished sequence is closed). Otherwise the policy answers
 *   CTAP2_ERR_NOT_ALLOWED itself (§6.3 / §6.8: the answer to a continuation with no pending sequence);
 * - should another request be forwarded while a continuation is in flight, the continuation's answer is withheld
 *   (CTAP2_ERR_NOT_ALLOWED): it may have been served after the other request and hold the other's data.
 *
 * The price is that two gateways using one authenticator at the same instant cannot enumerate while the other
 * works; the gateway's client sees the same CTAP2_ERR_NOT_ALLOWED a key gives when a sequence times out.
 */
import {
  CRED_MGMT_ENUMERATE_CREDENTIALS_BEGIN,
  CRED_MGMT_ENUMERATE_CREDENTIALS_GET_NEXT_CREDENTIAL,
  CRED_MGMT_ENUMERATE_RPS_BEGIN,
  CRED_MGMT_ENUMERATE_RPS_GET_NEXT_RP,
  CRED_MGMT_RESP_TOTAL_CREDENTIALS,
  CRED_MGMT_RESP_TOTAL_RPS,
} from '../../protocol/credential-management.ts';
import {
  CTAP2_CREDENTIAL_MANAGEMENT,
  CTAP2_CREDENTIAL_MANAGEMENT_PRE,
  CTAP2_GET_ASSERTION,
  CTAP2_GET_NEXT_ASSERTION,
  CTAP2_OK,
  GET_ASSERTION_RESP_NUMBER_OF_CREDENTIALS,
} from '../../protocol/ctap2.ts';
import { decode, isCborMap } from '../../protocol/cbor.ts';

export type SequenceKind = 'assertion' | 'rps' | 'credentials';

/** What a request is, as far as sequences care (a subset of RequestSummary). */
export interface SequenceRequest {
  readonly kind: 'cbor' | 'msg';
  readonly command: number;
  readonly subCommand?: number;
}

/** The sequence this request continues, or undefined when it is not a continuation. */
export function continuationOf(r: SequenceRequest): SequenceKind | undefined {
  if (r.kind !== 'cbor') return undefined;
  if (r.command === CTAP2_GET_NEXT_ASSERTION) return 'assertion';
  if (r.command !== CTAP2_CREDENTIAL_MANAGEMENT && r.command !== CTAP2_CREDENTIAL_MANAGEMENT_PRE) return undefined;
  if (r.subCommand === CRED_MGMT_ENUMERATE_RPS_GET_NEXT_RP) return 'rps';
  if (r.subCommand === CRED_MGMT_ENUMERATE_CREDENTIALS_GET_NEXT_CREDENTIAL) return 'credentials';
  return undefined;
}

/** The sequence an answer to this request begins and how many items it has left after the first, or undefined. */
export function sequenceBegunBy(r: SequenceRequest, answer: Uint8Array): { kind: SequenceKind; left: number } | undefined {
  if (r.kind !== 'cbor' || answer.length < 2 || answer[0] !== CTAP2_OK) return undefined;
  let kind: SequenceKind;
  let countKey: number;
  if (r.command === CTAP2_GET_ASSERTION) {
    kind = 'assertion';
    countKey = GET_ASSERTION_RESP_NUMBER_OF_CREDENTIALS;
  } else if (r.command === CTAP2_CREDENTIAL_MANAGEMENT || r.command === CTAP2_CREDENTIAL_MANAGEMENT_PRE) {
    if (r.subCommand === CRED_MGMT_ENUMERATE_RPS_BEGIN) {
      kind = 'rps';
      countKey = CRED_MGMT_RESP_TOTAL_RPS;
    } else if (r.subCommand === CRED_MGMT_ENUMERATE_CREDENTIALS_BEGIN) {
      kind = 'credentials';
      countKey = CRED_MGMT_RESP_TOTAL_CREDENTIALS;
    } else {
      return undefined;
    }
  } else {
    return undefined;
  }
  let body;
  try {
    body = decode(answer.subarray(1), { canonical: false });
  } catch {
    return undefined; // an answer we cannot read begins nothing anyone may continue
  }
  const count = isCborMap(body) ? body.get(countKey) : undefined;
  return typeof count === 'number' && count > 1 ? { kind, left: count - 1 } : undefined;
}

/** One forwarded request, from the moment it was handed to the authenticator until its answer. */
export interface Forwarded {
  readonly authenticatorId: string;
  readonly gateway: string;
  readonly request: SequenceRequest;
  /** The sequence this request continues (it was allowed to: its gateway owned it). */
  readonly continues?: SequenceKind;
  /** The authenticator's count of forwarded requests, this one included. */
  readonly serial: number;
  /** Whether nothing else was in flight on the authenticator when this was forwarded. */
  readonly alone: boolean;
}

interface Live {
  readonly owner: string;
  readonly kind: SequenceKind;
  /** Items the authenticator still holds. */
  left: number;
  /** The authenticator's forward count when the owner's last answer arrived. */
  serial: number;
}

interface AuthenticatorState {
  forwarded: number;
  inFlight: number;
  live?: Live;
}

export class ContinuationTracker {
  private readonly states = new Map<string, AuthenticatorState>();

  /** Whether `gateway` may continue a sequence of `kind` on the authenticator now (see the module comment). */
  mayContinue(authenticatorId: string, gateway: string, kind: SequenceKind): boolean {
    const s = this.states.get(authenticatorId);
    const live = s?.live;
    return (
      s !== undefined &&
      live !== undefined &&
      live.owner === gateway &&
      live.kind === kind &&
      live.left > 0 &&
      live.serial === s.forwarded &&
      s.inFlight === 0
    );
  }

  /**
   * Record that a request is handed to the authenticator now. Call synchronously right before the
   * authenticator's request(), after `mayContinue` allowed it when it is a continuation; pair with `answered`.
   */
  forwarding(authenticatorId: string, gateway: string, request: SequenceRequest): Forwarded {
    const s = this.state(authenticatorId);
    const kind = continuationOf(request);
    const continues = kind !== undefined && this.mayContinue(authenticatorId, gateway, kind) ? kind : undefined;
    // Anything but the owner's own continuation ends the live sequence on the authenticator.
    if (continues === undefined) s.live = undefined;
    const forwarded: Forwarded = {
      authenticatorId,
      gateway,
      request,
      continues,
      serial: ++s.forwarded,
      alone: s.inFlight === 0,
    };
    s.inFlight++;
    return forwarded;
  }

  /**
   * The authenticator answered `f` (`answer` undefined: it failed or was cancelled). Returns false when the answer
   * must not be delivered: a continuation's answer whose order against another request is unknown.
   */
  answered(f: Forwarded, answer: Uint8Array | undefined): boolean {
    const s = this.state(f.authenticatorId);
    s.inFlight = Math.max(0, s.inFlight - 1);
    // Nothing else reached the authenticator while f was under way: f's answer is f's alone.
    const undisturbed = f.alone && s.forwarded === f.serial;
    if (f.continues !== undefined) {
      const live = s.live;
      const stillOwned = live !== undefined && live.owner === f.gateway && live.kind === f.continues;
      if (!undisturbed || !stillOwned) {
        if (stillOwned) s.live = undefined;
        this.forget(f.authenticatorId, s);
        return answer === undefined || answer[0] !== CTAP2_OK;
      }
      if (answer === undefined || answer[0] !== CTAP2_OK) {
        s.live = undefined;
      } else {
        live.left--;
        live.serial = s.forwarded;
        if (live.left <= 0) s.live = undefined;
      }
      this.forget(f.authenticatorId, s);
      return true;
    }
    const begun = undisturbed && answer !== undefined ? sequenceBegunBy(f.request, answer) : undefined;
    if (begun !== undefined) s.live = { owner: f.gateway, kind: begun.kind, left: begun.left, serial: s.forwarded };
    this.forget(f.authenticatorId, s);
    return true;
  }

  private state(authenticatorId: string): AuthenticatorState {
    let s = this.states.get(authenticatorId);
    if (s === undefined) {
      s = { forwarded: 0, inFlight: 0 };
      this.states.set(authenticatorId, s);
    }
    return s;
  }

  /**
   * Drop an idle authenticator's entry (nothing in flight, no live sequence), so hot-plugged keys leave nothing
   * behind. Safe: a fresh entry allows no continuation, and a Forwarded from before holds its own serial.
   */
  private forget(authenticatorId: string, s: AuthenticatorState): void {
    if (s.inFlight === 0 && s.live === undefined) this.states.delete(authenticatorId);
  }
}
