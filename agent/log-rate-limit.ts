/**
 * Rate limit for log lines a peer can cause (a gateway's ERROR frames): a token bucket, so the first `burst`
 * lines are logged at once and then at most one per `intervalMs`; what is dropped is counted, and the count is
 * reported ("N similar messages suppressed") with the next line that gets through and when the peer goes away.
 * A VM that sends a thousand ERROR frames a second thus costs the agent's log a few lines a minute.
 */

export interface LogRateLimitOptions {
  /** Lines logged at once after a quiet period (default 10). */
  readonly burst?: number;
  /** One more line allowed per interval once the burst is used (default 10 s). */
  readonly intervalMs?: number;
  /** Monotonic-enough milliseconds (default Date.now; a clock going back is treated as no time passing). */
  readonly now?: () => number;
}

export const DEFAULT_LOG_BURST = 10;
export const DEFAULT_LOG_INTERVAL_MS = 10_000;

export class LogRateLimit {
  private readonly burst: number;
  private readonly intervalMs: number;
  private readonly now: () => number;
  private tokens: number;
  private last: number;
  private suppressedCount = 0;

  constructor(options: LogRateLimitOptions = {}) {
    this.burst = options.burst ?? DEFAULT_LOG_BURST;
    this.intervalMs = options.intervalMs ?? DEFAULT_LOG_INTERVAL_MS;
    if (!(this.burst >= 1) || !(this.intervalMs > 0)) throw new RangeError('log rate limit: burst >= 1 and interval > 0');
    this.now = options.now ?? Date.now;
    this.tokens = this.burst;
    this.last = this.now();
  }

  /**
   * Asks to log one line. Returns undefined when it must be dropped (and counts it); otherwise the number of
   * lines dropped since the last one that got through (0 when none), which the caller reports first.
   */
  take(): number | undefined {
    const now = this.now();
    const elapsed = Math.max(0, now - this.last);
    this.last = now;
    this.tokens = Math.min(this.burst, this.tokens + elapsed / this.intervalMs);
    if (this.tokens < 1) {
      this.suppressedCount++;
      return undefined;
    }
    this.tokens -= 1;
    const suppressed = this.suppressedCount;
    this.suppressedCount = 0;
    return suppressed;
  }

  /** Lines dropped and not yet reported; reading it resets the count (call when the peer goes away). */
  drainSuppressed(): number {
    const n = this.suppressedCount;
    this.suppressedCount = 0;
    return n;
  }
}
