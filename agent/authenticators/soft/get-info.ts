/**
 * authenticatorGetInfo (CTAP 2.1 §6.4): what this authenticator is and supports.
 */
import { encode, type CborValue } from '../../../protocol/cbor.ts';
import { COSE_ALG_EDDSA, COSE_ALG_ES256 } from './crypto.ts';
import { MAX_CRED_BLOB_LENGTH } from './credential-id.ts';
import type { SoftDevice } from './device.ts';
import { SUPPORTED_EXTENSIONS } from './extensions.ts';
import { MAX_CREDENTIAL_COUNT_IN_LIST, MAX_CREDENTIAL_ID_LENGTH_ADVERTISED, MAX_MSG_SIZE } from './limits.ts';

// §6.4 response members.
const R_VERSIONS = 0x01;
const R_EXTENSIONS = 0x02;
const R_AAGUID = 0x03;
const R_OPTIONS = 0x04;
const R_MAX_MSG_SIZE = 0x05;
const R_PIN_UV_AUTH_PROTOCOLS = 0x06;
const R_MAX_CREDENTIAL_COUNT_IN_LIST = 0x07;
const R_MAX_CREDENTIAL_ID_LENGTH = 0x08;
const R_TRANSPORTS = 0x09;
const R_ALGORITHMS = 0x0a;
const R_FORCE_PIN_CHANGE = 0x0c;
const R_MIN_PIN_LENGTH = 0x0d;
const R_FIRMWARE_VERSION = 0x0e;
const R_MAX_CRED_BLOB_LENGTH = 0x0f;
const R_REMAINING_DISCOVERABLE_CREDENTIALS = 0x14;

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
      [R_VERSIONS, ['U2F_V2', 'FIDO_2_0', 'FIDO_2_1']],
      [R_EXTENSIONS, [...SUPPORTED_EXTENSIONS]],
      [R_AAGUID, device.config.aaguid],
      [R_OPTIONS, options],
      [R_MAX_MSG_SIZE, MAX_MSG_SIZE],
      [R_PIN_UV_AUTH_PROTOCOLS, [2, 1]],
      [R_MAX_CREDENTIAL_COUNT_IN_LIST, MAX_CREDENTIAL_COUNT_IN_LIST],
      [R_MAX_CREDENTIAL_ID_LENGTH, MAX_CREDENTIAL_ID_LENGTH_ADVERTISED],
      [R_TRANSPORTS, ['usb']],
      [R_ALGORITHMS, [algorithm(COSE_ALG_ES256), algorithm(COSE_ALG_EDDSA)]],
      [R_FORCE_PIN_CHANGE, device.state.forcePinChange],
      [R_MIN_PIN_LENGTH, device.state.minPinLength],
      [R_FIRMWARE_VERSION, device.config.firmwareVersion],
      [R_MAX_CRED_BLOB_LENGTH, MAX_CRED_BLOB_LENGTH],
      [R_REMAINING_DISCOVERABLE_CREDENTIALS, device.remainingResidentSlots()],
    ]),
  );
}
