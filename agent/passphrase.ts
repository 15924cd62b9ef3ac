/**
 * Where the state-store passphrase comes from: the KEYTUNNEL_PASSPHRASE environment variable, else a no-echo
 * prompt on the terminal (asked twice when a new store is being created, so a typo cannot lock the user out),
 * else a clear error naming the variable. The passphrase is returned to the caller and never logged or echoed.
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

export async function obtainPassphrase(options: PassphraseOptions): Promise<string> {
  const env = options.env ?? process.env;
  const fromEnv = env[PASSPHRASE_ENV];
  if (fromEnv !== undefined) return check(fromEnv, `${PASSPHRASE_ENV} is set but`);
  const input = options.input ?? process.stdin;
  const output = options.output ?? process.stderr;
  if (!input.isTTY) {
    throw new PassphraseError(
      'no-source',
      `the state store ${options.what} needs a passphrase: set ${PASSPHRASE_ENV}, or run in a terminal to be asked`,
    );
  }
  if (options.creating) output.write(`keytunnel: creating a new encrypted store ${options.what}\n`);
  const first = check(await readHidden(input, output, `keytunnel: passphrase for ${options.what}: `), 'the passphrase');
  if (!options.creating) return first;
  const second = await readHidden(input, output, 'keytunnel: repeat the passphrase: ');
  if (second !== first) throw new PassphraseError('mismatch', 'the two passphrases differ; nothing was created');
  return first;
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
          chars.pop();
          continue;
        }
        if (ch < ' ') continue; // other control keys are not part of a passphrase
        if (chars.length >= MAX_PASSPHRASE_LENGTH) {
          return done(new PassphraseError('too-long', `the passphrase is longer than ${MAX_PASSPHRASE_LENGTH} characters`));
        }
        chars.push(ch);
      }
    };
    input.on('data', onData);
    input.resume();
  });
}
