/**
 * The per-gateway policy layer: an Authenticator that wraps another one for one gateway, on the agent, where the
 * untrusted VM cannot change it. In order, for every request:
 *   1. refuse (CTAP2_ERR_OPERATION_DENIED, or SW_WRONG_DATA for U2F) what the gateway may not do, before the
 *      authenticator sees a byte: an RP outside `allowRps`, a request whose RP cannot be parsed, commands that
 *      would touch every tenant (reset, config, large blobs, bio enrollment, vendor commands), credential
 *      management that would reach beyond the gateway's RPs, and the continuation of another gateway's
 *      stateful sequence (getNextAssertion, credential-management GetNext*);
 *   2. with `approve: agent` on a hardware key, ask the user on the agent, naming the gateway, RP and user;
 *      for clientPIN, the PIN guard (pin-guard.ts) confirms setPIN/changePIN and limits wrong PINs per gateway;
 *   3. pass the request on with the gateway as origin and, with `scope: per-gateway`, the gateway's fingerprint
 *      as credential scope (the soft authenticator then shows this gateway only its own credentials);
 *   4. write one audit line.
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
  CTAP2_ERR_KEEPALIVE_CANCEL,
  CTAP2_ERR_OPERATION_DENIED,
  CTAP2_ERR_USER_ACTION_TIMEOUT,
  CTAP2_GET_ASSERTION,
  CTAP2_GET_INFO,
  CTAP2_GET_NEXT_ASSERTION,
  CTAP2_MAKE_CREDENTIAL,
  CTAP2_SELECTION,
  SW_WRONG_DATA,
} from '../../protocol/ctap2.ts';
import type { Presence, PresenceRequest } from '../authenticators/soft/ports.ts';
import type { AuditSink, Decision } from './audit.ts';
import type { GatewayPolicy } from './config.ts';
import type { PinGuard } from './pin-guard.ts';
import {
  CM_DELETE_CREDENTIAL,
  CM_ENUMERATE_CREDENTIALS_BEGIN,
  CM_ENUMERATE_CREDENTIALS_GET_NEXT,
  CM_ENUMERATE_RPS_BEGIN,
  CM_ENUMERATE_RPS_GET_NEXT,
  CM_GET_CREDS_METADATA,
  CM_UPDATE_USER_INFORMATION,
  U2F_AUTHENTICATE,
  U2F_REGISTER,
  U2F_VERSION,
  summarizeRequest,
  type RequestSummary,
} from './request-summary.ts';
import { allowsAnyRp, rpAllowed, rpHashAllowed } from './rp-match.ts';

/** U2F_AUTHENTICATE control byte "check-only" (FIDO U2F Raw Message Formats §5.1): no presence, no signature. */
const U2F_CHECK_ONLY = 0x07;

/**
 * State shared by the views of all gateways: which gateway last reached each authenticator, so one VM cannot
 * continue (getNextAssertion, enumerate GetNext*) a sequence another VM began on a shared key.
 */
export class PolicyState {
  private readonly lastGateway = new Map<string, string>();
  lastGatewayOf(authenticatorId: string): string | undefined {
    return this.lastGateway.get(authenticatorId);
  }
  reached(authenticatorId: string, fingerprint: string): void {
    this.lastGateway.set(authenticatorId, fingerprint);
  }
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
  const origin: RequestOrigin = {
    gatewayFingerprint: policy.fingerprint,
    gatewayName: policy.name,
    credentialScope: policy.scope === 'per-gateway' ? policy.fingerprint : undefined,
  };
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
      const answer = kind === 'cbor' ? Uint8Array.of(summary.malformed) : statusWord(summary.malformed);
      audit('refused-by-policy', statusOf(kind, answer), 'malformed request');
      return answer;
    }
    const refusal = refusalReason(summary, policy, inner, deps.state.lastGatewayOf(id));
    if (refusal) {
      const answer = refuse(kind);
      audit('refused-by-policy', statusOf(kind, answer), refusal);
      return answer;
    }

    if (policy.approve === 'agent' && inner.descriptor.transport !== 'soft' && needsConsent(summary, payload)) {
      const consent = consentRequest(summary, origin);
      ctx.onStatus(STATUS_UPNEEDED);
      let approved: boolean;
      try {
        approved = await deps.presence.confirm(consent, ctx.signal);
      } catch {
        approved = false;
      }
      if (ctx.signal.aborted) {
        audit('cancelled', undefined);
        return Uint8Array.of(CTAP2_ERR_KEEPALIVE_CANCEL);
      }
      if (!approved) {
        const answer = refuse(kind);
        audit('denied-by-user', statusOf(kind, answer));
        return answer;
      }
    }

    // ── PIN guard hook (issue 11 finding 3; the logic is in pin-guard.ts) ──────────────────────────────────
    // A pass holds the gateway's PIN slot on this authenticator: it is settled exactly once, below, with the
    // authenticator's answer (or undefined when it threw).
    const pinOrigin = { ...origin, gatewayFingerprint: policy.fingerprint, gatewayName: policy.name };
    const pin = await deps.pinGuard?.admit(kind, payload, { origin: pinOrigin, authenticator: id }, ctx);
    if (pin?.refused) {
      audit(pin.decision, statusOf(kind, pin.answer), pin.reason);
      return pin.answer;
    }
    // ── end PIN guard hook ──────────────────────────────────────────────────────────────────────────────────

    deps.state.reached(id, policy.fingerprint);
    let answer: Uint8Array;
    try {
      answer = await inner.request(kind, payload, { signal: ctx.signal, onStatus: (s) => ctx.onStatus(s), origin });
    } catch (err) {
      pin?.settle(undefined); // PIN guard hook
      audit(ctx.signal.aborted ? 'cancelled' : 'failed', undefined, (err as Error).message);
      throw err;
    }
    pin?.settle(answer); // PIN guard hook
    audit(decisionOf(kind, answer), statusOf(kind, answer));
    return answer;
  }

  return {
    descriptor: inner.descriptor,
    request,
    ...(inner.wink ? { wink: () => inner.wink!() } : {}),
  };
}

