/**
 * The one way callers ask the presence port: the signal wins at once (a cancelled request does not wait for
 * a prompt program to go away), and a prompt that failed counts as a denial, never as an approval.
 */
import type { Presence, PresenceOutcome, PresenceRequest } from './port.ts';

export function askPresence(presence: Presence, request: PresenceRequest, signal: AbortSignal): Promise<PresenceOutcome> {
  if (signal.aborted) return Promise.resolve('cancelled');
  return new Promise<PresenceOutcome>((resolve) => {
    let done = false;
    const finish = (outcome: PresenceOutcome): void => {
      if (done) return;
      done = true;
      signal.removeEventListener('abort', onAbort);
      resolve(signal.aborted ? 'cancelled' : outcome);
    };
    const onAbort = (): void => finish('cancelled');
    signal.addEventListener('abort', onAbort, { once: true });
    let asked: Promise<PresenceOutcome>;
    try {
      asked = presence.confirm(request, signal);
    } catch {
      asked = Promise.resolve('denied');
    }
    asked.then(finish, () => finish('denied'));
  });
}
