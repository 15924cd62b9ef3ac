/**
 * Ports of the soft authenticator: everything it needs from the outside world, so every rule is testable
 * without sleeping, a terminal or a disk (the idea of OpenSK's `api/` traits).
 */
import type { RequestOrigin } from '../../../protocol/authenticator.ts';
import type { Clock as ClockPort } from '../../../protocol/clock.ts';

/** Wall clock in milliseconds (Date.now semantics): the read side of the one time port, protocol/clock.ts. */
export type Clock = Pick<ClockPort, 'now'>;

/** Cryptographically secure random bytes. Tests may inject a deterministic source. */
export interface Random {
  bytes(length: number): Uint8Array;
}

/**
 * Persistence of the authenticator's whole state as one opaque blob (the authenticator serialises it; the
 * store encrypts it and writes it atomically). `save` resolves only once the bytes are durable, so the
 * authenticator awaits it before answering any command that changed state. `load` answers null for a store
 * that was never written; a wrong passphrase or a corrupted file rejects with a clear error, never null.
 */
export interface StateStore {
  load(): Promise<Uint8Array | null>;
  save(state: Uint8Array): Promise<void>;
}

/** What a user is asked to approve. Never carries secrets. */
export interface PresenceRequest {
  readonly action:
    | 'makeCredential'
    | 'getAssertion'
    | 'u2fRegister'
    | 'u2fAuthenticate'
    | 'reset'
    | 'selection'
    | 'credentialManagement'
    // authenticatorClientPIN setPIN / changePIN from a VM (the agent's PIN guard asks; agent/policy/pin-guard.ts).
    | 'setPin'
    | 'changePin';
  readonly rpId?: string;
  readonly userName?: string;
  readonly origin?: RequestOrigin;
}

/**
 * User presence. Resolves true when the user approved, false when they denied or the prompt timed out.
 * Rejects (or resolves false) promptly when `signal` aborts. While it is pending the caller reports
 * KEEPALIVE UPNEEDED.
 */
export interface Presence {
  confirm(request: PresenceRequest, signal: AbortSignal): Promise<boolean>;
  /**
   * Optional richer form of {@link confirm} that tells a denial from a prompt timeout, so the authenticator can
   * answer the distinct status codes the spec names (CTAP 2.1 §6.6 reset, §6.9 selection:
   * CTAP2_ERR_OPERATION_DENIED vs CTAP2_ERR_USER_ACTION_TIMEOUT). When present it is used instead of confirm().
   */
  confirmWithOutcome?(request: PresenceRequest, signal: AbortSignal): Promise<PresenceOutcome>;
}

/** Result of {@link Presence.confirmWithOutcome}. */
export type PresenceOutcome = 'approved' | 'denied' | 'timeout';
