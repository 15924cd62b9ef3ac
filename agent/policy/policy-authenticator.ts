/**
 * The per-gateway policy layer: an Authenticator that wraps another one for one gateway, on the agent, where the
 * untrusted VM cannot change it. In order, for every request:
 *   1. refuse (CTAP2_ERR_OPERATION_DENIED, or SW_WRONG_DATA for U2F) what the gateway may not do, before the
 *      authenticator sees a byte: an RP ID that is not a valid domain name (rp-id.ts) or is outside `allowRps`,
 *      a request whose RP cannot be parsed, commands that would touch every tenant (reset, config, large blobs,
 *      bio enrollment, vendor commands), credential management that would reach beyond the gateway's RPs, and
 *      unknown credential-management subcommands (CTAP2_ERR_INVALID_SUBCOMMAND);
 *   2. refuse (CTAP2_ERR_NOT_ALLOWED) a continuation (getNextAssertion, credential-management GetNext*) unless
 *      this gateway owns the authenticator's live sequence (continuations.ts);
 *   3. with `approve: agent` on a hardware key, ask the user on the agent, naming the gateway, RP and user;
 *      for clientPIN, the PIN guard (pin-guard.ts) confirms setPIN/changePIN and limits wrong PINs per gateway;
 *   4. pass on the canonical re-encoding of exactly what was judged (request-summary.ts) with the gateway as
 *      origin and, with `scope: per-gateway`, the gateway's fingerprint as credential scope (the soft
 *      authenticator then shows this gateway only its own credentials);
 *   5. write one audit line.
 * A refused request reaches no authenticator at all.
 */
import {
  STATUS_UPNEEDED,
  type Authenticator,
  type RequestContext,
  type RequestKind,
  type RequestOrigin,
} from '../../protocol/authenticator.ts';
import {
  CTAP2_CLIENT_PIN,
  CTAP2_CREDENTIAL_MANAGEMENT,
  CTAP2_CREDENTIAL_MANAGEMENT_PRE,
  CTAP2_ERR_INVALID_SUBCOMMAND,
  CTAP2_ERR_KEEPALIVE_CANCEL,
  CTAP2_ERR_NOT_ALLOWED,
  CTAP2_ERR_OPERATION_DENIED,
  CTAP2_ERR_USER_ACTION_TIMEOUT,
  CTAP2_GET_ASSERTION,
  CTAP2_GET_INFO,
  CTAP2_GET_NEXT_ASSERTION,
  CTAP2_MAKE_CREDENTIAL,
  CTAP2_SELECTION,
} from '../../protocol/ctap2.ts';
import {
  CRED_MGMT_DELETE_CREDENTIAL,
  CRED_MGMT_ENUMERATE_CREDENTIALS_BEGIN,
  CRED_MGMT_ENUMERATE_CREDENTIALS_GET_NEXT_CREDENTIAL,
  CRED_MGMT_ENUMERATE_RPS_BEGIN,
  CRED_MGMT_ENUMERATE_RPS_GET_NEXT_RP,
  CRED_MGMT_GET_CREDS_METADATA,
  CRED_MGMT_UPDATE_USER_INFORMATION,
} from '../../protocol/credential-management.ts';
import {
  statusWordOf,
  SW_WRONG_DATA,
  U2F_AUTH_CHECK_ONLY,
  U2F_AUTHENTICATE,
  U2F_REGISTER,
  U2F_VERSION,
  withStatusWord,
} from '../../protocol/u2f.ts';
import { askPresence } from '../presence/ask.ts';
import { ctap2PresenceStatus } from '../presence/outcome-status.ts';
import type { Presence, PresenceRequest } from '../presence/port.ts';
import type { AuditSink, Decision } from './audit.ts';
import type { GatewayPolicy } from './config.ts';
import type { PinGuard } from './pin-guard.ts';
import { summarizeRequest, type RequestSummary } from './request-summary.ts';
import { ContinuationTracker, continuationOf } from './continuations.ts';
import { isSilentSignature } from './silent-signature.ts';
import { rpIdProblem } from './rp-id.ts';
import { allowsAnyRp, rpAllowed, rpHashAllowed } from './rp-match.ts';

