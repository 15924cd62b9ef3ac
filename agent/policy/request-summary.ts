/**
 * What a CTAP request asks for, as far as policy and audit care: the command, the relying party it concerns
 * and the user name it carries. Parsed on the agent from the untrusted gateway's bytes, before any
 * authenticator sees them.
 *
 * A request whose relying party cannot be determined (malformed CBOR, wrong types, missing RP) is summarised
 * with the CTAP status the spec names for it (`malformed`); the policy answers that status itself rather than
 * let an authenticator that parses more leniently act on an RP this parser never saw (a parser differential
 * would otherwise bypass the allow-list).
 *
 * For the same reason the authenticator never sees the gateway's CTAP2 bytes: `forward` is the CTAP2 canonical
 * re-encoding (CTAP 2.1 PS 2021-06-15 §8) of exactly the parameters judged here, and map keys a firmware could confuse
 * with the ones judged are refused (CTAP2_ERR_CBOR_UNEXPECTED_TYPE): the parameter map's keys must be unsigned
 * integers (§6: "parameters are encoded in a CBOR map ... with integer keys"), nested maps' keys integers or
 * printable-ASCII text (all CTAP 2.1 member names are; a byte-string key h'6964' beside "id", or "id\0", is
 * something a lenient firmware might read as "id"). A canonical request is forwarded byte for byte unchanged.
 */
import { createHash } from 'node:crypto';
import { decode, encode, isCborMap, type CborMap, type CborValue } from '../../protocol/cbor.ts';
import type { RequestKind } from '../../protocol/authenticator.ts';
import {
  CTAP1_ERR_INVALID_LENGTH,
  CTAP2_ERR_CBOR_UNEXPECTED_TYPE,
  CTAP2_ERR_INVALID_CBOR,
  CTAP2_ERR_MISSING_PARAMETER,
  CTAP2_CLIENT_PIN,
  CTAP2_CONFIG,
  CTAP2_CREDENTIAL_MANAGEMENT,
  CTAP2_CREDENTIAL_MANAGEMENT_PRE,
  CTAP2_GET_ASSERTION,
  CTAP2_GET_INFO,
  CTAP2_GET_NEXT_ASSERTION,
  CTAP2_LARGE_BLOBS,
  CTAP2_MAKE_CREDENTIAL,
  CTAP2_RESET,
  CTAP2_SELECTION,
  CTAP2_BIO_ENROLLMENT,
  CTAP2_BIO_ENROLLMENT_PRE,
  GET_ASSERTION_PARAM_RP_ID,
  MAKE_CREDENTIAL_PARAM_RP,
  MAKE_CREDENTIAL_PARAM_USER,
} from '../../protocol/ctap2.ts';
import { RP_ID_HASH_LENGTH } from '../../protocol/auth-data.ts';
import { CLIENT_PIN_PARAM_RP_ID } from '../../protocol/client-pin.ts';
import {
  CRED_MGMT_ENUMERATE_CREDENTIALS_BEGIN,
  CRED_MGMT_PARAM_SUBCOMMAND,
  CRED_MGMT_PARAM_SUBCOMMAND_PARAMS,
  CRED_MGMT_SUBPARAM_RP_ID_HASH,
} from '../../protocol/credential-management.ts';
import {
  parseApdu,
  SW_WRONG_LENGTH,
  U2F_APPLICATION_LENGTH,
  U2F_AUTHENTICATE,
  U2F_CHALLENGE_LENGTH,
  U2F_REGISTER,
  U2F_VERSION,
} from '../../protocol/u2f.ts';

const COMMAND_NAMES: Record<number, string> = {
  [CTAP2_MAKE_CREDENTIAL]: 'makeCredential',
  [CTAP2_GET_ASSERTION]: 'getAssertion',
  [CTAP2_GET_INFO]: 'getInfo',
  [CTAP2_CLIENT_PIN]: 'clientPin',
  [CTAP2_RESET]: 'reset',
  [CTAP2_GET_NEXT_ASSERTION]: 'getNextAssertion',
  [CTAP2_BIO_ENROLLMENT]: 'bioEnrollment',
  [CTAP2_CREDENTIAL_MANAGEMENT]: 'credentialManagement',
  [CTAP2_SELECTION]: 'selection',
  [CTAP2_LARGE_BLOBS]: 'largeBlobs',
  [CTAP2_CONFIG]: 'config',
  [CTAP2_BIO_ENROLLMENT_PRE]: 'bioEnrollmentPreview',
  [CTAP2_CREDENTIAL_MANAGEMENT_PRE]: 'credentialManagementPreview',
};

const U2F_NAMES: Record<number, string> = {
  [U2F_REGISTER]: 'u2fRegister',
  [U2F_AUTHENTICATE]: 'u2fAuthenticate',
  [U2F_VERSION]: 'u2fVersion',
};

