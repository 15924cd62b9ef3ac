/**
 * authenticatorClientPIN (CTAP 2.1 PS 2021-06-15 §6.5): its subCommand values, request parameters, response
 * members and pinUvAuthToken permissions. One definition for the soft authenticator (which answers clientPIN),
 * the agent's PIN guard (which reads the subCommand of a VM's request) and the policy (which reads the
 * permissions RP ID), as python-fido2's ClientPin (fido2/ctap2/pin.py) owns CMD, RESULT and PERMISSION.
 */

// §6.5.5 authenticatorClientPIN subCommand values.
export const CLIENT_PIN_GET_PIN_RETRIES = 0x01;
export const CLIENT_PIN_GET_KEY_AGREEMENT = 0x02;
export const CLIENT_PIN_SET_PIN = 0x03;
export const CLIENT_PIN_CHANGE_PIN = 0x04;
export const CLIENT_PIN_GET_PIN_TOKEN = 0x05;
export const CLIENT_PIN_GET_PIN_UV_AUTH_TOKEN_USING_UV_WITH_PERMISSIONS = 0x06;
export const CLIENT_PIN_GET_UV_RETRIES = 0x07;
export const CLIENT_PIN_GET_PIN_UV_AUTH_TOKEN_USING_PIN_WITH_PERMISSIONS = 0x09;

// §6.5.5 authenticatorClientPIN request parameters (integer keys of the parameter map).
export const CLIENT_PIN_PARAM_PIN_UV_AUTH_PROTOCOL = 0x01;
export const CLIENT_PIN_PARAM_SUBCOMMAND = 0x02;
export const CLIENT_PIN_PARAM_KEY_AGREEMENT = 0x03;
export const CLIENT_PIN_PARAM_PIN_UV_AUTH_PARAM = 0x04;
export const CLIENT_PIN_PARAM_NEW_PIN_ENC = 0x05;
export const CLIENT_PIN_PARAM_PIN_HASH_ENC = 0x06;
export const CLIENT_PIN_PARAM_PERMISSIONS = 0x09;
/** The permissions RP ID a getPinUvAuthTokenUsing*WithPermissions token is bound to (§6.5.5.7). */
export const CLIENT_PIN_PARAM_RP_ID = 0x0a;

// §6.5.5 authenticatorClientPIN response members.
export const CLIENT_PIN_RESP_KEY_AGREEMENT = 0x01;
export const CLIENT_PIN_RESP_PIN_UV_AUTH_TOKEN = 0x02;
export const CLIENT_PIN_RESP_PIN_RETRIES = 0x03;
export const CLIENT_PIN_RESP_POWER_CYCLE_STATE = 0x04;

// §6.5.5.7 pinUvAuthToken permissions (bit flags of the permissions parameter).
/** mc: authenticatorMakeCredential. */
export const PERMISSION_MC = 0x01;
/** ga: authenticatorGetAssertion. */
export const PERMISSION_GA = 0x02;
/** cm: authenticatorCredentialManagement. */
export const PERMISSION_CM = 0x04;
/** be: authenticatorBioEnrollment. */
export const PERMISSION_BE = 0x08;
/** lbw: authenticatorLargeBlobs write. */
export const PERMISSION_LBW = 0x10;
/** acfg: authenticatorConfig. */
export const PERMISSION_ACFG = 0x20;
