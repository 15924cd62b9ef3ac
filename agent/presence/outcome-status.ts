/**
 * The one mapping from a presence outcome to what the client is answered (CTAP 2.1 PS 2021-06-15):
 *
 *   approved  → go on
 *   denied    → CTAP2_ERR_OPERATION_DENIED
 *   timeout   → CTAP2_ERR_USER_ACTION_TIMEOUT ("a user action timed out"), for every command. §6.1.2 step 14
 *               and §6.2.2 step 9 fold a timed-out presence test into OPERATION_DENIED for makeCredential and
 *               getAssertion, but hardware keys (YubiKey, SoloKey) answer USER_ACTION_TIMEOUT there, clients
 *               (libfido2, Chromium) treat it as "timed out" rather than "refused", and the person looking at
 *               the VM needs to tell "nobody answered on the laptop" from "denied"; reset (§6.6) and selection
 *               (§6.9) name USER_ACTION_TIMEOUT themselves
 *   cancelled → CTAP2_ERR_KEEPALIVE_CANCEL (the host sent CTAPHID_CANCEL, §11.2.9.1.5)
 *
 * U2F (FIDO U2F Raw Message Formats §3.1): every outcome but approved is SW_CONDITIONS_NOT_SATISFIED, "the
 * request was rejected due to test-of-user-presence being required"; the client polls again.
 */
import {
  CTAP2_ERR_KEEPALIVE_CANCEL,
  CTAP2_ERR_OPERATION_DENIED,
  CTAP2_ERR_USER_ACTION_TIMEOUT,
} from '../../protocol/ctap2.ts';
import { SW_CONDITIONS_NOT_SATISFIED } from '../../protocol/u2f.ts';
import type { PresenceAction, PresenceOutcome } from './port.ts';

/** Outcomes that stop the request. */
export type PresenceRefusal = Exclude<PresenceOutcome, 'approved'>;

/** The CTAP2 status a refused presence test answers for `action`. */
export function ctap2PresenceStatus(outcome: PresenceRefusal, _action: PresenceAction): number {
  switch (outcome) {
    case 'denied':
      return CTAP2_ERR_OPERATION_DENIED;
    case 'timeout':
      return CTAP2_ERR_USER_ACTION_TIMEOUT;
    case 'cancelled':
      return CTAP2_ERR_KEEPALIVE_CANCEL;
  }
}

/** The U2F status word a refused test of user presence answers (whatever the outcome). */
export function u2fPresenceStatus(_outcome: PresenceRefusal): number {
  return SW_CONDITIONS_NOT_SATISFIED;
}
