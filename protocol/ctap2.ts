/**
 * The CTAP2 authenticator API core (CTAP 2.1 PS 2021-06-15): command bytes (§6), status codes (§8.2), and the
 * members of the three commands every authenticator implements: authenticatorMakeCredential (§6.1),
 * authenticatorGetAssertion (§6.2) and authenticatorGetInfo (§6.4). Shared by every side: the soft authenticator
 * answers with them, the gateway synthesises a few (CANCEL), the agent's policy layer reads requests and refuses
 * with them. Each feature with numbers of its own has its module, as python-fido2 gives each feature class its
 * numbers (fido2/ctap2/base.py, pin.py, credman.py): client-pin.ts (§6.5), credential-management.ts (§6.8),
 * u2f.ts (CTAP1/U2F and its APDUs), auth-data.ts (WebAuthn authenticator data).
 */

// §6: authenticator API command bytes (first byte of a CTAPHID_CBOR payload).
export const CTAP2_MAKE_CREDENTIAL = 0x01;
export const CTAP2_GET_ASSERTION = 0x02;
export const CTAP2_GET_INFO = 0x04;
export const CTAP2_CLIENT_PIN = 0x06;
export const CTAP2_RESET = 0x07;
export const CTAP2_GET_NEXT_ASSERTION = 0x08;
export const CTAP2_BIO_ENROLLMENT = 0x09;
export const CTAP2_CREDENTIAL_MANAGEMENT = 0x0a;
export const CTAP2_SELECTION = 0x0b;
export const CTAP2_LARGE_BLOBS = 0x0c;
export const CTAP2_CONFIG = 0x0d;
export const CTAP2_BIO_ENROLLMENT_PRE = 0x40;
export const CTAP2_CREDENTIAL_MANAGEMENT_PRE = 0x41;

// §8.2: status codes (first byte of every CTAP2 response).
export const CTAP2_OK = 0x00;
export const CTAP1_ERR_INVALID_COMMAND = 0x01;
export const CTAP1_ERR_INVALID_PARAMETER = 0x02;
export const CTAP1_ERR_INVALID_LENGTH = 0x03;
export const CTAP1_ERR_INVALID_SEQ = 0x04;
export const CTAP1_ERR_TIMEOUT = 0x05;
export const CTAP1_ERR_CHANNEL_BUSY = 0x06;
export const CTAP1_ERR_LOCK_REQUIRED = 0x0a;
export const CTAP1_ERR_INVALID_CHANNEL = 0x0b;
export const CTAP2_ERR_CBOR_UNEXPECTED_TYPE = 0x11;
export const CTAP2_ERR_INVALID_CBOR = 0x12;
export const CTAP2_ERR_MISSING_PARAMETER = 0x14;
export const CTAP2_ERR_LIMIT_EXCEEDED = 0x15;
export const CTAP2_ERR_FP_DATABASE_FULL = 0x17;
export const CTAP2_ERR_LARGE_BLOB_STORAGE_FULL = 0x18;
export const CTAP2_ERR_CREDENTIAL_EXCLUDED = 0x19;
export const CTAP2_ERR_PROCESSING = 0x21;
export const CTAP2_ERR_INVALID_CREDENTIAL = 0x22;
export const CTAP2_ERR_USER_ACTION_PENDING = 0x23;
export const CTAP2_ERR_OPERATION_PENDING = 0x24;
export const CTAP2_ERR_NO_OPERATIONS = 0x25;
export const CTAP2_ERR_UNSUPPORTED_ALGORITHM = 0x26;
export const CTAP2_ERR_OPERATION_DENIED = 0x27;
export const CTAP2_ERR_KEY_STORE_FULL = 0x28;
export const CTAP2_ERR_UNSUPPORTED_OPTION = 0x2b;
export const CTAP2_ERR_INVALID_OPTION = 0x2c;
export const CTAP2_ERR_KEEPALIVE_CANCEL = 0x2d;
export const CTAP2_ERR_NO_CREDENTIALS = 0x2e;
export const CTAP2_ERR_USER_ACTION_TIMEOUT = 0x2f;
export const CTAP2_ERR_NOT_ALLOWED = 0x30;
export const CTAP2_ERR_PIN_INVALID = 0x31;
export const CTAP2_ERR_PIN_BLOCKED = 0x32;
export const CTAP2_ERR_PIN_AUTH_INVALID = 0x33;
export const CTAP2_ERR_PIN_AUTH_BLOCKED = 0x34;
export const CTAP2_ERR_PIN_NOT_SET = 0x35;
export const CTAP2_ERR_PUAT_REQUIRED = 0x36;
export const CTAP2_ERR_PIN_POLICY_VIOLATION = 0x37;
export const CTAP2_ERR_REQUEST_TOO_LARGE = 0x39;
export const CTAP2_ERR_ACTION_TIMEOUT = 0x3a;
export const CTAP2_ERR_UP_REQUIRED = 0x3b;
export const CTAP2_ERR_UV_BLOCKED = 0x3c;
export const CTAP2_ERR_INTEGRITY_FAILURE = 0x3d;
export const CTAP2_ERR_INVALID_SUBCOMMAND = 0x3e;
export const CTAP2_ERR_UV_INVALID = 0x3f;
export const CTAP2_ERR_UNAUTHORIZED_PERMISSION = 0x40;
export const CTAP1_ERR_OTHER = 0x7f;

