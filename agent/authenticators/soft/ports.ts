/**
 * Ports of the soft authenticator: everything it needs from the outside world, so every rule is testable
 * without sleeping, a terminal or a disk (the idea of OpenSK's `api/` traits). User presence is its own port,
 * shared with the policy: agent/presence/port.ts.
 */
import type { Clock as ClockPort } from '../../../protocol/clock.ts';

/** Wall clock in milliseconds (Date.now semantics): the read side of the one time port, protocol/clock.ts. */
export type Clock = Pick<ClockPort, 'now'>;

/** Cryptographically secure random bytes. Tests may inject a deterministic source. */
export interface Random {
  bytes(length: number): Uint8Array;
}

/**
 * Persistence of the authenticator's whole state as one opaque blob (the authenticator serialises it; the
 * store encrypts it and writes it atomically). `save` resolves only once the bytes are durable, so the
 * authenticator awaits it before answering any command that changed state. `load` answers null for a store
 * that was never written; a wrong passphrase or a corrupted file rejects with a clear error, never null.
 */
export interface StateStore {
  load(): Promise<Uint8Array | null>;
  save(state: Uint8Array): Promise<void>;
}
