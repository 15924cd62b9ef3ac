/**
 * CTAP1/U2F over CTAPHID_MSG (CTAP 2.1 PS 2021-06-15 §11.2.9.1.1; FIDO U2F Raw Message Formats v1.2): instruction
 * bytes, control bytes, status words, the fixed-size fields of the request data, and the one ISO 7816-4 command
 * APDU parser. The soft authenticator (which answers U2F) and the agent's policy (which reads the application
 * parameter of a VM's request before any authenticator sees it) parse with the same function, so the two can
 * never read different data out of one APDU.
 */

// U2F Raw Message Formats §4.1, §5.1, §6.1: instruction (INS) bytes.
export const U2F_REGISTER = 0x01;
export const U2F_AUTHENTICATE = 0x02;
export const U2F_VERSION = 0x03;

// U2F Raw Message Formats §5.1: U2F_AUTHENTICATE control byte (P1) values.
export const U2F_AUTH_ENFORCE_USER_PRESENCE = 0x03;
export const U2F_AUTH_CHECK_ONLY = 0x07;
export const U2F_AUTH_DONT_ENFORCE_USER_PRESENCE = 0x08;

// U2F Raw Message Formats §3.3: status words (ISO 7816-4 SW1 SW2) ending every response.
export const SW_NO_ERROR = 0x9000;
export const SW_CONDITIONS_NOT_SATISFIED = 0x6985;
export const SW_WRONG_DATA = 0x6a80;
export const SW_WRONG_LENGTH = 0x6700;
export const SW_CLA_NOT_SUPPORTED = 0x6e00;
export const SW_INS_NOT_SUPPORTED = 0x6d00;
/** ISO 7816-4 §5.1.3 "no precise diagnosis": an unexpected failure while answering. */
export const SW_NO_PRECISE_DIAGNOSIS = 0x6f00;

/** §4.1 / §5.1: the challenge parameter (SHA-256 of the client data), first in the request data. */
export const U2F_CHALLENGE_LENGTH = 32;
/** §4.1 / §5.1: the application parameter (SHA-256 of the application identity, = a CTAP2 rpIdHash), second. */
export const U2F_APPLICATION_LENGTH = 32;
/** §4.3: the registration response's first byte, "reserved for legacy reasons". */
export const U2F_REGISTER_ID = 0x05;
/** §5.4: bit 0 of the authentication response's user presence byte: presence was verified. */
export const U2F_USER_PRESENT = 0x01;
/** §6.1: the U2F_VERSION answer, and the CTAP1 entry of authenticatorGetInfo's versions (CTAP 2.1 §6.4). */
export const U2F_VERSION_STRING = 'U2F_V2';

/** A command APDU's header bytes and its command data. */
export interface Apdu {
  readonly cla: number;
  readonly ins: number;
  readonly p1: number;
  readonly p2: number;
  readonly data: Uint8Array;
}

/**
 * ISO 7816-4 command APDU (U2F Raw Message Formats §3.1): CLA INS P1 P2 [Lc data] [Le], short (Lc and Le one
 * byte each) or extended length (00 Lc1 Lc2 data [Le1 Le2], or 00 Le1 Le2 without data). Returns null when the
 * length fields do not account for exactly the bytes given (→ SW_WRONG_LENGTH): every byte is either a header byte,
 * a length byte or data that Lc declared, so no reader of the APDU can find anything else in it. `data` is a view
 * into `a`.
 */
export function parseApdu(a: Uint8Array): Apdu | null {
  if (a.length < 4) return null;
  const head = { cla: a[0]!, ins: a[1]!, p1: a[2]!, p2: a[3]! };
  const empty = new Uint8Array(0);
  if (a.length === 4) return { ...head, data: empty }; // case 1
  if (a.length === 5) return { ...head, data: empty }; // case 2S (Le only)
  if (a[4] !== 0) {
    // Short Lc, then Lc data bytes and an optional short Le.
    const lc = a[4]!;
    if (a.length === 5 + lc || a.length === 6 + lc) return { ...head, data: a.subarray(5, 5 + lc) };
    return null;
  }
  // Extended: 00 then 2-byte Lc (or 2-byte Le when nothing follows).
  if (a.length === 7) return { ...head, data: empty }; // case 2E (or Lc = 0 with no Le)
  if (a.length < 7) return null;
  const lc = (a[5]! << 8) | a[6]!;
  // U2F Raw Message Formats §3.1.3 encode "no data" as Lc = 0000 followed by Le (python-fido2, libfido2 do).
  if (a.length === 7 + lc || a.length === 9 + lc) return { ...head, data: a.subarray(7, 7 + lc) };
  return null;
}

/** A response APDU: `data` (if any) followed by the status word SW1 SW2. */
export function withStatusWord(sw: number, data?: Uint8Array): Uint8Array {
  const n = data?.length ?? 0;
  const out = new Uint8Array(n + 2);
  if (data) out.set(data, 0);
  out[n] = sw >> 8;
  out[n + 1] = sw & 0xff;
  return out;
}

/** The status word ending a response APDU, or undefined when it is shorter than SW1 SW2. */
export function statusWordOf(response: Uint8Array): number | undefined {
  const n = response.length;
  return n < 2 ? undefined : (response[n - 2]! << 8) | response[n - 1]!;
}
