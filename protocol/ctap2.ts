/**
 * CTAP2 command numbers and status codes (CTAP 2.1 §6 "Authenticator API" and §8.2 "Status codes"), shared by
 * every side: the soft authenticator answers with them, the gateway synthesises a few (CANCEL), the agent's
 * policy layer refuses with them.
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

// CTAP1/U2F (FIDO U2F Raw Message Formats §3.3): status words carried by CTAPHID_MSG responses.
export const SW_NO_ERROR = 0x9000;
export const SW_CONDITIONS_NOT_SATISFIED = 0x6985;
export const SW_WRONG_DATA = 0x6a80;
export const SW_WRONG_LENGTH = 0x6700;
export const SW_CLA_NOT_SUPPORTED = 0x6e00;
export const SW_INS_NOT_SUPPORTED = 0x6d00;

/** A CTAP2 response consisting of a status byte only. */
export function ctap2Status(status: number): Uint8Array {
  return Uint8Array.of(status);
}

// §6.5.5: authenticatorClientPIN subCommand values.
export const CLIENT_PIN_GET_PIN_RETRIES = 0x01;
export const CLIENT_PIN_GET_KEY_AGREEMENT = 0x02;
export const CLIENT_PIN_SET_PIN = 0x03;
export const CLIENT_PIN_CHANGE_PIN = 0x04;
export const CLIENT_PIN_GET_PIN_TOKEN = 0x05;
export const CLIENT_PIN_GET_PIN_UV_AUTH_TOKEN_USING_UV_WITH_PERMISSIONS = 0x06;
export const CLIENT_PIN_GET_UV_RETRIES = 0x07;
export const CLIENT_PIN_GET_PIN_UV_AUTH_TOKEN_USING_PIN_WITH_PERMISSIONS = 0x09;

// §6.5.5.7: pinUvAuthToken permissions bits.
export const PERMISSION_MC = 0x01;
export const PERMISSION_GA = 0x02;
export const PERMISSION_CM = 0x04;
export const PERMISSION_BE = 0x08;
export const PERMISSION_LBW = 0x10;
export const PERMISSION_ACFG = 0x20;

// §6.8: authenticatorCredentialManagement subCommand values.
export const CRED_MGMT_GET_CREDS_METADATA = 0x01;
export const CRED_MGMT_ENUMERATE_RPS_BEGIN = 0x02;
export const CRED_MGMT_ENUMERATE_RPS_GET_NEXT_RP = 0x03;
export const CRED_MGMT_ENUMERATE_CREDENTIALS_BEGIN = 0x04;
export const CRED_MGMT_ENUMERATE_CREDENTIALS_GET_NEXT_CREDENTIAL = 0x05;
export const CRED_MGMT_DELETE_CREDENTIAL = 0x06;
export const CRED_MGMT_UPDATE_USER_INFORMATION = 0x07;

// Response members that announce a continuation: §6.2 authenticatorGetAssertion response numberOfCredentials
// (then authenticatorGetNextAssertion, §6.3); §6.8.3 totalRPs (then enumerateRPsGetNextRP); §6.8.4
// totalCredentials (then enumerateCredentialsGetNextCredential).
export const GET_ASSERTION_RESP_NUMBER_OF_CREDENTIALS = 0x05;
export const CRED_MGMT_RESP_TOTAL_RPS = 0x05;
export const CRED_MGMT_RESP_TOTAL_CREDENTIALS = 0x09;

// FIDO U2F Raw Message Formats §4-6: instruction bytes of CTAP1 APDUs carried by CTAPHID_MSG.
export const U2F_REGISTER = 0x01;
export const U2F_AUTHENTICATE = 0x02;
export const U2F_VERSION = 0x03;
// U2F_AUTHENTICATE control byte (P1) values (FIDO U2F Raw Message Formats §5.1).
export const U2F_AUTH_CHECK_ONLY = 0x07;
export const U2F_AUTH_ENFORCE_USER_PRESENCE = 0x03;
export const U2F_AUTH_DONT_ENFORCE_USER_PRESENCE = 0x08;
