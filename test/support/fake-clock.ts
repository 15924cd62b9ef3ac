/**
 * The one fake of the time port (protocol/clock.ts): time stands still until a test moves it, and moving it fires
 * the timers that fall due, in due order (ties in the order they were set), each at its own instant.
 *
 * `advance(ms)` is synchronous, for code whose timers do their work at once; `advanceAsync(ms)` lets promise
 * chains and immediates run before and after each timer, for code that awaits between timers.
 */
import type { Clock } from '../../protocol/clock.ts';

interface Timer {
  readonly id: number;
  readonly at: number;
  readonly fn: () => void;
}

/** A plausible wall time (November 2023), so code that stamps dates sees a real-looking one. */
export const FAKE_EPOCH_MS = 1_700_000_000_000;

export class FakeClock implements Clock {
  /** The fake time in milliseconds. */
  t: number;
  /** Every delay asked for, in order (cancelled ones included). */
  readonly scheduled: number[] = [];
  private nextId = 1;
  private timers: Timer[] = [];

  constructor(start = FAKE_EPOCH_MS) {
    this.t = start;
  }

  // Arrow properties: the methods keep working when passed around detached (`{ now: clock.now }`).
  now = (): number => this.t;

  setTimeout = (fn: () => void, ms: number): unknown => {
    const timer = { id: this.nextId++, at: this.t + Math.max(0, ms), fn };
    this.timers.push(timer);
    this.scheduled.push(ms);
    return timer.id;
  };

  clearTimeout = (handle: unknown): void => {
    this.timers = this.timers.filter((t) => t.id !== handle);
  };

  /** Timers set and neither fired nor cancelled. */
  get pending(): number {
    return this.timers.length;
  }

  /** Moves time forward by `ms`, firing due timers in order. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (let due = this.nextDue(end); due; due = this.nextDue(end)) this.fire(due);
    this.t = end;
  }

  /** {@link advance} for code that awaits: settles promise chains before and after every timer. */
  async advanceAsync(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      await settle();
      const due = this.nextDue(end);
      if (!due) break;
      this.fire(due);
    }
    this.t = end;
    await settle();
  }

  private nextDue(end: number): Timer | undefined {
    let next: Timer | undefined;
    for (const t of this.timers) if (t.at <= end && (!next || t.at < next.at || (t.at === next.at && t.id < next.id))) next = t;
    return next;
  }

  private fire(timer: Timer): void {
    this.timers = this.timers.filter((t) => t !== timer);
    this.t = Math.max(this.t, timer.at);
    timer.fn();
  }
}

/** Lets queued promise callbacks and immediates run (a few rounds, for chains that hop through several). */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
}
