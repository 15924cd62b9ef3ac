/**
 * Checks shared by the commands that accept a pinUvAuthParam (CTAP 2.1 PS 2021-06-15: makeCredential §6.1.2
 * steps 2 and 11, getAssertion §6.2.2 steps 2 and 6, credentialManagement §6.8): protocol selection, verification
 * against the pinUvAuthToken, permissions and the permissions RP ID.
 */
import {
  CTAP1_ERR_INVALID_PARAMETER,
  CTAP2_ERR_MISSING_PARAMETER,
  CTAP2_ERR_PIN_AUTH_INVALID,
  CTAP2_ERR_PIN_NOT_SET,
} from '../../../protocol/ctap2.ts';
import type { SoftDevice } from './device.ts';
import { fail } from './errors.ts';
import type { PinUvAuthProtocol } from './pin-protocol.ts';

/** §6.1.2 step 2: absent protocol → MISSING_PARAMETER; unsupported → CTAP1_ERR_INVALID_PARAMETER. */
export function selectProtocol(device: SoftDevice, version: number | undefined): PinUvAuthProtocol {
  if (version === undefined) fail(CTAP2_ERR_MISSING_PARAMETER, 'pinUvAuthProtocol missing');
  const p = device.protocol(version);
  if (p === undefined) fail(CTAP1_ERR_INVALID_PARAMETER, 'unsupported pinUvAuthProtocol');
  return p;
}

/**
 * §6.1.2 step 11.1 / §6.2.2 step 6.1: verify(pinUvAuthToken, message, pinUvAuthParam), then the token must hold
 * `permission`, be bound to `rpId` (or be unbound, in which case it becomes bound to it), and — for mc/ga —
 * still carry the userVerified flag. Every failure is CTAP2_ERR_PIN_AUTH_INVALID. A pinUvAuthParam sent to an
 * authenticator without a PIN cannot have come from a token of ours: CTAP2_ERR_PIN_NOT_SET.
 */
export function verifyPinUvAuthParam(
  device: SoftDevice,
  protocol: PinUvAuthProtocol,
  message: Uint8Array,
  param: Uint8Array,
  permission: number,
  rpId: string | undefined,
  requireUserVerified: boolean,
): void {
  if (device.state.pin === undefined) fail(CTAP2_ERR_PIN_NOT_SET);
  const now = device.clock.now();
  const token = device.token;
  if (!token.verify(protocol, message, param, now)) fail(CTAP2_ERR_PIN_AUTH_INVALID);
  if (!token.hasPermission(permission)) fail(CTAP2_ERR_PIN_AUTH_INVALID, 'permission missing');
  const bound = token.boundRpId();
  if (rpId !== undefined && bound !== undefined && bound !== rpId) fail(CTAP2_ERR_PIN_AUTH_INVALID, 'rpId binding');
  if (requireUserVerified && !token.getUserVerifiedFlagValue(now)) fail(CTAP2_ERR_PIN_AUTH_INVALID, 'token used');
  if (rpId !== undefined && bound === undefined) token.bindRpId(rpId);
}
