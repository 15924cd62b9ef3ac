/**
 * The one time port: every module that reads the time or waits (the CTAPHID device engine, the uhid input pacer,
 * the gateway's grace period, key discovery, the tunnel's reconnect loop, the soft authenticator) takes a `Clock`
 * instead of calling the globals, so a 30-second rule is tested in microseconds with the one fake in
 * test/support/fake-clock.ts (the idea of OpenSK's `env/test`).
 *
 * This module holds the type and the two system implementations, which only forward to the runtime's own timer
 * functions: nothing here does I/O or starts a timer by itself, so protocol/ stays pure. A module that only reads
 * the time asks for `Pick<Clock, 'now'>`.
 */

export interface Clock {
  /** Milliseconds: wall time for {@link systemClock}, a monotonic count for {@link monotonicClock}. */
  now(): number;
  /** Runs `fn` once after about `ms` milliseconds; the handle is only good for {@link clearTimeout}. */
  setTimeout(fn: () => void, ms: number): unknown;
  /** Cancels a timer that has not fired yet; a stale or unknown handle is ignored. */
  clearTimeout(handle: unknown): void;
}

const setTimer = (fn: () => void, ms: number): unknown => setTimeout(fn, ms);
const clearTimer = (handle: unknown): void => clearTimeout(handle as ReturnType<typeof setTimeout>);

/** The runtime's timers with `Date.now` (wall time: what a timestamp is stamped with). */
export const systemClock: Clock = { now: () => Date.now(), setTimeout: setTimer, clearTimeout: clearTimer };

/** The runtime's timers with `performance.now` (monotonic: for intervals that must not jump with the wall clock). */
export const monotonicClock: Clock = { now: () => performance.now(), setTimeout: setTimer, clearTimeout: clearTimer };
