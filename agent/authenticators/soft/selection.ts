/**
 * authenticatorSelection (CTAP 2.1 PS 2021-06-15 §6.9): the platform asks the user to pick this authenticator
 * by touch; declined → CTAP2_ERR_OPERATION_DENIED, prompt timed out → CTAP2_ERR_USER_ACTION_TIMEOUT.
 */
import type { RequestContext } from '../../../protocol/authenticator.ts';
import type { SoftDevice } from './device.ts';

export async function selection(device: SoftDevice, ctx: RequestContext): Promise<Uint8Array> {
  await device.requirePresence(ctx, { action: 'selection', origin: ctx.origin });
  return new Uint8Array(0);
}
