/**
 * The presence port: asking the person at the agent whether a request may go on (the soft authenticator's
 * "touch", the policy's `approve: agent` consent, the PIN guard's setPIN/changePIN confirmation).
 *
 * One method, one typed outcome, as OpenSK's `UserPresence::check_user_presence` answers
 * Ok / Declined / Timeout / Canceled: a caller can tell a "no" from a prompt nobody answered, so the status
 * the spec names for each reaches the client (outcome-status.ts maps them, in one place).
 * Implementations: always.ts, tty.ts, dialog.ts (pinentry and the OS dialogs), notify.ts (a wrapper), and
 * fake.ts for tests.
 */
import type { RequestOrigin } from '../../protocol/authenticator.ts';

/** What the requester wants done. */
export type PresenceAction =
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

/** What a user is asked to approve. Never carries secrets; every string in it came from the untrusted VM. */
export interface PresenceRequest {
  readonly action: PresenceAction;
  readonly rpId?: string;
  readonly userName?: string;
  readonly origin?: RequestOrigin;
}

/**
 * The answer:
 * - `approved`: the person said yes;
 * - `denied`: the person said no (or closed the prompt);
 * - `timeout`: nobody answered within the prompt's time;
 * - `cancelled`: the request went away first (its signal aborted: CTAPHID_CANCEL, the VM disconnected).
 */
export type PresenceOutcome = 'approved' | 'denied' | 'timeout' | 'cancelled';

export const PRESENCE_OUTCOMES: readonly PresenceOutcome[] = ['approved', 'denied', 'timeout', 'cancelled'];

/**
 * User presence. Resolves with the outcome; resolves `cancelled` promptly once `signal` aborts, and never
 * shows a prompt for a request whose signal is already aborted. While it is pending the caller reports
 * KEEPALIVE UPNEEDED. A rejection (a broken prompt program) is taken as `denied` by askPresence (ask.ts).
 */
export interface Presence {
  confirm(request: PresenceRequest, signal: AbortSignal): Promise<PresenceOutcome>;
}
