/** A manual clock for timer-driven code: `advance(ms)` fires due timers in order, no real waiting. */
import type { DiscoveryTimers } from '../../../../agent/authenticators/hardware/discovery.ts';

interface Timer {
  readonly id: number;
  readonly due: number;
  readonly fn: () => void;
}

export class ManualTimers implements DiscoveryTimers {
  now = 0;
  private nextId = 1;
  private timers: Timer[] = [];

  setTimeout(fn: () => void, ms: number): unknown {
    const timer = { id: this.nextId++, due: this.now + Math.max(0, ms), fn };
    this.timers.push(timer);
    return timer.id;
  }

  clearTimeout(handle: unknown): void {
    this.timers = this.timers.filter((t) => t.id !== handle);
  }

  get pending(): number {
    return this.timers.length;
  }

  /** Advance the clock by `ms`, firing due timers in due order and letting promise chains run between them. */
  async advance(ms: number): Promise<void> {
    const target = this.now + ms;
    for (;;) {
      await settle();
      const due = this.timers.filter((t) => t.due <= target).sort((a, b) => a.due - b.due || a.id - b.id)[0];
      if (!due) break;
      this.timers = this.timers.filter((t) => t !== due);
      this.now = due.due;
      due.fn();
    }
    this.now = target;
    await settle();
  }
}

/** Let queued promise callbacks and immediates run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
}