/** Offset of P1 in a command APDU (ISO 7816-4: CLA INS P1 P2): U2F_AUTHENTICATE's control byte. */
const APDU_P1 = 2;

/**
 * State shared by the views of all gateways: who owns each authenticator's live sequence, so one VM cannot
 * continue (getNextAssertion, enumerate GetNext*) a sequence another VM began on a shared key.
 */
export class PolicyState {
  readonly continuations = new ContinuationTracker();
}

export interface PolicyDeps {
  readonly audit: AuditSink;
  /** Asked for `approve: agent` on authenticators that do not confirm on the agent themselves. */
  readonly presence: Presence;
  readonly state: PolicyState;
  /** setPIN/changePIN confirmation and the per-gateway wrong-PIN limit (agent/policy/pin-guard.ts); one per agent. */
  readonly pinGuard?: PinGuard;
  readonly now?: () => number;
}

export function withPolicy(inner: Authenticator, policy: GatewayPolicy, deps: PolicyDeps): Authenticator {
  const now = deps.now ?? (() => performance.now());
  const origin = {
    gatewayFingerprint: policy.fingerprint,
    gatewayName: policy.name,
    credentialScope: policy.scope === 'per-gateway' ? policy.fingerprint : undefined,
  } satisfies RequestOrigin;
  const id = inner.descriptor.id;

  async function request(kind: RequestKind, payload: Uint8Array, ctx: RequestContext): Promise<Uint8Array> {
    const started = now();
    const summary = summarizeRequest(kind, payload);
    const audit = (decision: Decision, status: string | undefined, reason?: string) =>
      deps.audit.record({
        gateway: policy.fingerprint,
        gatewayName: policy.name,
        authenticator: id,
        command: summary.name,
        rpId: summary.rpId,
        rpIdHash: summary.rpIdHash && !summary.rpId ? Buffer.from(summary.rpIdHash).toString('hex') : undefined,
        user: summary.userName,
        decision,
        reason,
        status,
        durationMs: Math.round((now() - started) * 10) / 10,
      });

    if (summary.malformed !== undefined) {
      const answer = kind === 'cbor' ? Uint8Array.of(summary.malformed) : withStatusWord(summary.malformed);
      audit('refused-by-policy', statusOf(kind, answer), 'malformed request');
      return answer;
    }
    const refusal = refusalReason(summary, policy, inner);
    if (refusal) {
      const answer = refusal.status === undefined ? refuse(kind) : Uint8Array.of(refusal.status);
      audit('refused-by-policy', statusOf(kind, answer), refusal.reason);
      return answer;
    }
    if (policy.approve === 'agent' && inner.descriptor.transport !== 'soft' && needsConsent(summary, payload)) {
      const consent = consentRequest(summary, origin);
      ctx.onStatus(STATUS_UPNEEDED);
      const outcome = await askPresence(deps.presence, consent, ctx.signal);
      if (outcome === 'cancelled') {
        audit('cancelled', undefined);
        return Uint8Array.of(CTAP2_ERR_KEEPALIVE_CANCEL);
      }
      if (outcome !== 'approved') {
        // CTAP2: the status the spec names for the outcome (agent/presence/outcome-status.ts). U2F: the policy's
        // refusal, SW_WRONG_DATA, which ends the client's polling (SW_CONDITIONS_NOT_SATISFIED would make it ask
        // again at once, prompting the user in a loop).
        const answer = kind === 'cbor' ? Uint8Array.of(ctap2PresenceStatus(outcome, consent.action)) : refuse(kind);
        audit(outcome === 'timeout' ? 'timed-out' : 'denied-by-user', statusOf(kind, answer));
        return answer;
      }
    }

    // ── PIN guard hook (issue 11 finding 3; the logic is in pin-guard.ts) ──────────────────────────────────
    // A pass holds the gateway's PIN slot on this authenticator: it is settled exactly once, below, with the
    // authenticator's answer (or undefined when it threw). clientPIN is never a continuation, so the continuation
    // refusal below never leaves a pass unsettled.
    // Only clientPIN awaits here: every other request reaches the authenticator in the tick it was judged in.
    const pin =
      kind === 'cbor' && summary.command === CTAP2_CLIENT_PIN
        ? await deps.pinGuard?.admit(kind, summary.forward!, { origin, authenticator: id }, ctx)
        : undefined;
    if (pin?.refused) {
      audit(pin.decision, statusOf(kind, pin.answer), pin.reason);
      return pin.answer;
    }
    // ── end PIN guard hook ──────────────────────────────────────────────────────────────────────────────────

    // A continuation goes on only for the owner of the live sequence (continuations.ts). Checked here, in the same
    // tick as forwarding, so that nothing awaited before (a prompt) can let another request in between.
    const continues = continuationOf(summary);
    if (continues !== undefined && !deps.state.continuations.mayContinue(id, policy.fingerprint, continues)) {
      const answer = Uint8Array.of(CTAP2_ERR_NOT_ALLOWED);
      audit('refused-by-policy', statusOf(kind, answer), 'no sequence of this gateway to continue');
      return answer;
    }
    const forwarded = deps.state.continuations.forwarding(id, policy.fingerprint, summary);
    let answer: Uint8Array;
    try {
      answer = await inner.request(kind, summary.forward!, { signal: ctx.signal, onStatus: (s) => ctx.onStatus(s), origin });
    } catch (err) {
      pin?.settle(undefined); // PIN guard hook
      deps.state.continuations.answered(forwarded, undefined);
      audit(ctx.signal.aborted ? 'cancelled' : 'failed', undefined, (err as Error).message);
      throw err;
    }
    pin?.settle(answer); // PIN guard hook
    if (!deps.state.continuations.answered(forwarded, answer)) {
      const withheld = Uint8Array.of(CTAP2_ERR_NOT_ALLOWED);
      audit('refused-by-policy', statusOf(kind, withheld), 'another request reached the authenticator during this continuation');
      return withheld;
    }
    // A signature made without a presence test (an up=false probe) is allowed but named as such (finding 7).
    audit(isSilentSignature(kind, summary.forward!, answer) ? 'silent' : decisionOf(kind, answer), statusOf(kind, answer));
    return answer;
  }

  return {
    descriptor: inner.descriptor,
    request,
    ...(inner.wink ? { wink: () => inner.wink!() } : {}),
  };
}

