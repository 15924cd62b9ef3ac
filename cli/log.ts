/**
 * The one logger factory every `keytunnel` command uses: pino, always on stderr (stdout belongs to command
 * output), human-readable when stderr is a terminal and one JSON object per line otherwise (journald, CI,
 * log shippers). The level comes from `--log-level`, else KEYTUNNEL_LOG_LEVEL, else "info".
 *
 * Secrets must never be logged; as a second line of defence the usual secret-bearing keys are redacted
 * wherever they appear (top level or one level down).
 */
import { pino, type Logger } from 'pino';
import { createRequire } from 'node:module';
import type PinoPretty from 'pino-pretty';
import { KeytunnelError } from '../protocol/errors.ts';

/** The concrete logger commands create (pino); the layers below take it as their port, protocol/logger.ts. */
export type { Logger } from 'pino';

export const LOG_LEVEL_ENV = 'KEYTUNNEL_LOG_LEVEL';
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const DEFAULT_LOG_LEVEL: LogLevel = 'info';

const SECRET_KEYS = ['pin', 'newPin', 'passphrase', 'password', 'token', 'pinUvAuthToken', 'privateKey', 'secretKey', 'secret'];
export const REDACT_PATHS: readonly string[] = SECRET_KEYS.flatMap((k) => [k, `*.${k}`]);

export class LogConfigError extends KeytunnelError {
  override readonly name = 'LogConfigError';
  readonly code = 'LOG_CONFIG';
  constructor(message: string) {
    super(message);
  }
}

function isLogLevel(value: string): value is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(value);
}

/** `--log-level` wins over KEYTUNNEL_LOG_LEVEL; an unknown name is an error, not a silent default. */
export function resolveLogLevel(flag: string | undefined, env: Readonly<Record<string, string | undefined>> = process.env): LogLevel {
  const [value, source] =
    flag !== undefined && flag !== '' ? [flag, '--log-level'] : [env[LOG_LEVEL_ENV] ?? '', LOG_LEVEL_ENV];
  if (value === '') return DEFAULT_LOG_LEVEL;
  const lower = value.trim().toLowerCase();
  if (!isLogLevel(lower)) {
    throw new LogConfigError(`${source} ${JSON.stringify(value)} is not a log level; use one of ${LOG_LEVELS.join(', ')}`);
  }
  return lower;
}

export interface CreateLoggerOptions {
  /** The `--log-level` flag value, if any. */
  readonly level?: string;
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Component name added to every line (e.g. "soft"). */
  readonly name?: string;
  /** Where lines go (default process.stderr); tests pass a stream. Never stdout. */
  readonly destination?: NodeJS.WritableStream & { readonly isTTY?: boolean };
  /** Force pretty (true) or JSON (false); default: pretty exactly when the destination is a TTY. */
  readonly pretty?: boolean;
}

export function createLogger(options: CreateLoggerOptions = {}): Logger {
  const level = resolveLogLevel(options.level, options.env);
  const destination = options.destination ?? process.stderr;
  const usePretty = options.pretty ?? destination.isTTY === true;
  const base = {
    level,
    name: options.name,
    base: { pid: process.pid },
    redact: { paths: [...REDACT_PATHS], censor: '[redacted]' },
  };
  if (usePretty) {
    // Loaded only for a terminal: services (JSON to journald) never carry pino-pretty's dependencies in memory.
    const pretty = createRequire(import.meta.url)('pino-pretty') as typeof PinoPretty;
    const stream = pretty({
      destination,
      sync: true,
      colorize: destination.isTTY === true,
      ignore: 'pid,hostname',
      translateTime: 'HH:MM:ss.l',
    });
    return pino(base, stream);
  }
  return pino(base, destination);
}

/** The yargs option every command declares, so `--log-level` means the same thing everywhere. */
export const logLevelOption = {
  'log-level': {
    type: 'string',
    describe: `Log verbosity (${LOG_LEVELS.join('|')}); default from ${LOG_LEVEL_ENV}, else ${DEFAULT_LOG_LEVEL}. Logs go to stderr.`,
  },
} as const;
