/**
 * Where the state-store passphrase comes from. Each place is a `PassphraseSource` (the seam):
 *
 *   - `envSource`: the KEYTUNNEL_PASSPHRASE environment variable (given: a wrong one is an error);
 *   - `keychainSource` (agent/keychain.ts): the OS keychain (remembered: a wrong one falls back to asking);
 *   - `terminalSource`: a no-echo prompt on the terminal (asked twice when a new store is being created, so a typo
 *     cannot lock the user out); it can also offer to remember the passphrase;
 *   - a pinentry GETPIN source: the slot the approval-dialog code fills (same interface, kind "interactive").
 *
 * agent/store-unlock.ts tries them in order and remembers the passphrase when asked. `obtainPassphrase` is the
 * old two-source entry point (variable, else terminal, else a clear error naming the variable). A passphrase is
 * returned to the caller and never logged or echoed.
 */

export const PASSPHRASE_ENV = 'KEYTUNNEL_PASSPHRASE';
/** Generous but bounded: a pasted passphrase, not a pasted file. */
export const MAX_PASSPHRASE_LENGTH = 1024;

export type PassphraseErrorCode = 'no-source' | 'empty' | 'mismatch' | 'cancelled' | 'too-long';

export class PassphraseError extends Error {
  constructor(
    readonly code: PassphraseErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'PassphraseError';
  }
}

/** The input side of a terminal (process.stdin fits). */
export interface PassphraseInput extends NodeJS.ReadableStream {
  readonly isTTY?: boolean;
  setRawMode?(raw: boolean): unknown;
}

export interface PassphraseOptions {
  /** True when the store does not exist yet: the prompt asks twice. */
  readonly creating: boolean;
  /** What the passphrase unlocks, shown in the prompt (e.g. the store path). */
  readonly what: string;
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly input?: PassphraseInput;
  /** Where the prompt goes (stderr). */
  readonly output?: NodeJS.WritableStream;
}

/** What a source is asked for. */
export interface PassphraseRequest {
  /** True when the store does not exist yet: an interactive source asks twice. */
  readonly creating: boolean;
  /** What the passphrase unlocks, shown in a prompt (e.g. the store path). */
  readonly what: string;
  /** Set when asking again because a remembered passphrase did not open the store: say so in the prompt. */
  readonly retryReason?: string;
}

/**
 * How the unlocker treats a source's passphrase when it does not open the store:
 * given = the user set it explicitly, fail; remembered = stale, fall back to asking; interactive = a person typed it.
 */
export type PassphraseSourceKind = 'given' | 'remembered' | 'interactive';

/** One place a passphrase can come from. */
export interface PassphraseSource {
  /** For messages: "KEYTUNNEL_PASSPHRASE", "the terminal", "the Secret Service", "pinentry". */
  readonly name: string;
  readonly kind: PassphraseSourceKind;
  /**
   * The passphrase, or undefined when this source has none here (variable unset, nothing remembered, no terminal).
   * Rejects with PassphraseError when a person cancelled or gave an unusable one (empty, too long, mismatch).
   */
  get(request: PassphraseRequest): Promise<string | undefined>;
  /**
   * Interactive sources may offer this: ask the person whether to remember the passphrase in `keychainName`.
   * Resolves false when they decline or the source cannot ask.
   */
  offerRemember?(keychainName: string): Promise<boolean>;
}

/** KEYTUNNEL_PASSPHRASE (kind "given": a wrong value is an error, never a reason to ask). */
export function envSource(env: Readonly<Record<string, string | undefined>> = process.env): PassphraseSource {
  return {
    name: PASSPHRASE_ENV,
    kind: 'given',
    async get() {
      const fromEnv = env[PASSPHRASE_ENV];
      return fromEnv === undefined ? undefined : check(fromEnv, `${PASSPHRASE_ENV} is set but`);
    },
  };
}