export interface RequestSummary {
  readonly kind: RequestKind;
  /** CTAP2 command byte, or the U2F INS byte for kind 'msg' (-1 for an empty or unparsable APDU). */
  readonly command: number;
  /** Readable command name for logs ("makeCredential", "u2fAuthenticate", "cmd-0x42"). */
  readonly name: string;
  /** Credential management subcommand, when the command is credential management. */
  readonly subCommand?: number;
  /** The RP ID named by the request (makeCredential rp.id, getAssertion rpId, clientPin permissions rpId). */
  readonly rpId?: string;
  /** SHA-256 of the RP ID the request is bound to, when only the hash is known (U2F application parameter,
   *  credential management rpIDHash). */
  readonly rpIdHash?: Uint8Array;
  /** user.name of a makeCredential (shown in consent prompts and audit lines; not a secret). */
  readonly userName?: string;
  /**
   * When the request cannot be parsed far enough to know what it concerns: the status to answer
   * (CTAP2_ERR_INVALID_CBOR, CTAP2_ERR_MISSING_PARAMETER, CTAP2_ERR_CBOR_UNEXPECTED_TYPE, CTAP1_ERR_INVALID_LENGTH
   * for CTAP2; the status word SW_WRONG_LENGTH for U2F). Undefined for a well-formed request.
   */
  readonly malformed?: number;
  /**
   * What to forward to the authenticator when the request is allowed: for CTAP2 the command byte + the canonical
   * re-encoding of the parameters parsed here; for U2F the APDU as received. Undefined when `malformed` is set.
   */
  readonly forward?: Uint8Array;
}

export function summarizeRequest(kind: RequestKind, payload: Uint8Array): RequestSummary {
  return kind === 'msg' ? summarizeU2f(payload) : summarizeCtap2(payload);
}

function summarizeCtap2(payload: Uint8Array): RequestSummary {
  if (payload.length === 0) return { kind: 'cbor', command: -1, name: 'empty', malformed: CTAP1_ERR_INVALID_LENGTH };
  const command = payload[0]!;
  const name = COMMAND_NAMES[command] ?? `cmd-0x${command.toString(16).padStart(2, '0')}`;
  const head = { kind: 'cbor' as const, command, name };
  const malformed = (status: number): RequestSummary => ({ ...head, malformed: status });
  if (payload.length === 1) {
    const needsParams = command === CTAP2_MAKE_CREDENTIAL || command === CTAP2_GET_ASSERTION;
    return needsParams ? malformed(CTAP2_ERR_MISSING_PARAMETER) : { ...head, forward: Uint8Array.of(command) };
  }
  let params: CborValue;
  let forward: Uint8Array;
  try {
    // Lenient on canonical form when reading (clients and authenticators in the wild are), strict on everything
    // else; what is forwarded is canonical.
    params = decode(payload.subarray(1), { canonical: false });
    if (!isCborMap(params) || !keysUnambiguous(params, true)) return malformed(CTAP2_ERR_CBOR_UNEXPECTED_TYPE);
    forward = withCommand(command, encode(params));
  } catch {
    return malformed(CTAP2_ERR_INVALID_CBOR);
  }
  const base = { ...head, forward };
  switch (command) {
    case CTAP2_MAKE_CREDENTIAL: {
      // §6.1: rp (PublicKeyCredentialRpEntity), user (PublicKeyCredentialUserEntity).
      const rp = params.get(MAKE_CREDENTIAL_PARAM_RP);
      if (rp === undefined) return malformed(CTAP2_ERR_MISSING_PARAMETER);
      if (!isCborMap(rp)) return malformed(CTAP2_ERR_CBOR_UNEXPECTED_TYPE);
      const rpId = rp.get('id');
      if (rpId === undefined) return malformed(CTAP2_ERR_MISSING_PARAMETER);
      if (typeof rpId !== 'string') return malformed(CTAP2_ERR_CBOR_UNEXPECTED_TYPE);
      const user = params.get(MAKE_CREDENTIAL_PARAM_USER);
      const userName = isCborMap(user) ? text(user, 'name') : undefined;
      return { ...base, rpId, userName };
    }
    case CTAP2_GET_ASSERTION: {
      // §6.2: rpId.
      const rpId = params.get(GET_ASSERTION_PARAM_RP_ID);
      if (rpId === undefined) return malformed(CTAP2_ERR_MISSING_PARAMETER);
      return typeof rpId === 'string' ? { ...base, rpId } : malformed(CTAP2_ERR_CBOR_UNEXPECTED_TYPE);
    }
    case CTAP2_CLIENT_PIN: {
      // §6.5.5.7: getPinUvAuthTokenUsingPinWithPermissions may bind the token to the permissions rpId.
      const rpId = params.get(CLIENT_PIN_PARAM_RP_ID);
      if (rpId === undefined) return base;
      return typeof rpId === 'string' ? { ...base, rpId } : malformed(CTAP2_ERR_CBOR_UNEXPECTED_TYPE);
    }
    case CTAP2_CREDENTIAL_MANAGEMENT:
    case CTAP2_CREDENTIAL_MANAGEMENT_PRE: {
      // §6.8: subCommand, subCommandParams { rpIDHash, credentialID, user }.
      const subCommand = params.get(CRED_MGMT_PARAM_SUBCOMMAND);
      if (subCommand === undefined) return malformed(CTAP2_ERR_MISSING_PARAMETER);
      if (typeof subCommand !== 'number') return malformed(CTAP2_ERR_CBOR_UNEXPECTED_TYPE);
      if (subCommand !== CRED_MGMT_ENUMERATE_CREDENTIALS_BEGIN) return { ...base, subCommand };
      // §6.8.4: enumerateCredentialsBegin needs subCommandParams.rpIDHash, a 32-byte SHA-256. The policy judges
      // exactly the hash the authenticator will use, so anything else is refused here, not left to a firmware
      // that might read e.g. a text string as bytes.
      const sub = params.get(CRED_MGMT_PARAM_SUBCOMMAND_PARAMS);
      if (sub === undefined) return malformed(CTAP2_ERR_MISSING_PARAMETER);
      if (!isCborMap(sub)) return malformed(CTAP2_ERR_CBOR_UNEXPECTED_TYPE);
      const rpIdHash = sub.get(CRED_MGMT_SUBPARAM_RP_ID_HASH);
      if (rpIdHash === undefined) return malformed(CTAP2_ERR_MISSING_PARAMETER);
      if (!(rpIdHash instanceof Uint8Array)) return malformed(CTAP2_ERR_CBOR_UNEXPECTED_TYPE);
      if (rpIdHash.length !== RP_ID_HASH_LENGTH) return malformed(CTAP1_ERR_INVALID_LENGTH);
      return { ...base, subCommand, rpIdHash };
    }
    default:
      return base;
  }
}

