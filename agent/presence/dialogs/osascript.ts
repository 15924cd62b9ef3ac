/**
 * macOS: `display dialog` through osascript. The AppleScript is constant (an `on run argv` handler); the
 * texts follow it as argv items, after a constant first item that ends osascript's option parsing. The Deny
 * button is the default and the cancel button (Esc); `giving up after` is the timeout. Output: "approved" or
 * "timeout"; the cancel button makes osascript fail with error -128 (exit 1).
 */
import type { PresenceOutcome } from '../port.ts';
import { BACKSTOP_SECONDS, DialogError, killedOutcome, runProgram, type DialogBackend, type DialogText } from './backend.ts';

/** argv: [marker, message, title, ok, cancel, timeoutSeconds]. */
export const MACOS_DIALOG_SCRIPT = [
  'on run argv',
  'set r to display dialog (item 2 of argv) with title (item 3 of argv) buttons {(item 5 of argv), (item 4 of argv)} ' +
    'default button 1 cancel button 1 giving up after ((item 6 of argv) as integer) with icon caution',
  'if gave up of r then return "timeout"',
  'return "approved"',
  'end run',
];
const ARGV_MARKER = 'keytunnel';

export function osascriptArgs(text: DialogText): string[] {
  return [
    ...MACOS_DIALOG_SCRIPT.flatMap((line) => ['-e', line]),
    ARGV_MARKER,
    text.message,
    text.title,
    text.ok,
    text.cancel,
    String(text.timeoutSeconds),
  ];
}

export function osascriptBackend(program = 'osascript', env?: NodeJS.ProcessEnv): DialogBackend {
  return {
    name: 'osascript',
    async ask(text: DialogText, signal: AbortSignal): Promise<PresenceOutcome> {
      const run = await runProgram(program, osascriptArgs(text), { env, signal, killAfterMs: (text.timeoutSeconds + BACKSTOP_SECONDS) * 1000 });
      const killed = killedOutcome(run);
      if (killed) return killed;
      const out = run.stdout.trim();
      if (run.code === 0 && out === 'approved') return 'approved';
      if (run.code === 0 && out === 'timeout') return 'timeout';
      if (run.code === 1) return 'denied'; // error -128: the Deny (cancel) button
      throw new DialogError(`osascript failed (exit ${run.code})`);
    },
  };
}
