/**
 * The presence port for an --approve mode (shared by `keytunnel agent` and `keytunnel soft`):
 *   prompt → the terminal (agent/presence/tty.ts), dialog → a desktop dialog (agent/presence/dialog.ts),
 *   always → approve without asking (agent/presence/always.ts).
 * Setup problems (no terminal, no dialog program) throw PresenceSetupError before anything else is asked.
 */
import { AlwaysPresence, NOBODY_PRESENCE } from '../agent/presence/always.ts';
import { createDialogPresence } from '../agent/presence/dialog.ts';
import type { Presence } from '../agent/presence/port.ts';
import { createTtyPresence, PresenceSetupError, type KeyInput } from '../agent/presence/tty.ts';
import type { Logger } from './log.ts';
import type { ApproveMode } from './options.ts';

export interface PresenceIo {
  readonly input: KeyInput;
  readonly output: NodeJS.WritableStream;
  readonly env?: NodeJS.ProcessEnv;
  readonly log: Logger;
}

export function presenceFor(mode: ApproveMode, io: PresenceIo): Presence {
  switch (mode) {
    case 'always':
      return new AlwaysPresence(io.log);
    case 'prompt':
      return createTtyPresence({ input: io.input, output: io.output });
    case 'dialog': {
      const dialog = createDialogPresence({ env: io.env, log: io.log });
      io.log.info({ dialogs: dialog.names }, 'approvals are asked in a dialog');
      return dialog;
    }
  }
}

/** As presenceFor, but where nobody can be asked every request is denied (nothing requires asking). */
export function presenceOrNobody(mode: ApproveMode, io: PresenceIo): Presence {
  try {
    return presenceFor(mode, io);
  } catch (err) {
    if (err instanceof PresenceSetupError) return NOBODY_PRESENCE;
    throw err;
  }
}
