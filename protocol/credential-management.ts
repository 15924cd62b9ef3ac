/**
 * authenticatorCredentialManagement (CTAP 2.1 PS 2021-06-15 §6.8; also the 0x41 prototype command): its
 * subCommand values, request parameters, subCommandParams members and response members. One definition for the
 * soft authenticator (which answers it) and the agent's policy (which judges which subcommand a VM may send, reads
 * the rpIDHash it concerns, and follows enumerations by their totalRPs / totalCredentials), as python-fido2's
 * CredentialManagement (fido2/ctap2/credman.py) owns CMD, PARAM and RESULT.
 */

// §6.8 subCommand values.
export const CRED_MGMT_GET_CREDS_METADATA = 0x01;
export const CRED_MGMT_ENUMERATE_RPS_BEGIN = 0x02;
export const CRED_MGMT_ENUMERATE_RPS_GET_NEXT_RP = 0x03;
export const CRED_MGMT_ENUMERATE_CREDENTIALS_BEGIN = 0x04;
export const CRED_MGMT_ENUMERATE_CREDENTIALS_GET_NEXT_CREDENTIAL = 0x05;
export const CRED_MGMT_DELETE_CREDENTIAL = 0x06;
export const CRED_MGMT_UPDATE_USER_INFORMATION = 0x07;

// §6.8 request parameters (integer keys of the parameter map).
export const CRED_MGMT_PARAM_SUBCOMMAND = 0x01;
export const CRED_MGMT_PARAM_SUBCOMMAND_PARAMS = 0x02;
export const CRED_MGMT_PARAM_PIN_UV_AUTH_PROTOCOL = 0x03;
export const CRED_MGMT_PARAM_PIN_UV_AUTH_PARAM = 0x04;

// §6.8 subCommandParams members.
/** rpIDHash: SHA-256 of the RP ID (enumerateCredentialsBegin, §6.8.4); RP_ID_HASH_LENGTH bytes. */
export const CRED_MGMT_SUBPARAM_RP_ID_HASH = 0x01;
export const CRED_MGMT_SUBPARAM_CREDENTIAL_ID = 0x02;
export const CRED_MGMT_SUBPARAM_USER = 0x03;

// §6.8 response members. totalRPs (§6.8.3) and totalCredentials (§6.8.4) announce a continuation:
// enumerateRPsGetNextRP / enumerateCredentialsGetNextCredential.
export const CRED_MGMT_RESP_EXISTING_RESIDENT_CREDENTIALS_COUNT = 0x01;
export const CRED_MGMT_RESP_MAX_POSSIBLE_REMAINING_RESIDENT_CREDENTIALS_COUNT = 0x02;
export const CRED_MGMT_RESP_RP = 0x03;
export const CRED_MGMT_RESP_RP_ID_HASH = 0x04;
export const CRED_MGMT_RESP_TOTAL_RPS = 0x05;
export const CRED_MGMT_RESP_USER = 0x06;
export const CRED_MGMT_RESP_CREDENTIAL_ID = 0x07;
export const CRED_MGMT_RESP_PUBLIC_KEY = 0x08;
export const CRED_MGMT_RESP_TOTAL_CREDENTIALS = 0x09;
export const CRED_MGMT_RESP_CRED_PROTECT = 0x0a;
