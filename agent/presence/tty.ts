/**
 * Presence by asking the person at the terminal (`--approve prompt`): the soft authenticator's "touch".
 *
 * For each request it prints, on the output stream (stderr), who asks, what for, the RP ID and the user name
 * (describe.ts: sanitised), then reads one key in raw mode: Enter approves; Esc or 'n' denies; Ctrl-C denies and
 * re-raises the interrupt (raw mode swallows it). No answer within the timeout (30 s, like a security key's
 * user-presence window) is `timeout`; the request's abort signal (the client sent CTAPHID_CANCEL or went away)
 * is `cancelled`. Prompts are strictly one at a time (queue.ts), and keys typed before a prompt appears are
 * discarded (a stale Enter must not approve a new request).
 */
import { displayText } from '../display-text.ts';
import { describeRequest } from './describe.ts';
import type { Presence, PresenceOutcome, PresenceRequest } from './port.ts';
import { PromptQueue } from './queue.ts';
import { DEFAULT_PROMPT_TIMEOUT_MS, systemTimers, type Timers } from './timers.ts';

/** The input side of a terminal (process.stdin fits; tests pass a PassThrough with isTTY set). */
export interface KeyInput extends NodeJS.ReadableStream {
  readonly isTTY?: boolean;
  setRawMode?(raw: boolean): unknown;
}

export interface TtyPresenceOptions {
  readonly input: KeyInput;
  /** Where prompts go: stderr, never stdout. */
  readonly output: NodeJS.WritableStream;
  readonly timeoutMs?: number;
  readonly timers?: Timers;
  /** Called after Ctrl-C denied the prompt (default: raise SIGINT, as the terminal would have). */
  readonly onInterrupt?: () => void;
}

export class PresenceSetupError extends Error {
  override readonly name = 'PresenceSetupError';
}

/** Builds the prompting presence; refuses when the input is not a terminal (nobody could answer). */
export function createTtyPresence(options: TtyPresenceOptions): TtyPresence {
  if (!options.input.isTTY) {
    throw new PresenceSetupError(
      '--approve prompt needs an interactive terminal on stdin, and stdin is not a TTY; ' +
        'run it in a terminal, use --approve dialog on a desktop, or --approve always for tests and containers',
    );
  }
  return new TtyPresence(options);
}

/**
 * Untrusted text made safe for a terminal: the shared sanitiser (agent/display-text.ts). Kept under this name
 * for existing callers; new code imports displayText.
 */
export const terminalSafe = displayText;

/** What the prompt line ends with, once answered. */
const SHOWN: Record<PresenceOutcome | 'interrupted', string> = {
  approved: 'approved',
  denied: 'denied',
  timeout: 'timed out',
  cancelled: 'cancelled by the client',
  interrupted: 'interrupted',
};

export class TtyPresence implements Presence {
  private readonly input: KeyInput;
  private readonly output: NodeJS.WritableStream;
  private readonly timeoutMs: number;
  private readonly timers: Timers;
  private readonly onInterrupt: () => void;
  private readonly queue = new PromptQueue();

  constructor(options: TtyPresenceOptions) {
    this.input = options.input;
    this.output = options.output;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_PROMPT_TIMEOUT_MS;
    this.timers = options.timers ?? systemTimers;
    // Emitted to the clean-stop handler rather than sent with process.kill: on Windows a real SIGINT sent to
    // oneself ends the process at once. Without a handler, the default (end the process) is what Ctrl+C means.
    this.onInterrupt =
      options.onInterrupt ??
      (() => (process.listenerCount('SIGINT') > 0 ? void process.emit('SIGINT') : process.kill(process.pid, 'SIGINT')));
  }

  confirm(request: PresenceRequest, signal: AbortSignal): Promise<PresenceOutcome> {
    return this.queue.run(signal, (s) => this.ask(request, s));
  }

  /** One prompt; the queue guarantees no other is active. */
  private ask(request: PresenceRequest, signal: AbortSignal): Promise<PresenceOutcome> {
    const input = this.input;
    // Raw mode first (one key, no echo, no line buffering), then discard type-ahead: only a key pressed after
    // the prompt is shown may answer it.
    input.setRawMode?.(true);
    while (input.read() !== null) {
      /* drop */
    }
    const seconds = Math.round(this.timeoutMs / 1000);
    this.output.write(
      `\nkeytunnel: ${describeRequest(request)} — approve? [Enter/Esc]\n` +
        `  Press Enter to approve, Esc or n to deny (denied in ${seconds} s): `,
    );
    return new Promise<PresenceOutcome>((resolve) => {
      let done = false;
      const finish = (outcome: PresenceOutcome | 'interrupted'): void => {
        if (done) return;
        done = true;
        this.timers.clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        input.removeListener('data', onData);
        input.setRawMode?.(false);
        input.pause();
        this.output.write(`${SHOWN[outcome]}\n`);
        if (outcome === 'interrupted') this.onInterrupt();
        resolve(outcome === 'interrupted' ? 'denied' : outcome);
      };
      const onData = (chunk: Buffer | string): void => {
        const text = typeof chunk === 'string' ? chunk : chunk.toString('latin1');
        if (text === '\x1b') return finish('denied');
        if (text.startsWith('\x1b')) return; // an escape sequence (arrow key, …): not an answer
        for (const ch of text) {
          if (ch === '\r' || ch === '\n') return finish('approved');
          if (ch === 'n' || ch === 'N') return finish('denied');
          if (ch === '\x03') return finish('interrupted');
        }
      };
      const onAbort = (): void => finish('cancelled');
      const timer = this.timers.setTimeout(() => finish('timeout'), this.timeoutMs);
      signal.addEventListener('abort', onAbort, { once: true });
      input.on('data', onData);
      input.resume();
    });
  }
}
