/**
 * kdialog (KDE's dialog program) as a dialog backend: `kdialog --yesno`. Qt guesses whether a label is rich
 * text, so the message is always sent as rich text with every character that means something in HTML escaped
 * (a VM cannot inject a link or a tag). kdialog has no timeout of its own: the program is killed when the time
 * is up. Exit status: 0 yes, 1 no, 2 the window closed.
 */
import type { PresenceOutcome } from '../port.ts';
import { DialogError, killedOutcome, runProgram, type DialogBackend, type DialogText } from './backend.ts';

export function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

export function kdialogArgs(text: DialogText): string[] {
  const html = `<qt>${escapeHtml(text.message).replace(/\n/g, '<br>')}</qt>`;
  return ['--title', text.title, '--yes-label', text.ok, '--no-label', text.cancel, '--yesno', html];
}

export function kdialogBackend(program = 'kdialog', env?: NodeJS.ProcessEnv): DialogBackend {
  return {
    name: 'kdialog',
    async ask(text: DialogText, signal: AbortSignal): Promise<PresenceOutcome> {
      const run = await runProgram(program, kdialogArgs(text), { env, signal, killAfterMs: text.timeoutSeconds * 1000 });
      const killed = killedOutcome(run);
      if (killed) return killed;
      if (run.code === 0) return 'approved';
      if (run.code === 1 || run.code === 2) return 'denied';
      throw new DialogError(`kdialog failed (exit ${run.code})`);
    },
  };
}
