/**
 * authenticatorGetInfo (CTAP 2.1 PS 2021-06-15 §6.4): what this authenticator is and supports.
 */
import { encode, type CborValue } from '../../../protocol/cbor.ts';
import {
  GET_INFO_RESP_AAGUID,
  GET_INFO_RESP_ALGORITHMS,
  GET_INFO_RESP_EXTENSIONS,
  GET_INFO_RESP_FIRMWARE_VERSION,
  GET_INFO_RESP_FORCE_PIN_CHANGE,
  GET_INFO_RESP_MAX_CRED_BLOB_LENGTH,
  GET_INFO_RESP_MAX_CREDENTIAL_COUNT_IN_LIST,
  GET_INFO_RESP_MAX_CREDENTIAL_ID_LENGTH,
  GET_INFO_RESP_MAX_MSG_SIZE,
  GET_INFO_RESP_MIN_PIN_LENGTH,
  GET_INFO_RESP_OPTIONS,
  GET_INFO_RESP_PIN_UV_AUTH_PROTOCOLS,
  GET_INFO_RESP_REMAINING_DISCOVERABLE_CREDENTIALS,
  GET_INFO_RESP_TRANSPORTS,
  GET_INFO_RESP_VERSIONS,
  VERSION_FIDO_2_0,
  VERSION_FIDO_2_1,
} from '../../../protocol/ctap2.ts';
import { U2F_VERSION_STRING } from '../../../protocol/u2f.ts';
import { COSE_ALG_EDDSA, COSE_ALG_ES256 } from './crypto.ts';
import { MAX_CRED_BLOB_LENGTH } from './credential-id.ts';
import type { SoftDevice } from './device.ts';
import { SUPPORTED_EXTENSIONS } from './extensions.ts';
import { MAX_CREDENTIAL_COUNT_IN_LIST, MAX_CREDENTIAL_ID_LENGTH_ADVERTISED, MAX_MSG_SIZE } from './limits.ts';

export function getInfo(device: SoftDevice): Uint8Array {
  const options = new Map<CborValue, CborValue>([
    ['plat', false],
    ['rk', true],
    ['up', true],
    ['clientPin', device.state.pin !== undefined],
    ['credMgmt', true],
    // Platforms that predate CTAP 2.1 know only the preview name and command 0x41 (libfido2 sends 0x41 in every
    // release up to at least 1.12; python-fido2 0.9 uses it when credMgmt is absent). The oldest of them know only
    // getPinToken too, whose token lacks `cm`: 0x41 accepts such a token (credential-management.ts), so the
    // option is true for them as well.
    ['credentialMgmtPreview', true],
    ['pinUvAuthToken', true],
    ['makeCredUvNotRqd', true],
  ]);
  const algorithm = (alg: number): Map<CborValue, CborValue> =>
    new Map<CborValue, CborValue>([
      ['alg', alg],
      ['type', 'public-key'],
    ]);
  return encode(
    new Map<CborValue, CborValue>([
      [GET_INFO_RESP_VERSIONS, [U2F_VERSION_STRING, VERSION_FIDO_2_0, VERSION_FIDO_2_1]],
      [GET_INFO_RESP_EXTENSIONS, [...SUPPORTED_EXTENSIONS]],
      [GET_INFO_RESP_AAGUID, device.config.aaguid],
      [GET_INFO_RESP_OPTIONS, options],
      [GET_INFO_RESP_MAX_MSG_SIZE, MAX_MSG_SIZE],
      [GET_INFO_RESP_PIN_UV_AUTH_PROTOCOLS, [2, 1]],
      [GET_INFO_RESP_MAX_CREDENTIAL_COUNT_IN_LIST, MAX_CREDENTIAL_COUNT_IN_LIST],
      [GET_INFO_RESP_MAX_CREDENTIAL_ID_LENGTH, MAX_CREDENTIAL_ID_LENGTH_ADVERTISED],
      [GET_INFO_RESP_TRANSPORTS, ['usb']],
      [GET_INFO_RESP_ALGORITHMS, [algorithm(COSE_ALG_ES256), algorithm(COSE_ALG_EDDSA)]],
      [GET_INFO_RESP_FORCE_PIN_CHANGE, device.state.forcePinChange],
      [GET_INFO_RESP_MIN_PIN_LENGTH, device.state.minPinLength],
      [GET_INFO_RESP_FIRMWARE_VERSION, device.config.firmwareVersion],
      [GET_INFO_RESP_MAX_CRED_BLOB_LENGTH, MAX_CRED_BLOB_LENGTH],
      [GET_INFO_RESP_REMAINING_DISCOVERABLE_CREDENTIALS, device.remainingResidentSlots()],
    ]),
  );
}
