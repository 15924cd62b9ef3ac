/**
 * The soft store's passphrase from the same GnuPG pinentry that asks for approvals (issue 15: "the store
 * passphrase can come from the same pinentry (GETPIN)"): a `PassphraseSource` (agent/passphrase.ts) of kind
 * interactive, used with `--approve dialog` so an agent started at login, without a terminal, can still be
 * unlocked by a person. The program is the one approvals use first: KEYTUNNEL_PINENTRY, else `pinentry` on PATH
 * (pinentry-mac on macOS; on Linux only with a display, or GPG_TTY for a terminal pinentry).
 *
 * A pinentry that cannot run hands over to the next source (the terminal); Cancel is the person's answer and
 * stops the unlock. The passphrase travels only over the pinentry's pipe and is never logged.
 */
import { MAX_PASSPHRASE_LENGTH, PassphraseError, type PassphraseSource } from '../passphrase.ts';
import { PINENTRY_ENV } from './dialogs/choose.ts';
import { findProgram } from './dialogs/find-program.ts';
import { getPin, PinentryError, type PinentryGetPinOptions } from './pinentry.ts';

export interface PinentryPassphraseOptions {
  readonly env?: NodeJS.ProcessEnv;
  readonly platform?: NodeJS.Platform;
  /** Seconds before an unanswered dialog closes (default 120: unlocking is not a CTAP request with a deadline). */
  readonly timeoutSeconds?: number;
  /** The Assuan GETPIN exchange (tests inject a fake). */
  readonly ask?: (options: PinentryGetPinOptions) => ReturnType<typeof getPin>;
}

/** The pinentry program to ask with, or undefined when there is none usable here. */
export function passphrasePinentry(env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform): string | undefined {
  const chosen = env[PINENTRY_ENV];
  if (chosen) return findProgram(chosen, env, platform) ?? chosen;
  if (platform === 'darwin') return findProgram('pinentry-mac', env, platform);
  if (platform !== 'win32' && !env['DISPLAY'] && !env['WAYLAND_DISPLAY']) return undefined;
  return findProgram('pinentry', env, platform);
}

export function pinentryPassphraseSource(options: PinentryPassphraseOptions = {}): PassphraseSource {
  const env = options.env ?? process.env;
  const ask = options.ask ?? getPin;
  const timeoutSeconds = options.timeoutSeconds ?? 120;
  const tty = env['GPG_TTY'] ? { name: env['GPG_TTY'], type: env['TERM'] } : undefined;

  return {
    name: 'pinentry',
    kind: 'interactive',
    async get(request) {
      const program = passphrasePinentry(env, options.platform);
      if (program === undefined) return undefined;
      const once = async (description: string, error?: string): Promise<string | undefined> => {
        let result;
        try {
          result = await ask({ program, env, tty, timeoutSeconds, title: 'keytunnel', description, prompt: 'Passphrase:', error });
        } catch (err) {
          if (err instanceof PinentryError || (err as NodeJS.ErrnoException).code === 'ENOENT') return undefined; // next source
          throw err;
        }
        if (result.outcome !== 'approved') throw new PassphraseError('cancelled', `the passphrase dialog was ${result.outcome === 'timeout' ? 'not answered' : 'cancelled'}`);
        if (result.pin.length === 0) throw new PassphraseError('empty', 'the passphrase is empty');
        if (result.pin.length > MAX_PASSPHRASE_LENGTH) {
          throw new PassphraseError('too-long', `the passphrase is longer than ${MAX_PASSPHRASE_LENGTH} characters`);
        }
        return result.pin;
      };
      const what = request.creating ? `Choose a passphrase for the new encrypted store\n${request.what}` : `Unlock the encrypted store\n${request.what}`;
      const first = await once(what, request.retryReason);
      if (first === undefined || !request.creating) return first;
      const second = await once('Repeat the passphrase');
      if (second !== first) throw new PassphraseError('mismatch', 'the two passphrases differ; nothing was created');
      return first;
    },
  };
}