interface Refusal {
  readonly reason: string;
  /** The CTAP2 status to answer; default CTAP2_ERR_OPERATION_DENIED (SW_WRONG_DATA for U2F). */
  readonly status?: number;
}

/** Why the policy refuses this request, or undefined when it may go on. */
function refusalReason(s: RequestSummary, policy: GatewayPolicy, inner: Authenticator): Refusal | undefined {
  const denied = (reason: string): Refusal => ({ reason });
  if (s.rpId !== undefined) {
    // The RP ID must be one before any allow-list entry is matched against it (finding 8).
    const problem = rpIdProblem(s.rpId);
    if (problem !== undefined) return denied(problem);
    if (!rpAllowed(policy.allowRps, s.rpId)) return denied(`RP ${s.rpId} is not in allowRps`);
  }
  if (s.kind === 'msg') {
    if (s.command === U2F_VERSION) return undefined;
    if (s.command !== U2F_REGISTER && s.command !== U2F_AUTHENTICATE) return denied(`U2F instruction ${s.name} not allowed`);
    return rpHashAllowed(policy.allowRps, s.rpIdHash!) ? undefined : denied('U2F application is not in allowRps');
  }
  switch (s.command) {
    case CTAP2_GET_INFO:
    case CTAP2_SELECTION:
    case CTAP2_CLIENT_PIN:
    case CTAP2_MAKE_CREDENTIAL:
    case CTAP2_GET_ASSERTION:
    case CTAP2_GET_NEXT_ASSERTION: // only for the sequence's owner: see continuations.ts
      return undefined;
    case CTAP2_CREDENTIAL_MANAGEMENT:
    case CTAP2_CREDENTIAL_MANAGEMENT_PRE:
      return credentialManagementRefusal(s, policy, inner);
    default:
      // reset, authenticatorConfig, largeBlobs, bio enrollment, vendor commands: they act on every tenant's
      // credentials (or the key itself), so no VM may send them.
      return denied(`${s.name} is not allowed through a gateway`);
  }
}

