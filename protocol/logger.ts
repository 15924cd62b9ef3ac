/**
 * The one logging port: what every layer (device faces, tunnel, agent, gateway, policy) logs through. pino's
 * Logger satisfies it, so the CLI passes its pino instance (cli/log.ts); tests pass a recorder or
 * {@link silentLogger}. Always a fields object, then the message. Never give it secrets.
 */
export interface Logger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** Drops everything (the default where a logger is optional). */
export const silentLogger: Logger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
};
