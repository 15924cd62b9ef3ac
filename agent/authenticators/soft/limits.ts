/**
 * Bounds the soft authenticator enforces and advertises (authenticatorGetInfo, CTAP 2.1 PS 2021-06-15 §6.4).
 */
import { MAX_CREDENTIAL_ID_LENGTH } from './credential-id.ts';

/** getInfo maxMsgSize (0x05): the message size platforms should stay within. */
export const MAX_MSG_SIZE = 1200;
/*
 * What we actually accept is not defined here: anything CTAPHID can carry, protocol/ctaphid.ts MAX_MESSAGE_SIZE
 * (57 + 128 × 59 = 7609 bytes, CTAP 2.1 §11.2.4), the one constant the tunnel also uses. Being lenient beyond
 * maxMsgSize keeps platforms that do not honour it (long exclude lists) working; longer requests →
 * CTAP2_ERR_REQUEST_TOO_LARGE (CBOR) or SW_WRONG_LENGTH (U2F).
 */
/** getInfo maxCredentialCountInList (0x07): longer allow/exclude lists → CTAP2_ERR_LIMIT_EXCEEDED. */
export const MAX_CREDENTIAL_COUNT_IN_LIST = 16;
/** getInfo maxCredentialIdLength (0x08): our ids are at most this long; longer ones are never ours. */
export const MAX_CREDENTIAL_ID_LENGTH_ADVERTISED = 128;
export const OUR_MAX_CREDENTIAL_ID_LENGTH = MAX_CREDENTIAL_ID_LENGTH;
/** WebAuthn §5.4.3: user handle at most 64 bytes (longer → CTAP1_ERR_INVALID_LENGTH). */
export const MAX_USER_ID_LENGTH = 64;
/** CTAP 2.1 §6.1.2 / WebAuthn §6.4.1: names may be truncated to 64 bytes for storage. */
export const MAX_STORED_STRING_BYTES = 64;
/** An RP ID is a domain name (≤ 253 octets) or, for U2F-era app IDs, a URL; cap what we read. */
export const MAX_RP_ID_BYTES = 256;
/** Discoverable credential capacity (getInfo remainingDiscoverableCredentials). */
export const DEFAULT_MAX_RESIDENT_CREDENTIALS = 256;
/** pubKeyCredParams longer than this are refused (CTAP2_ERR_LIMIT_EXCEEDED) rather than scanned. */
export const MAX_PUB_KEY_CRED_PARAMS = 32;
