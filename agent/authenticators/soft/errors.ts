/**
 * The one error type command handlers throw: a CTAP2 status code (CTAP 2.1 PS 2021-06-15 §8.2). The dispatcher turns
 * it into a one-byte answer; nothing else is ever thrown on purpose, and anything else becomes CTAP1_ERR_OTHER.
 * Messages never carry secrets (no PIN, token, key material).
 */
import { KeytunnelError } from '../../../protocol/errors.ts';

export class CtapError extends KeytunnelError {
  override readonly name = 'CtapError';
  readonly status: number;
  constructor(status: number, message?: string) {
    super(message ?? `CTAP status 0x${status.toString(16).padStart(2, '0')}`);
    this.status = status;
  }

  /** The status byte is the code. */
  get code(): number {
    return this.status;
  }
}

/** Throw a CtapError with `status` (a terse helper for the many error branches of §6). */
export function fail(status: number, message?: string): never {
  throw new CtapError(status, message);
}
