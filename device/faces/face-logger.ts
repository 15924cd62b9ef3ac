/**
 * The logger shape the HID faces (uhid, USB/IP) log through: the subset of pino's Logger they use, so the CLI can
 * pass its pino instance and tests can pass a recorder. Never give it secrets; faces only log framing facts.
 */
export interface FaceLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/** Drops everything (the default when no logger is given). */
export const silentLogger: FaceLogger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
};