function credentialManagementRefusal(s: RequestSummary, policy: GatewayPolicy, inner: Authenticator): Refusal | undefined {
  // The soft authenticator filters by credential scope itself; a hardware key (or shared scope) shows
  // everything, which only a gateway allowed every RP may see.
  const selfScoped = inner.descriptor.transport === 'soft' && policy.scope === 'per-gateway';
  const unrestricted = allowsAnyRp(policy.allowRps) || selfScoped;
  switch (s.subCommand) {
    case CRED_MGMT_GET_CREDS_METADATA:
      return undefined;
    case CRED_MGMT_ENUMERATE_RPS_BEGIN:
    case CRED_MGMT_DELETE_CREDENTIAL:
    case CRED_MGMT_UPDATE_USER_INFORMATION:
      return unrestricted ? undefined : { reason: 'credential management beyond allowRps' };
    case CRED_MGMT_ENUMERATE_CREDENTIALS_BEGIN:
      // request-summary.ts made sure rpIdHash is there and is the 32-byte hash the authenticator will use.
      return unrestricted || rpHashAllowed(policy.allowRps, s.rpIdHash!) ? undefined : { reason: 'RP is not in allowRps' };
    case CRED_MGMT_ENUMERATE_RPS_GET_NEXT_RP:
    case CRED_MGMT_ENUMERATE_CREDENTIALS_GET_NEXT_CREDENTIAL:
      return undefined; // only for the sequence's owner: see continuations.ts
    default:
      // CTAP 2.1 PS 2021-06-15 §6.8: an unknown subCommand is CTAP2_ERR_INVALID_SUBCOMMAND; answered here, so that no authenticator
      // (whose firmware might keep or drop its state on it) ever sees one (finding 8).
      return { reason: `unknown credential management subcommand ${s.subCommand}`, status: CTAP2_ERR_INVALID_SUBCOMMAND };
  }
}

function needsConsent(s: RequestSummary, payload: Uint8Array): boolean {
  if (s.kind === 'msg') return s.command === U2F_REGISTER || (s.command === U2F_AUTHENTICATE && payload[APDU_P1] !== U2F_AUTH_CHECK_ONLY);
  return s.command === CTAP2_MAKE_CREDENTIAL || s.command === CTAP2_GET_ASSERTION;
}

function consentRequest(s: RequestSummary, origin: RequestOrigin): PresenceRequest {
  const action =
    s.command === CTAP2_MAKE_CREDENTIAL && s.kind === 'cbor'
      ? 'makeCredential'
      : s.kind === 'msg'
        ? s.command === U2F_REGISTER
          ? 'u2fRegister'
          : 'u2fAuthenticate'
        : 'getAssertion';
  return { action, rpId: s.rpId, userName: s.userName, origin };
}

function refuse(kind: RequestKind): Uint8Array {
  return kind === 'cbor' ? Uint8Array.of(CTAP2_ERR_OPERATION_DENIED) : withStatusWord(SW_WRONG_DATA);
}

function statusOf(kind: RequestKind, answer: Uint8Array): string | undefined {
  if (kind === 'cbor') return answer.length ? `0x${answer[0]!.toString(16).padStart(2, '0')}` : undefined;
  const sw = statusWordOf(answer);
  return sw === undefined ? undefined : `0x${sw.toString(16).padStart(4, '0')}`;
}

function decisionOf(kind: RequestKind, answer: Uint8Array): Decision {
  if (kind !== 'cbor') return 'allowed';
  switch (answer[0]) {
    case CTAP2_ERR_OPERATION_DENIED:
      return 'denied-by-user';
    case CTAP2_ERR_USER_ACTION_TIMEOUT:
      return 'timed-out';
    case CTAP2_ERR_KEEPALIVE_CANCEL:
      return 'cancelled';
    default:
      return 'allowed';
  }
}
