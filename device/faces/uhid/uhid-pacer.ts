/**
 * Paces the input reports a uhid device sends. A real USB key is paced by the host's interrupt polling; a uhid
 * device is not, and hidraw keeps at most 64 unread input reports per open file and drops newer ones. So a long
 * answer written all at once (a 7609-byte message is 129 reports) loses reports at a client that reads slowly.
 *
 * A token bucket: up to `burst` reports go out at once (a message of up to 32 reports, which covers CTAP's usual
 * 1200-byte maxMsgSize, is not delayed at all), then one report per `intervalMs`. Order is preserved. Time and
 * timers are injected (protocol/clock.ts) so the rule is tested without sleeping.
 */
import { monotonicClock, type Clock } from '../../../protocol/clock.ts';


export interface PacerOptions {
  /** Reports sent without delay after an idle period (default 32). */
  readonly burst?: number;
  /** Interval between reports once the burst is used up (default 1 ms). */
  readonly intervalMs?: number;
  /** Time and timers (default monotonic: performance.now). */
  readonly clock?: Clock;
}

export class InputPacer {
  private readonly burst: number;
  private readonly intervalMs: number;
  private readonly clock: Clock;
  private tokens: number;
  private last: number;
  private readonly queue: Uint8Array[] = [];
  private timer: unknown = undefined;

  constructor(
    private readonly write: (report: Uint8Array) => void,
    opts: PacerOptions = {},
  ) {
    this.burst = opts.burst ?? 32;
    this.intervalMs = opts.intervalMs ?? 1;
    if (!(this.burst >= 1) || !(this.intervalMs > 0)) throw new RangeError('pacer burst must be >= 1 and interval > 0');
    this.clock = opts.clock ?? monotonicClock;
    this.tokens = this.burst;
    this.last = this.clock.now();
  }

  /** Reports waiting for their turn. */
  get pending(): number {
    return this.queue.length;
  }

  send(report: Uint8Array): void {
    this.refill();
    if (this.queue.length === 0 && this.tokens >= 1) {
      this.tokens -= 1;
      this.write(report);
      return;
    }
    this.queue.push(report);
    this.arm();
  }

  /** Drop everything queued (the host went away) and stop the timer. */
  clear(): void {
    this.queue.length = 0;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private refill(): void {
    const now = this.clock.now();
    this.tokens = Math.min(this.burst, this.tokens + (now - this.last) / this.intervalMs);
    this.last = now;
  }

  private arm(): void {
    if (this.timer !== undefined) return;
    const wait = Math.max(0, (1 - this.tokens) * this.intervalMs);
    this.timer = this.clock.setTimeout(() => this.flush(), wait);
  }

  private flush(): void {
    this.timer = undefined;
    this.refill();
    while (this.queue.length > 0 && this.tokens >= 1) {
      this.tokens -= 1;
      this.write(this.queue.shift() as Uint8Array);
    }
    if (this.queue.length > 0) this.arm();
  }
}
