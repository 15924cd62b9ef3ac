/**
 * Presence by asking the person at the terminal (`--approve prompt`): the soft authenticator's "touch".
 *
 * For each request it prints, on the output stream (stderr), who asks, what for, the RP ID and the user name,
 * then reads one key in raw mode: Enter approves; Esc or 'n' denies; Ctrl-C denies and re-raises the
 * interrupt (raw mode swallows it). No answer within the timeout (30 s, like a security key's user-presence
 * window) denies, and so does the request's abort signal (the client sent CTAPHID_CANCEL or went away).
 * Prompts are strictly one at a time (a FIFO queue), so an answer can never be taken for the wrong request,
 * and keys typed before a prompt appears are discarded (a stale Enter must not approve a new request).
 *
 * Everything shown comes from the untrusted client: every field goes through displayText (agent/display-text.ts:
 * controls, bidi and other format characters escaped, length bounded), so an RP ID cannot rewrite the terminal
 * or disguise itself.
 */
import { displayText } from '../../display-text.ts';
import type { Presence, PresenceRequest } from './ports.ts';

export const DEFAULT_PROMPT_TIMEOUT_MS = 30_000;

/** Timers, injectable so the timeout is tested without waiting. */
export interface Timers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}
export const systemTimers: Timers = {
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

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
  constructor(message: string) {
    super(message);
    this.name = 'PresenceSetupError';
  }
}

/** Builds the prompting presence; refuses when the input is not a terminal (nobody could answer). */
export function createTtyPresence(options: TtyPresenceOptions): TtyPresence {
  if (!options.input.isTTY) {
    throw new PresenceSetupError(
      '--approve prompt needs an interactive terminal on stdin, and stdin is not a TTY; ' +
        'run it in a terminal, or use --approve always for tests and containers',
    );
  }
  return new TtyPresence(options);
}

/** What the requester wants, phrased to take the RP ID right after it ("sign in to login.microsoft.com"). */
const ACTION_TEXT: Record<PresenceRequest['action'], string> = {
  makeCredential: 'create a passkey for',
  getAssertion: 'sign in to',
  u2fRegister: 'register a U2F key for',
  u2fAuthenticate: 'sign in (U2F) to',
  reset: 'RESET the authenticator, deleting every credential',
  selection: 'select this authenticator',
  credentialManagement: 'manage the stored credentials',
  setPin: 'SET the authenticator PIN (shared by every VM using it)',
  changePin: 'CHANGE the authenticator PIN (shared by every VM using it)',
};

/**
 * Untrusted text made safe for a terminal: the shared sanitiser (agent/display-text.ts). Kept under this name
 * for existing callers; new code imports displayText.
 */
export const terminalSafe = displayText;

/** Who is asking: the VM's policy name and the start of its fingerprint ("customer-a (fp 3f:a1:9c:…)"). */
export function describeRequester(request: PresenceRequest): string {
  const name = request.origin?.gatewayName;
  const fp = request.origin?.gatewayFingerprint;
  const shortFp = fp ? `fp ${displayText(fp, 23)}` : undefined;
  if (name && shortFp) return `${displayText(name, 40)} (${shortFp})`;
  if (name) return displayText(name, 40);
  if (shortFp) return `a gateway (${shortFp})`;
  return 'a local client';
}

/**
 * The prompt text for a request (without the key hint), as CTAP's user-presence check is shown to the user:
 * "customer-a (fp 3f:a1:…) wants to sign in to login.microsoft.com as alice@contoso.com".
 */
export function describeRequest(request: PresenceRequest): string {
  let text = `${describeRequester(request)} wants to ${ACTION_TEXT[request.action]}`;
  if (request.rpId !== undefined) text += ` ${displayText(request.rpId)}`;
  if (request.userName !== undefined) text += ` as ${displayText(request.userName, 64)}`;
  return text;
}

type Outcome = 'approved' | 'denied' | 'timed out' | 'cancelled by the client' | 'interrupted';

export class TtyPresence implements Presence {
  private readonly input: KeyInput;
  private readonly output: NodeJS.WritableStream;
  private readonly timeoutMs: number;
  private readonly timers: Timers;
  private readonly onInterrupt: () => void;
  private tail: Promise<void> = Promise.resolve();

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

  confirm(request: PresenceRequest, signal: AbortSignal): Promise<boolean> {
    if (signal.aborted) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      let settled = false;
      const settle = (answer: boolean): void => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', onQueuedAbort);
        resolve(answer);
      };
      // Cancelled while waiting its turn: answer at once; the queue skips it when its turn comes.
      const onQueuedAbort = (): void => settle(false);
      signal.addEventListener('abort', onQueuedAbort, { once: true });
      this.tail = this.tail.then(async () => {
        if (settled || signal.aborted) return settle(false);
        signal.removeEventListener('abort', onQueuedAbort);
        settle(await this.ask(request, signal));
      });
    });
  }

  /** One prompt; the queue guarantees no other is active. */
  private ask(request: PresenceRequest, signal: AbortSignal): Promise<boolean> {
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
    return new Promise<boolean>((resolve) => {
      let done = false;
      const finish = (outcome: Outcome): void => {
        if (done) return;
        done = true;
        this.timers.clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        input.removeListener('data', onData);
        input.setRawMode?.(false);
        input.pause();
        this.output.write(`${outcome}\n`);
        if (outcome === 'interrupted') this.onInterrupt();
        resolve(outcome === 'approved');
      };
      const onData = (chunk: Buffer | string): void => {
        const text = typeof chunk === 'string' ? chunk : chunk.toString('latin1');
        if (text === '\x1b') return finish('denied');
        if (text.startsWith('\x1b')) return; // an escape sequence (arrow key, …): not an answer
        for (const ch of text) {
          if (ch === '\r' || ch === '\n') return finish('approved');
          if (ch === 'n' || ch === 'N' || ch === '\x1b') return finish('denied');
          if (ch === '\x03') return finish('interrupted');
        }
      };
      const onAbort = (): void => finish('cancelled by the client');
      const timer = this.timers.setTimeout(() => finish('timed out'), this.timeoutMs);
      signal.addEventListener('abort', onAbort, { once: true });
      input.on('data', onData);
      input.resume();
    });
  }
}
