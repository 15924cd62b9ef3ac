/** The pinentry dialog backend: Assuan CONFIRM through the pinentry client (../pinentry.ts). */
import { confirm } from '../pinentry.ts';
import type { PresenceOutcome } from '../port.ts';
import type { DialogBackend, DialogText } from './backend.ts';

export interface PinentryBackendOptions {
  /** The pinentry program (a path or a name on PATH). */
  readonly program: string;
  /** For pinentry-curses/-tty: the terminal to draw on (GPG_TTY) and its TERM. */
  readonly tty?: { readonly name: string; readonly type?: string };
  readonly env?: NodeJS.ProcessEnv;
}

export function pinentryBackend(options: PinentryBackendOptions): DialogBackend {
  return {
    name: `pinentry (${options.program})`,
    ask(text: DialogText, signal: AbortSignal): Promise<PresenceOutcome> {
      return confirm({
        program: options.program,
        title: text.title,
        description: text.message,
        ok: text.ok,
        cancel: text.cancel,
        timeoutSeconds: text.timeoutSeconds,
        tty: options.tty,
        env: options.env,
        signal,
      });
    },
  };
}
