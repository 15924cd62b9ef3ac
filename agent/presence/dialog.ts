/**
 * Presence by a dialog on the desktop (`--approve dialog`, and the default when stdin is not a terminal):
 * each request opens a small window that names the VM, the RP, the user and the operation (the same sanitised
 * words as the terminal prompt: describe.ts), with Approve / Deny and a timeout.
 *
 * - One dialog at a time, oldest request first (queue.ts); a request whose VM went away (its signal aborted)
 *   is dropped from the queue, and an open dialog of it is closed (the program is killed).
 * - The backends (dialogs/choose.ts) are tried in order: one that cannot show a dialog (not installed, no
 *   display) is logged and the next one asks; if none can, the request is denied.
 * - The dialog's own timeout answers `timeout` (CTAP2_ERR_USER_ACTION_TIMEOUT where the spec names it:
 *   outcome-status.ts).
 */
import { describeRequest } from './describe.ts';
import { chooseDialogBackends, PINENTRY_ENV, type ChooseOptions } from './dialogs/choose.ts';
import type { DialogBackend, DialogText } from './dialogs/backend.ts';
import type { Presence, PresenceOutcome, PresenceRequest } from './port.ts';
import { PromptQueue } from './queue.ts';
import { DEFAULT_PROMPT_TIMEOUT_MS } from './timers.ts';
import { PresenceSetupError } from './tty.ts';

export const DIALOG_TITLE = 'keytunnel: approve?';
export const DIALOG_OK = 'Approve';
export const DIALOG_CANCEL = 'Deny';

/** The logging this module does (a pino logger fits). */
export interface DialogLog {
  warn(obj: object, message: string): void;
}

export interface DialogPresenceOptions {
  /** Tried in order at each request. */
  readonly backends: readonly DialogBackend[];
  readonly timeoutMs?: number;
  readonly log?: DialogLog;
}

/** What the dialog says for a request. */
export function dialogText(request: PresenceRequest, timeoutMs: number = DEFAULT_PROMPT_TIMEOUT_MS): DialogText {
  const seconds = Math.max(1, Math.round(timeoutMs / 1000));
  return {
    title: DIALOG_TITLE,
    message: `${describeRequest(request)}.\n\nApprove? Without an answer in ${seconds} s it is refused.`,
    ok: DIALOG_OK,
    cancel: DIALOG_CANCEL,
    timeoutSeconds: seconds,
  };
}

export class DialogPresence implements Presence {
  private readonly backends: readonly DialogBackend[];
  private readonly timeoutMs: number;
  private readonly log: DialogLog | undefined;
  private readonly queue = new PromptQueue();

  constructor(options: DialogPresenceOptions) {
    this.backends = options.backends;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_PROMPT_TIMEOUT_MS;
    this.log = options.log;
  }

  /** The backends' names, in order (for logs and doctor). */
  get names(): string[] {
    return this.backends.map((b) => b.name);
  }

  /** Requests waiting or being asked. */
  get queued(): number {
    return this.queue.length;
  }

  confirm(request: PresenceRequest, signal: AbortSignal): Promise<PresenceOutcome> {
    return this.queue.run(signal, (s) => this.ask(request, s));
  }

  private async ask(request: PresenceRequest, signal: AbortSignal): Promise<PresenceOutcome> {
    const text = dialogText(request, this.timeoutMs);
    for (const backend of this.backends) {
      if (signal.aborted) return 'cancelled';
      try {
        return await backend.ask(text, signal);
      } catch (err) {
        this.log?.warn({ dialog: backend.name, err: String(err) }, 'approval dialog could not be shown; trying the next one');
      }
    }
    this.log?.warn({ action: request.action }, 'no approval dialog could be shown: request denied');
    return signal.aborted ? 'cancelled' : 'denied';
  }
}

/** The dialog presence for this machine; refuses when no dialog program can work here. */
export function createDialogPresence(options: ChooseOptions & { readonly timeoutMs?: number; readonly log?: DialogLog } = {}): DialogPresence {
  const backends = chooseDialogBackends(options);
  if (backends.length === 0) {
    throw new PresenceSetupError(
      '--approve dialog: no dialog program can be used here (no DISPLAY or WAYLAND_DISPLAY, and neither pinentry, ' +
        `zenity nor kdialog found); set ${PINENTRY_ENV} (e.g. pinentry-curses with GPG_TTY), use --approve prompt ` +
        'in a terminal, or --approve always for tests and containers',
    );
  }
  return new DialogPresence({ backends, timeoutMs: options.timeoutMs, log: options.log });
}