/** A CTAP2 response consisting of a status byte only. */
export function ctap2Status(status: number): Uint8Array {
  return Uint8Array.of(status);
}

// §6.1 authenticatorMakeCredential request parameters (integer keys of the parameter map).
export const MAKE_CREDENTIAL_PARAM_CLIENT_DATA_HASH = 0x01;
export const MAKE_CREDENTIAL_PARAM_RP = 0x02;
export const MAKE_CREDENTIAL_PARAM_USER = 0x03;
export const MAKE_CREDENTIAL_PARAM_PUB_KEY_CRED_PARAMS = 0x04;
export const MAKE_CREDENTIAL_PARAM_EXCLUDE_LIST = 0x05;
export const MAKE_CREDENTIAL_PARAM_EXTENSIONS = 0x06;
export const MAKE_CREDENTIAL_PARAM_OPTIONS = 0x07;
export const MAKE_CREDENTIAL_PARAM_PIN_UV_AUTH_PARAM = 0x08;
export const MAKE_CREDENTIAL_PARAM_PIN_UV_AUTH_PROTOCOL = 0x09;
export const MAKE_CREDENTIAL_PARAM_ENTERPRISE_ATTESTATION = 0x0a;
/** Not in CTAP 2.1 PS 2021-06-15: attestationFormatsPreference, added by CTAP 2.2 §6.1. */
export const MAKE_CREDENTIAL_PARAM_ATTESTATION_FORMATS_PREFERENCE = 0x0b;
// §6.1 authenticatorMakeCredential response members.
export const MAKE_CREDENTIAL_RESP_FMT = 0x01;
export const MAKE_CREDENTIAL_RESP_AUTH_DATA = 0x02;
export const MAKE_CREDENTIAL_RESP_ATT_STMT = 0x03;

// §6.2 authenticatorGetAssertion request parameters.
export const GET_ASSERTION_PARAM_RP_ID = 0x01;
export const GET_ASSERTION_PARAM_CLIENT_DATA_HASH = 0x02;
export const GET_ASSERTION_PARAM_ALLOW_LIST = 0x03;
export const GET_ASSERTION_PARAM_EXTENSIONS = 0x04;
export const GET_ASSERTION_PARAM_OPTIONS = 0x05;
export const GET_ASSERTION_PARAM_PIN_UV_AUTH_PARAM = 0x06;
export const GET_ASSERTION_PARAM_PIN_UV_AUTH_PROTOCOL = 0x07;
// §6.2 authenticatorGetAssertion (and §6.3 authenticatorGetNextAssertion) response members. numberOfCredentials
// announces a continuation: authenticatorGetNextAssertion (§6.3).
export const GET_ASSERTION_RESP_CREDENTIAL = 0x01;
export const GET_ASSERTION_RESP_AUTH_DATA = 0x02;
export const GET_ASSERTION_RESP_SIGNATURE = 0x03;
export const GET_ASSERTION_RESP_USER = 0x04;
export const GET_ASSERTION_RESP_NUMBER_OF_CREDENTIALS = 0x05;

// §6.4 authenticatorGetInfo response members.
export const GET_INFO_RESP_VERSIONS = 0x01;
export const GET_INFO_RESP_EXTENSIONS = 0x02;
export const GET_INFO_RESP_AAGUID = 0x03;
export const GET_INFO_RESP_OPTIONS = 0x04;
export const GET_INFO_RESP_MAX_MSG_SIZE = 0x05;
export const GET_INFO_RESP_PIN_UV_AUTH_PROTOCOLS = 0x06;
export const GET_INFO_RESP_MAX_CREDENTIAL_COUNT_IN_LIST = 0x07;
export const GET_INFO_RESP_MAX_CREDENTIAL_ID_LENGTH = 0x08;
export const GET_INFO_RESP_TRANSPORTS = 0x09;
export const GET_INFO_RESP_ALGORITHMS = 0x0a;
export const GET_INFO_RESP_FORCE_PIN_CHANGE = 0x0c;
export const GET_INFO_RESP_MIN_PIN_LENGTH = 0x0d;
export const GET_INFO_RESP_FIRMWARE_VERSION = 0x0e;
export const GET_INFO_RESP_MAX_CRED_BLOB_LENGTH = 0x0f;
export const GET_INFO_RESP_REMAINING_DISCOVERABLE_CREDENTIALS = 0x14;
// §6.4 versions: the protocol versions an authenticator announces (CTAP1/U2F's is U2F_VERSION_STRING in u2f.ts).
export const VERSION_FIDO_2_0 = 'FIDO_2_0';
export const VERSION_FIDO_2_1 = 'FIDO_2_1';
