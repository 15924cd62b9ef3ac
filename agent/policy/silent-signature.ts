/**
 * Did this answer carry a signature made without a test of user presence? Read from what the authenticator
 * actually answered, so it holds for any authenticator (soft or a real key), and meant for the audit trail:
 *
 *   - CTAP2 makeCredential / getAssertion / getNextAssertion (CTAP 2.1 PS 2021-06-15 §6.1, §6.2, §6.3) answered
 *     CTAP2_OK whose authenticator data (response member authData) has the UP flag clear (WebAuthn §6.1 flags bit 0) — a getAssertion with
 *     the "up" option false (a silent probe) and every getNextAssertion of that run;
 *   - U2F_AUTHENTICATE answered SW_NO_ERROR whose user-presence byte (FIDO U2F Raw Message Formats §5.4, bit 0)
 *     is clear — a "dont-enforce-user-presence-and-sign" (0x08) answer from an authenticator that honours it.
 *
 * What the soft authenticator does (issue 11 finding 7): getAssertion with up=false signs without a prompt, as
 * CTAP 2.1 §6.2.2 step 9 allows and browsers rely on (Chromium probes allow and exclude lists with up=false,
 * OpenSSH's no-touch-required keys sign with up=false); the UP flag tells the relying party, which must refuse
 * it for a login (WebAuthn §7.2 step 16). U2F 0x08 is answered like 0x03, with a prompt, so this function
 * never finds a silent U2F signature from it. Pure; never throws.
 *
 * It lives with the policy, its one user (the audit's 'silent' decision), and reads answers only through
 * protocol/ (the same APDU parser and member numbers the soft authenticator uses), never through an
 * authenticator's internals.
 */
import { AUTH_DATA_FLAGS_OFFSET, AUTH_DATA_MIN_LENGTH, FLAG_UP } from '../../protocol/auth-data.ts';
import type { RequestKind } from '../../protocol/authenticator.ts';
import { decode, isCborMap } from '../../protocol/cbor.ts';
import {
  CTAP2_GET_ASSERTION,
  CTAP2_GET_NEXT_ASSERTION,
  CTAP2_MAKE_CREDENTIAL,
  CTAP2_OK,
  GET_ASSERTION_RESP_AUTH_DATA,
  MAKE_CREDENTIAL_RESP_AUTH_DATA,
} from '../../protocol/ctap2.ts';
import { parseApdu, statusWordOf, SW_NO_ERROR, U2F_AUTHENTICATE, U2F_USER_PRESENT } from '../../protocol/u2f.ts';

/** U2F authentication response: user presence (1) + counter (4) + signature, then SW1 SW2. */
const MIN_U2F_AUTH_RESPONSE = 1 + 4 + 2;

export function isSilentSignature(kind: RequestKind, request: Uint8Array, answer: Uint8Array): boolean {
  return kind === 'cbor' ? silentCtap2(request, answer) : silentU2f(request, answer);
}

function silentCtap2(request: Uint8Array, answer: Uint8Array): boolean {
  const command = request[0];
  if (command !== CTAP2_MAKE_CREDENTIAL && command !== CTAP2_GET_ASSERTION && command !== CTAP2_GET_NEXT_ASSERTION) return false;
  if (answer.length < 2 || answer[0] !== CTAP2_OK) return false;
  let body;
  try {
    body = decode(answer.subarray(1));
  } catch {
    return false;
  }
  if (!isCborMap(body)) return false;
  const authData = body.get(command === CTAP2_MAKE_CREDENTIAL ? MAKE_CREDENTIAL_RESP_AUTH_DATA : GET_ASSERTION_RESP_AUTH_DATA);
  if (!(authData instanceof Uint8Array) || authData.length < AUTH_DATA_MIN_LENGTH) return false;
  return (authData[AUTH_DATA_FLAGS_OFFSET] & FLAG_UP) === 0;
}

function silentU2f(request: Uint8Array, answer: Uint8Array): boolean {
  const apdu = parseApdu(request);
  if (apdu === null || apdu.cla !== 0 || apdu.ins !== U2F_AUTHENTICATE) return false;
  if (answer.length < MIN_U2F_AUTH_RESPONSE) return false;
  return statusWordOf(answer) === SW_NO_ERROR && (answer[0] & U2F_USER_PRESENT) === 0;
}
