/**
 * The errors the test client throws: DOMExceptions with the names a browser's navigator.credentials gives
 * (WebAuthn L3 §5.1.3 / §5.1.4 and the authenticator operations §6.3.2 / §6.3.3), so a test can assert what a
 * user's browser would report. `ctapStatus` carries the authenticator's CTAP2 status byte when there was one.
 */
import {
  CTAP2_ERR_CREDENTIAL_EXCLUDED,
  CTAP2_ERR_KEY_STORE_FULL,
  CTAP2_ERR_UNSUPPORTED_ALGORITHM,
  CTAP2_ERR_UNSUPPORTED_OPTION,
} from '../protocol/ctap2.ts';

export type WebAuthnErrorName =
  | 'NotAllowedError'
  | 'InvalidStateError'
  | 'SecurityError'
  | 'NotSupportedError'
  | 'ConstraintError'
  | 'TypeError'
  | 'UnknownError';

export class WebAuthnError extends DOMException {
  constructor(
    message: string,
    name: WebAuthnErrorName,
    /** The CTAP2 status byte the authenticator answered, when the error came from it. */
    readonly ctapStatus?: number,
  ) {
    super(message, name);
  }
}

/**
 * A CTAP2 error status as a browser reports it. CREDENTIAL_EXCLUDED is InvalidStateError (§6.3.2 step 3);
 * an unsupported algorithm NotSupportedError (§6.3.2 step 2); a full store or an unsupported option
 * ConstraintError; everything else (denied presence, no credentials, wrong PIN, timeouts) NotAllowedError, which
 * browsers use so an RP cannot tell those cases apart (§5.1.4.1).
 */
export function ctapStatusError(status: number, command: string): WebAuthnError {
  const hex = `0x${status.toString(16).padStart(2, '0')}`;
  const message = `${command}: authenticator answered CTAP2 status ${hex}`;
  switch (status) {
    case CTAP2_ERR_CREDENTIAL_EXCLUDED:
      return new WebAuthnError(`${message} (CTAP2_ERR_CREDENTIAL_EXCLUDED)`, 'InvalidStateError', status);
    case CTAP2_ERR_UNSUPPORTED_ALGORITHM:
      return new WebAuthnError(`${message} (CTAP2_ERR_UNSUPPORTED_ALGORITHM)`, 'NotSupportedError', status);
    case CTAP2_ERR_KEY_STORE_FULL:
    case CTAP2_ERR_UNSUPPORTED_OPTION:
      return new WebAuthnError(message, 'ConstraintError', status);
    default:
      return new WebAuthnError(message, 'NotAllowedError', status);
  }
}
