/**
 * Presence that approves every request without asking (`--approve always`): for tests, CI and containers
 * where nobody sits at a terminal. It says so loudly, once, when created.
 */
import type { Presence, PresenceOutcome, PresenceRequest } from './port.ts';

export const ALWAYS_APPROVE_WARNING =
  '--approve always: every request is approved without asking; use only for tests and containers';

/** The one logging call this module makes (a pino logger fits). */
export interface WarnSink {
  warn(message: string): void;
}

export class AlwaysPresence implements Presence {
  constructor(log?: WarnSink) {
    log?.warn(ALWAYS_APPROVE_WARNING);
  }

  /** Approves, unless the request was already cancelled (then there is nobody left to answer). */
  async confirm(_request: PresenceRequest, signal: AbortSignal): Promise<PresenceOutcome> {
    return signal.aborted ? 'cancelled' : 'approved';
  }
}

/** Presence where nobody can be asked (no terminal, no dialog, nothing needs one): every request is denied. */
export const NOBODY_PRESENCE: Presence = {
  confirm: async (_request, signal) => (signal.aborted ? 'cancelled' : 'denied'),
};
