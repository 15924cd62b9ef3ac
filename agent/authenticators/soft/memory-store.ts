/**
 * An in-memory StateStore (tests, benchmarks): keeps a copy of the last saved state.
 */
import type { StateStore } from './ports.ts';

export class MemoryStateStore implements StateStore {
  private data: Uint8Array | null;
  /** Number of completed saves (lets tests assert that a request did or did not persist anything). */
  saves = 0;
  constructor(initial?: Uint8Array) {
    this.data = initial ? Uint8Array.from(initial) : null;
  }
  async load(): Promise<Uint8Array | null> {
    return this.data === null ? null : Uint8Array.from(this.data);
  }
  async save(state: Uint8Array): Promise<void> {
    this.data = Uint8Array.from(state);
    this.saves++;
  }
  /** The last saved bytes (null before the first save). */
  snapshot(): Uint8Array | null {
    return this.data === null ? null : Uint8Array.from(this.data);
  }
}
