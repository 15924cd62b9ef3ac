/**
 * A client of GnuPG's pinentry programs (pinentry-gnome3/-qt/-gtk2/-curses/-tty on Linux, pinentry-mac,
 * Gpg4win's pinentry on Windows): one dialog per program run, spoken to over the Assuan protocol (assuan.ts)
 * on the program's stdin/stdout.
 *
 *   confirm(options)  → 'approved' | 'denied' | 'timeout' | 'cancelled'      (CONFIRM: two buttons)
 *   getPin(options)   → { outcome: 'approved', pin } | { outcome: 'denied' | 'timeout' | 'cancelled' }   (GETPIN)
 *
 * Every text is sent as an escaped Assuan parameter (SETTITLE, SETDESC, SETPROMPT, SETOK, SETCANCEL, SETERROR),
 * never as part of a command line or a script; callers pass text already made printable (displayText).
 * `timeoutSeconds` is the pinentry's own SETTIMEOUT (it closes the dialog and answers GPG_ERR_TIMEOUT); a
 * backstop timer a few seconds later kills a pinentry that ignores it. `signal` aborting (the request went
 * away) kills the program, which closes its dialog, and answers `cancelled`. `cancelled` is never the user's
 * doing: a press of the Cancel button (or closing the window) is `denied`.
 *
 * For the terminal pinentries (curses, tty) pass `tty` (OPTION ttyname/ttytype): the program's stdin and
 * stdout are the Assuan pipes, so it must be told where to draw. A GUI pinentry finds its display in `env`
 * (DISPLAY, WAYLAND_DISPLAY, DBUS_SESSION_BUS_ADDRESS).
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import {
  GPG_ERR_ASS_CANCELED,
  GPG_ERR_CANCELED,
  GPG_ERR_NOT_CONFIRMED,
  GPG_ERR_TIMEOUT,
  commandLine,
  gpgErrorCode,
  parseResponse,
  type AssuanResponse,
} from './assuan.ts';
import type { PresenceOutcome } from './port.ts';

/** What every pinentry dialog takes. */
export interface PinentryOptions {
  /** The program: a path, or a name looked up on PATH (e.g. "pinentry", "pinentry-curses"). */
  readonly program: string;
  readonly title?: string;
  /** The message; line breaks are kept. */
  readonly description: string;
  /** Label of the approve / OK button (an '_' marks the access key, as pinentry's SETOK says). */
  readonly ok?: string;
  /** Label of the deny / Cancel button. */
  readonly cancel?: string;
  /** Seconds before the dialog closes by itself (pinentry SETTIMEOUT); none when undefined. */
  readonly timeoutSeconds?: number;
  /** The terminal for pinentry-curses/-tty: its device path (e.g. GPG_TTY) and TERM. */
  readonly tty?: { readonly name: string; readonly type?: string };
  /** The environment the program runs in (default: this process's). */
  readonly env?: NodeJS.ProcessEnv;
  readonly signal?: AbortSignal;
}

export interface PinentryGetPinOptions extends PinentryOptions {
  /** The label beside the entry field (SETPROMPT), e.g. "Passphrase:". */
  readonly prompt?: string;
  /** An error shown above the entry, e.g. after a wrong passphrase (SETERROR). */
  readonly error?: string;
}

export type PinentryPinResult =
  | { readonly outcome: 'approved'; readonly pin: string }
  | { readonly outcome: Exclude<PresenceOutcome, 'approved'> };

/** The program could not be run, or did not speak Assuan as expected (not a user's answer). */
export class PinentryError extends Error {
  override readonly name = 'PinentryError';
}

/** Seconds after SETTIMEOUT's own expiry before a silent pinentry is killed. */
const BACKSTOP_SECONDS = 5;
/** Longest PIN/passphrase accepted back (a pinentry's own buffer is 2 KiB at most). */
const MAX_PIN_BYTES = 4096;

/** Asks a yes/no question (Assuan CONFIRM). */
export async function confirm(options: PinentryOptions): Promise<PresenceOutcome> {
  return run(options, async (session) => {
    const answer = await session.command('CONFIRM');
    if (answer.kind === 'ok') return 'approved';
    return refusal(answer.code, answer.text);
  });
}

/** Asks for a PIN or passphrase (Assuan GETPIN). The answer is never logged. */
export async function getPin(options: PinentryGetPinOptions): Promise<PinentryPinResult> {
  return run<PinentryPinResult>(options, async (session) => {
    if (options.prompt !== undefined) await session.set('SETPROMPT', options.prompt);
    if (options.error !== undefined) await session.set('SETERROR', options.error);
    const answer = await session.command('GETPIN');
    if (answer.kind === 'ok') return { outcome: 'approved', pin: answer.data };
    return { outcome: refusal(answer.code, answer.text) };
  }, (outcome) => ({ outcome }));
}

/** A pinentry's ERR to CONFIRM/GETPIN as an outcome; other errors are not answers. */
function refusal(code: number, text: string): Exclude<PresenceOutcome, 'approved' | 'cancelled'> {
  switch (gpgErrorCode(code)) {
    case GPG_ERR_TIMEOUT:
      return 'timeout';
    case GPG_ERR_CANCELED:
    case GPG_ERR_NOT_CONFIRMED:
    case GPG_ERR_ASS_CANCELED:
      return 'denied';
    default:
      throw new PinentryError(`pinentry failed: ERR ${code} ${text.slice(0, 200)}`);
  }
}

