/**
 * What a dialog backend is (one per program: pinentry, zenity, kdialog, osascript, PowerShell), and the one
 * way they run their program: argv items and environment variables only (no shell, no script built from
 * request text), killed when the request goes away (the dialog closes) or when it outlives its timeout.
 */
import { spawn } from 'node:child_process';
import type { PresenceOutcome } from '../port.ts';

/** What a dialog shows. Every string is already printable text (describe.ts, displayText). */
export interface DialogText {
  readonly title: string;
  readonly message: string;
  /** The approve button's label. */
  readonly ok: string;
  /** The deny button's label. */
  readonly cancel: string;
  /** The dialog closes by itself after this many seconds: `timeout`. */
  readonly timeoutSeconds: number;
}

export interface DialogBackend {
  /** A short name for logs and `keytunnel doctor` ("pinentry (pinentry-gtk-2)", "zenity", …). */
  readonly name: string;
  /**
   * Shows one dialog. Resolves approved / denied / timeout, or `cancelled` once `signal` aborts (the dialog is
   * closed). Rejects when the program could not show a dialog at all (missing, no display): not an answer.
   */
  ask(text: DialogText, signal: AbortSignal): Promise<PresenceOutcome>;
}

/** The program could not show a dialog (not a user's answer). */
export class DialogError extends Error {
  override readonly name = 'DialogError';
}

export interface ProgramRun {
  /** How it ended: by itself (with `code`), killed because the signal aborted, or killed at the backstop. */
  readonly ended: 'exit' | 'aborted' | 'timeout';
  readonly code: number | null;
  /** The first 4 KiB of stdout. */
  readonly stdout: string;
}

/** Seconds after a dialog's own timeout before a program that ignored it is killed. */
export const BACKSTOP_SECONDS = 5;
const MAX_STDOUT = 4096;

/**
 * Runs `command` with `args` (no shell) and `env` added to this process's environment; kills it when `signal`
 * aborts or after `killAfterMs`. Rejects with DialogError when it cannot be started.
 */
export function runProgram(
  command: string,
  args: readonly string[],
  options: { readonly env?: NodeJS.ProcessEnv; readonly extraEnv?: Readonly<Record<string, string>>; readonly signal: AbortSignal; readonly killAfterMs: number },
): Promise<ProgramRun> {
  if (options.signal.aborted) return Promise.resolve({ ended: 'aborted', code: null, stdout: '' });
  return new Promise<ProgramRun>((resolve, reject) => {
    const child = spawn(command, [...args], {
      stdio: ['ignore', 'pipe', 'ignore'],
      env: { ...(options.env ?? process.env), ...options.extraEnv },
      shell: false,
      windowsHide: false,
    });
    let stdout = '';
    let ended: ProgramRun['ended'] = 'exit';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      if (stdout.length < MAX_STDOUT) stdout += d.slice(0, MAX_STDOUT - stdout.length);
    });
    const kill = (why: ProgramRun['ended']): void => {
      ended = why;
      child.kill();
    };
    const onAbort = (): void => kill('aborted');
    options.signal.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(() => kill('timeout'), options.killAfterMs);
    const done = (): void => {
      clearTimeout(timer);
      options.signal.removeEventListener('abort', onAbort);
    };
    child.once('error', (err) => {
      done();
      reject(new DialogError(`cannot run ${command}: ${err.message}`));
    });
    child.once('close', (code) => {
      done();
      resolve({ ended, code, stdout });
    });
  });
}

/** The outcome of a run killed by us, if it was. */
export function killedOutcome(run: ProgramRun): PresenceOutcome | undefined {
  if (run.ended === 'aborted') return 'cancelled';
  if (run.ended === 'timeout') return 'timeout';
  return undefined;
}
