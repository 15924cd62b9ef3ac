/**
 * authenticatorReset (CTAP 2.1 PS 2021-06-15 §6.6): only within the reset window after power-up (for a soft
 * authenticator, "power-up" = the moment it was opened; window 10 s by default, configurable) → else
 * CTAP2_ERR_NOT_ALLOWED; then a test of user presence (a prompt nobody answered: CTAP2_ERR_USER_ACTION_TIMEOUT); then
 * every credential, the PIN and the device secrets are gone (old non-resident ids and U2F key handles stop working).
 * The public device id (and so descriptor.id) and the U2F batch attestation certificate are kept; the global
 * signature counter keeps growing.
 */
import type { RequestContext } from '../../../protocol/authenticator.ts';
import { CTAP2_ERR_NOT_ALLOWED } from '../../../protocol/ctap2.ts';
import type { SoftDevice } from './device.ts';
import { fail } from './errors.ts';

export async function reset(device: SoftDevice, ctx: RequestContext): Promise<Uint8Array> {
  const sincePowerUp = device.clock.now() - device.poweredUpAt;
  if (sincePowerUp < 0 || sincePowerUp > device.config.resetWindowMs) fail(CTAP2_ERR_NOT_ALLOWED, 'reset window passed');
  await device.requirePresence(ctx, { action: 'reset', origin: ctx.origin });
  device.wipe();
  await device.save();
  return new Uint8Array(0);
}
