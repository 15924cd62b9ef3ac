/**
 * Auto-reconnect for the dialing side: keep one tunnel connection up, retrying with capped exponential backoff and
 * jitter (so a fleet of VMs restarting together does not reconnect in lock-step).
 *
 * Delay before retry n (n = 0, 1, 2, ... consecutive failures): base = min(maxMs, initialMs * factor^n), then
 * jittered down uniformly into [base * (1 - jitter), base]. The failure count resets only after a connection has
 * stayed up for `stableAfterMs`, so a peer that accepts and then drops at once still backs off. The clock
 * (protocol/clock.ts) and randomness are injectable for tests.
 */
import type { Logger } from '../protocol/logger.ts';
import { monotonicClock, type Clock } from '../protocol/clock.ts';

export interface BackoffPolicy {
  /** First retry delay (ms). */
  readonly initialMs: number;
  /** Cap (ms). */
  readonly maxMs: number;
  /** Growth per consecutive failure. */
  readonly factor: number;
  /** Fraction 0..1 of the delay that is randomised away. */
  readonly jitter: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 500, maxMs: 30_000, factor: 2, jitter: 0.5 };
/** A connection that lasted this long counts as healthy and resets the backoff. */
export const DEFAULT_STABLE_AFTER_MS = 10_000;

/** The delay (ms) before retry number `attempt` (0-based), with `random()` in [0, 1). */
export function backoffDelay(attempt: number, policy: BackoffPolicy = DEFAULT_BACKOFF, random: () => number = Math.random): number {
  const n = Math.max(0, Math.floor(attempt));
  const base = Math.min(policy.maxMs, policy.initialMs * policy.factor ** n);
  const r = Math.min(Math.max(random(), 0), 1);
  return Math.round(base * (1 - Math.min(Math.max(policy.jitter, 0), 1) * r));
}

/** What the reconnector needs from a connection (PeerConnection satisfies it). */
export interface ReconnectableConnection {
  readonly closed: Promise<unknown>;
  close(reason?: string): void;
}

export interface ReconnectOptions<T extends ReconnectableConnection> {
  /** Make one connection attempt (e.g. `() => dial(endpoint, identity, trust, options)`). */
  connect(): Promise<T>;
  /** Called with each established connection; the reconnector waits for it to close, then reconnects. */
  onConnected(conn: T): void;
  readonly log: Logger;
  /** What is being dialled, for log lines (e.g. "agent at 10.0.2.2:7531"). */
  readonly target?: string;
  readonly backoff?: Partial<BackoffPolicy>;
  readonly stableAfterMs?: number;
  readonly random?: () => number;
  /** Time and timers (default monotonic: performance.now). */
  readonly clock?: Clock;
}

export class Reconnector<T extends ReconnectableConnection> {
  private readonly policy: BackoffPolicy;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly stableAfterMs: number;
  private stopped = true;
  private failures = 0;
  private current: T | undefined;
  private sleeping: { handle: unknown; wake(): void } | undefined;
  private loop: Promise<void> | undefined;

  constructor(private readonly options: ReconnectOptions<T>) {
    this.policy = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.clock = options.clock ?? monotonicClock;
    this.random = options.random ?? Math.random;
    this.stableAfterMs = options.stableAfterMs ?? DEFAULT_STABLE_AFTER_MS;
  }

  /** Consecutive failures so far (drives the next delay). */
  get consecutiveFailures(): number {
    return this.failures;
  }

  /** The live connection, if any. */
  get connection(): T | undefined {
    return this.current;
  }

  /** Start connecting (idempotent). */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.loop = this.run();
  }

  /** Stop: cancel a pending retry, close the live connection, and wait for the loop to finish. */
  async close(): Promise<void> {
    this.stopped = true;
    if (this.sleeping) {
      this.clock.clearTimeout(this.sleeping.handle);
      this.sleeping.wake();
    }
    this.current?.close('shutting down');
    await this.loop;
  }

  private async run(): Promise<void> {
    const { log } = this.options;
    const target = this.options.target ?? 'peer';
    while (!this.stopped) {
      let conn: T;
      try {
        conn = await this.options.connect();
      } catch (err) {
        if (this.stopped) break;
        const delay = backoffDelay(this.failures, this.policy, this.random);
        this.failures++;
        log.warn({ err: (err as Error).message, retryInMs: delay, failures: this.failures }, `cannot connect to ${target}`);
        await this.sleep(delay);
        continue;
      }
      if (this.stopped) {
        conn.close('shutting down');
        break;
      }
      const since = this.clock.now();
      this.current = conn;
      try {
        this.options.onConnected(conn);
      } catch (err) {
        log.error({ err: (err as Error).message }, 'connection handler failed; closing the connection');
        conn.close('connection handler failed');
      }
      await conn.closed;
      this.current = undefined;
      if (this.stopped) break;
      if (this.clock.now() - since >= this.stableAfterMs) this.failures = 0;
      const delay = backoffDelay(this.failures, this.policy, this.random);
      this.failures++;
      log.info({ retryInMs: delay }, `connection to ${target} lost; reconnecting`);
      await this.sleep(delay);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        this.sleeping = undefined;
        resolve();
      };
      this.sleeping = { handle: this.clock.setTimeout(wake, ms), wake };
    });
  }
}
