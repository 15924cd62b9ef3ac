/**
 * Presence that approves every request without asking (`--approve always`): for tests, CI and containers
 * where nobody sits at a terminal. It says so loudly, once, when created.
 */
import type { Presence, PresenceRequest } from './ports.ts';

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
  async confirm(_request: PresenceRequest, signal: AbortSignal): Promise<boolean> {
    return !signal.aborted;
  }
}