/**
 * Whether every key of `map` (and of the maps nested in it) is of a kind CTAP uses and no firmware could read as
 * another: the request's parameter map has unsigned integer keys (CTAP 2.1 §6), nested maps integer or
 * printable-ASCII text keys (COSE keys and hmac-secret members are integers, entity and option members text).
 */
function keysUnambiguous(map: CborMap, top: boolean): boolean {
  for (const [key, value] of map) {
    if (typeof key === 'number') {
      if (top && key < 0) return false;
    } else if (top || typeof key !== 'string' || !PRINTABLE_ASCII.test(key)) {
      return false;
    }
    if (!valueKeysUnambiguous(value)) return false;
  }
  return true;
}

function valueKeysUnambiguous(value: CborValue): boolean {
  if (isCborMap(value)) return keysUnambiguous(value, false);
  if (Array.isArray(value)) return value.every(valueKeysUnambiguous);
  return true;
}

const PRINTABLE_ASCII = /^[\x20-\x7e]+$/;

function withCommand(command: number, params: Uint8Array): Uint8Array {
  const out = new Uint8Array(1 + params.length);
  out[0] = command;
  out.set(params, 1);
  return out;
}

/** Where the application parameter (the rpIdHash a U2F request is bound to) ends in the request data. */
const APPLICATION_END = U2F_CHALLENGE_LENGTH + U2F_APPLICATION_LENGTH;

/**
 * CTAP1 request APDU (FIDO U2F Raw Message Formats §3.1, ISO 7816-4 short or extended length), read by the same
 * parser the soft authenticator answers with (protocol/u2f.ts): register data = challenge || application;
 * authenticate data = challenge || application || L || key handle. An APDU whose length fields do not account for
 * exactly its bytes is refused here (SW_WRONG_LENGTH), so what the policy judged is all an authenticator can read.
 */
function summarizeU2f(apdu: Uint8Array): RequestSummary {
  if (apdu.length < 4) return { kind: 'msg', command: -1, name: 'u2f-malformed', malformed: SW_WRONG_LENGTH };
  const ins = apdu[1]!;
  const name = U2F_NAMES[ins] ?? `u2f-ins-0x${ins.toString(16).padStart(2, '0')}`;
  const base = { kind: 'msg' as const, command: ins, name };
  if (ins !== U2F_REGISTER && ins !== U2F_AUTHENTICATE) return { ...base, forward: apdu };
  const data = parseApdu(apdu)?.data;
  if (!data || data.length < APPLICATION_END) return { ...base, malformed: SW_WRONG_LENGTH };
  return { ...base, rpIdHash: data.slice(U2F_CHALLENGE_LENGTH, APPLICATION_END), forward: apdu };
}

function text(map: CborMap, key: string): string | undefined {
  const v = map.get(key);
  return typeof v === 'string' ? v : undefined;
}

/** SHA-256 of an RP ID or U2F app ID, the form CTAP1 and credential management carry. */
export function rpIdHash(rpId: string): Uint8Array {
  return new Uint8Array(createHash('sha256').update(rpId, 'utf8').digest());
}