/** Why the policy refuses this request, or undefined when it may go on. */
function refusalReason(
  s: RequestSummary,
  policy: GatewayPolicy,
  inner: Authenticator,
  lastGateway: string | undefined,
): string | undefined {
  if (s.rpId !== undefined && !rpAllowed(policy.allowRps, s.rpId)) return `RP ${s.rpId} is not in allowRps`;
  if (s.kind === 'msg') {
    if (s.command === U2F_VERSION) return undefined;
    if (s.command !== U2F_REGISTER && s.command !== U2F_AUTHENTICATE) return `U2F instruction ${s.name} not allowed`;
    return rpHashAllowed(policy.allowRps, s.rpIdHash!) ? undefined : 'U2F application is not in allowRps';
  }
  const continuesOther = lastGateway !== undefined && lastGateway !== policy.fingerprint;
  switch (s.command) {
    case CTAP2_GET_INFO:
    case CTAP2_SELECTION:
    case CTAP2_CLIENT_PIN:
    case CTAP2_MAKE_CREDENTIAL:
    case CTAP2_GET_ASSERTION:
      return undefined;
    case CTAP2_GET_NEXT_ASSERTION:
      return continuesOther ? "continues another gateway's getAssertion" : undefined;
    case CTAP2_CREDENTIAL_MANAGEMENT:
    case CTAP2_CREDENTIAL_MANAGEMENT_PRE:
      return credentialManagementRefusal(s, policy, inner, continuesOther);
    default:
      // reset, authenticatorConfig, largeBlobs, bio enrollment, vendor commands: they act on every tenant's
      // credentials (or the key itself), so no VM may send them.
      return `${s.name} is not allowed through a gateway`;
  }
}

function credentialManagementRefusal(
  s: RequestSummary,
  policy: GatewayPolicy,
  inner: Authenticator,
  continuesOther: boolean,
): string | undefined {
  // The soft authenticator filters by credential scope itself; a hardware key (or shared scope) shows
  // everything, which only a gateway allowed every RP may see.
  const selfScoped = inner.descriptor.transport === 'soft' && policy.scope === 'per-gateway';
  const unrestricted = allowsAnyRp(policy.allowRps) || selfScoped;
  switch (s.subCommand) {
    case CM_GET_CREDS_METADATA:
      return undefined;
    case CM_ENUMERATE_RPS_BEGIN:
    case CM_DELETE_CREDENTIAL:
    case CM_UPDATE_USER_INFORMATION:
      return unrestricted ? undefined : 'credential management beyond allowRps';
    case CM_ENUMERATE_CREDENTIALS_BEGIN:
      if (!s.rpIdHash) return undefined; // the authenticator answers MISSING_PARAMETER
      return unrestricted || rpHashAllowed(policy.allowRps, s.rpIdHash) ? undefined : 'RP is not in allowRps';
    case CM_ENUMERATE_RPS_GET_NEXT:
    case CM_ENUMERATE_CREDENTIALS_GET_NEXT:
      return continuesOther ? "continues another gateway's enumeration" : undefined;
    default:
      return undefined; // unknown subcommands: the authenticator answers INVALID_SUBCOMMAND
  }
}

function needsConsent(s: RequestSummary, payload: Uint8Array): boolean {
  if (s.kind === 'msg') return s.command === U2F_REGISTER || (s.command === U2F_AUTHENTICATE && payload[2] !== U2F_CHECK_ONLY);
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
  return kind === 'cbor' ? Uint8Array.of(CTAP2_ERR_OPERATION_DENIED) : statusWord(SW_WRONG_DATA);
}

function statusWord(sw: number): Uint8Array {
  return Uint8Array.of(sw >> 8, sw & 0xff);
}

function statusOf(kind: RequestKind, answer: Uint8Array): string | undefined {
  if (kind === 'cbor') return answer.length ? `0x${answer[0]!.toString(16).padStart(2, '0')}` : undefined;
  if (answer.length < 2) return undefined;
  return `0x${((answer[answer.length - 2]! << 8) | answer[answer.length - 1]!).toString(16).padStart(4, '0')}`;
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
