/**
 * zenity (GNOME's dialog program) as a dialog backend: `zenity --question`, every text one argv item after its
 * option's '=' (so nothing the VM wrote can be read as an option), Pango markup off (--no-markup), Deny focused
 * (--default-cancel: a stray Enter does not approve). Exit status: 0 the OK button, 1 Cancel or the window
 * closed, 5 the --timeout expired.
 */
import type { PresenceOutcome } from '../port.ts';
import { BACKSTOP_SECONDS, DialogError, killedOutcome, runProgram, type DialogBackend, type DialogText } from './backend.ts';

export const ZENITY_TIMEOUT_EXIT = 5;

export function zenityArgs(text: DialogText): string[] {
  return [
    '--question',
    '--no-markup',
    '--default-cancel',
    '--icon-name=dialog-password',
    `--title=${text.title}`,
    `--text=${text.message}`,
    `--ok-label=${text.ok}`,
    `--cancel-label=${text.cancel}`,
    `--timeout=${text.timeoutSeconds}`,
  ];
}

export function zenityBackend(program = 'zenity', env?: NodeJS.ProcessEnv): DialogBackend {
  return {
    name: 'zenity',
    async ask(text: DialogText, signal: AbortSignal): Promise<PresenceOutcome> {
      const run = await runProgram(program, zenityArgs(text), { env, signal, killAfterMs: (text.timeoutSeconds + BACKSTOP_SECONDS) * 1000 });
      const killed = killedOutcome(run);
      if (killed) return killed;
      if (run.code === 0) return 'approved';
      if (run.code === 1) return 'denied';
      if (run.code === ZENITY_TIMEOUT_EXIT) return 'timeout';
      throw new DialogError(`zenity failed (exit ${run.code})`);
    },
  };
}