/** A no-echo prompt on a terminal; has nothing (undefined) when `input` is not a TTY. */
export function terminalSource(input: PassphraseInput = process.stdin, output: NodeJS.WritableStream = process.stderr): PassphraseSource {
  return {
    name: 'the terminal',
    kind: 'interactive',
    async get(request) {
      if (!input.isTTY) return undefined;
      if (request.retryReason !== undefined) output.write(`keytunnel: ${request.retryReason}\n`);
      if (request.creating) output.write(`keytunnel: creating a new encrypted store ${request.what}\n`);
      const first = check(await readHidden(input, output, `keytunnel: passphrase for ${request.what}: `), 'the passphrase');
      if (!request.creating) return first;
      const second = await readHidden(input, output, 'keytunnel: repeat the passphrase: ');
      if (second !== first) throw new PassphraseError('mismatch', 'the two passphrases differ; nothing was created');
      return first;
    },
    async offerRemember(keychainName) {
      if (!input.isTTY) return false;
      const answer = await readLine(
        input,
        output,
        `keytunnel: remember this passphrase in ${keychainName}, so the store unlocks with your login? [y/N] `,
        { echo: true, maxLength: 16 },
      ).catch(() => '');
      return /^\s*y(es)?\s*$/i.test(answer);
    },
  };
}

/** The message when no source had a passphrase. */
export function noSourceMessage(what: string): string {
  return `the state store ${what} needs a passphrase: set ${PASSPHRASE_ENV}, or run in a terminal to be asked`;
}

export async function obtainPassphrase(options: PassphraseOptions): Promise<string> {
  const request: PassphraseRequest = { creating: options.creating, what: options.what };
  for (const source of [envSource(options.env ?? process.env), terminalSource(options.input, options.output)]) {
    const passphrase = await source.get(request);
    if (passphrase !== undefined) return passphrase;
  }
  throw new PassphraseError('no-source', noSourceMessage(options.what));
}

function check(passphrase: string, subject: string): string {
  if (passphrase.length === 0) throw new PassphraseError('empty', `${subject} is empty`);
  if (passphrase.length > MAX_PASSPHRASE_LENGTH) {
    throw new PassphraseError('too-long', `${subject} is longer than ${MAX_PASSPHRASE_LENGTH} characters`);
  }
  return passphrase;
}

/**
 * Reads one line in raw mode without echo. Backspace edits; Enter ends; Ctrl-C or Ctrl-D (on an empty
 * line) cancels. Keys typed before the prompt appeared are discarded.
 */
export function readHidden(input: PassphraseInput, output: NodeJS.WritableStream, prompt: string): Promise<string> {
  return readLine(input, output, prompt, { echo: false, maxLength: MAX_PASSPHRASE_LENGTH });
}

/** `readHidden` with the echo and the length bound chosen (a short y/N answer is echoed). */
export function readLine(
  input: PassphraseInput,
  output: NodeJS.WritableStream,
  prompt: string,
  options: { readonly echo: boolean; readonly maxLength: number },
): Promise<string> {
  // Raw mode (no echo) before the prompt is shown: a fast typist or a paste must never be echoed by the tty.
  input.setRawMode?.(true);
  while (input.read() !== null) {
    /* drop type-ahead */
  }
  output.write(prompt);
  return new Promise<string>((resolve, reject) => {
    let chars: string[] = [];
    const done = (err: PassphraseError | null): void => {
      input.removeListener('data', onData);
      input.setRawMode?.(false);
      input.pause();
      output.write('\n');
      const text = chars.join('');
      chars = [];
      if (err) reject(err);
      else resolve(text);
    };
    const onData = (chunk: Buffer | string): void => {
      const text = typeof chunk === 'string' ? chunk : chunk.toString('utf8');
      for (const ch of text) {
        if (ch === '\r' || ch === '\n') return done(null);
        if (ch === '\x03' || (ch === '\x04' && chars.length === 0)) {
          return done(new PassphraseError('cancelled', 'passphrase entry cancelled'));
        }
        if (ch === '\x7f' || ch === '\b') {
          if (chars.pop() !== undefined && options.echo) output.write('\b \b');
          continue;
        }
        if (ch < ' ') continue; // other control keys are not part of a passphrase
        if (chars.length >= options.maxLength) {
          return done(new PassphraseError('too-long', `the ${options.echo ? 'answer' : 'passphrase'} is longer than ${options.maxLength} characters`));
        }
        chars.push(ch);
        if (options.echo) output.write(ch);
      }
    };
    input.on('data', onData);
    input.resume();
  });
}