type Final = { kind: 'ok'; data: string } | { kind: 'err'; code: number; text: string };

interface Session {
  set(command: string, text: string): Promise<void>;
  command(line: string): Promise<Final>;
}

/**
 * Runs the program, sets the common texts, calls `body`, says BYE. The signal → kill → `cancelled`
 * (`onCancelled` shapes it for getPin); the backstop timer → kill → `timeout`.
 */
function run<T>(options: PinentryOptions, body: (session: Session) => Promise<T>, wrap?: (o: 'cancelled' | 'timeout') => T): Promise<T> {
  const shape = wrap ?? ((o: 'cancelled' | 'timeout') => o as unknown as T);
  const signal = options.signal;
  if (signal?.aborted) return Promise.resolve(shape('cancelled'));
  return new Promise<T>((resolve, reject) => {
    let done = false;
    const child = spawn(options.program, [], {
      stdio: ['pipe', 'pipe', 'ignore'],
      env: options.env ?? process.env,
      windowsHide: false,
    });
    const lines = createInterface({ input: child.stdout });
    const waiting: ((line: string | null) => void)[] = [];
    const buffered: (string | null)[] = [];
    let pendingBytes = 0;
    lines.on('line', (line) => {
      pendingBytes += line.length;
      if (pendingBytes > 64 * 1024) return finishError(new PinentryError('pinentry sent too much'));
      const next = waiting.shift();
      if (next) next(line);
      else buffered.push(line);
    });
    lines.on('close', () => {
      const next = waiting.shift();
      if (next) next(null);
      else buffered.push(null);
    });
    const readLine = (): Promise<string | null> => {
      if (buffered.length > 0) return Promise.resolve(buffered.shift()!);
      return new Promise((r) => waiting.push(r));
    };

    const cleanup = (): void => {
      done = true;
      if (backstop) clearTimeout(backstop);
      signal?.removeEventListener('abort', onAbort);
      lines.close();
      child.stdin.end();
      if (child.exitCode === null && child.signalCode === null) child.kill();
    };
    const finish = (value: T): void => {
      if (done) return;
      cleanup();
      resolve(value);
    };
    const finishError = (err: Error): void => {
      if (done) return;
      cleanup();
      reject(err);
    };
    const onAbort = (): void => finish(shape('cancelled'));
    signal?.addEventListener('abort', onAbort, { once: true });
    const backstop =
      options.timeoutSeconds === undefined
        ? undefined
        : setTimeout(() => finish(shape('timeout')), (options.timeoutSeconds + BACKSTOP_SECONDS) * 1000);
    child.once('error', (err) => finishError(new PinentryError(`cannot run ${options.program}: ${err.message}`)));
    child.stdin.on('error', () => {}); // the program exited: reported by the line reader

    /** Reads up to the command's OK or ERR, collecting data lines. */
    const response = async (): Promise<Final> => {
      let data = '';
      for (;;) {
        const line = await readLine();
        if (line === null) throw new PinentryError(`${options.program} ended without answering`);
        const r: AssuanResponse = parseResponse(line);
        switch (r.kind) {
          case 'ok':
            return { kind: 'ok', data };
          case 'err':
            return { kind: 'err', code: r.code, text: r.text };
          case 'data':
            data += r.data;
            if (Buffer.byteLength(data) > MAX_PIN_BYTES) throw new PinentryError('pinentry answered too much data');
            break;
          case 'inquire':
            throw new PinentryError('pinentry inquired, which this client does not answer');
          default:
            break; // status and comment lines
        }
      }
    };
    const send = (line: string): void => {
      if (!done) child.stdin.write(`${line}\n`);
    };
    const session: Session = {
      async set(command, text) {
        send(commandLine(command, text));
        const r = await response();
        if (r.kind === 'err') throw new PinentryError(`pinentry refused ${command}: ERR ${r.code} ${r.text.slice(0, 200)}`);
      },
      async command(line) {
        send(commandLine(line));
        return response();
      },
    };

    void (async () => {
      const greeting = await response();
      if (greeting.kind !== 'ok') throw new PinentryError(`${options.program} did not greet: ERR ${greeting.code}`);
      if (options.tty) {
        await session.set('OPTION', `ttyname=${options.tty.name}`);
        if (options.tty.type) await session.set('OPTION', `ttytype=${options.tty.type}`);
      }
      if (options.title !== undefined) await session.set('SETTITLE', options.title);
      await session.set('SETDESC', options.description);
      if (options.ok !== undefined) await session.set('SETOK', options.ok);
      if (options.cancel !== undefined) await session.set('SETCANCEL', options.cancel);
      if (options.timeoutSeconds !== undefined) await session.set('SETTIMEOUT', String(Math.max(1, Math.round(options.timeoutSeconds))));
      const result = await body(session);
      send('BYE');
      finish(result);
    })().catch((err: unknown) => {
      if (done) return;
      finishError(err instanceof Error ? err : new PinentryError(String(err)));
    });
  });
}
