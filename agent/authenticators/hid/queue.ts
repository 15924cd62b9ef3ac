/**
 * One transaction at a time per key, first come first served across callers — a real key has one CTAPHID
 * channel and answers one message at a time (CTAP 2.1 §11.2, USB HID: a request from another channel while one
 * is pending is answered ERR_CHANNEL_BUSY), and several VMs may share one key.
 *
 * Rules:
 *   - tasks start strictly in arrival order, never overlapping;
 *   - a task aborted while still queued leaves the queue without ever running (the key is not touched);
 *   - a task aborted while running rejects its caller at once, but the slot is held until the task itself
 *     settles, so the key has finished with the cancelled message before the next one is sent;
 *   - `fail(err)` (key removed / closed) rejects the running caller and everything queued with `err`, and
 *     every later `run` fails fast with it;
 *   - the queue is bounded (`limit` waiting tasks) so an untrusted gateway cannot pile up work.
 */
import { HidQueueFullError } from './errors.ts';

/** The work: given a signal that aborts on the caller's abort or on `fail`, do one transaction. */
export type QueueTask<T> = (signal: AbortSignal) => Promise<T>;

interface Entry {
  readonly start: () => void;
  readonly reject: (err: unknown) => void;
  readonly detach: () => void;
}

export const DEFAULT_QUEUE_LIMIT = 32;

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('The operation was aborted', 'AbortError');
}

export class TransactionQueue {
  private readonly limit: number;
  private readonly waiting: Entry[] = [];
  private running: { readonly controller: AbortController; readonly reject: (err: unknown) => void } | null = null;
  private failure: { readonly error: unknown } | null = null;

  constructor(options: { limit?: number } = {}) {
    this.limit = Math.max(1, options.limit ?? DEFAULT_QUEUE_LIMIT);
  }

  /** Number of tasks waiting (not counting the running one). */
  get pending(): number {
    return this.waiting.length;
  }

  /** Whether a task holds the key right now. */
  get busy(): boolean {
    return this.running !== null;
  }

  /** Run `task` when its turn comes. Rejects with the abort reason, the `fail` error, or the task's own error. */
  run<T>(task: QueueTask<T>, signal?: AbortSignal): Promise<T> {
    if (this.failure) return Promise.reject(this.failure.error);
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    if (this.waiting.length >= this.limit) return Promise.reject(new HidQueueFullError(this.limit));

    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const settle = (fn: () => void): void => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener('abort', onAbort);
        fn();
      };
      const entry: Entry = {
        start: () => {
          const controller = new AbortController();
          const slot = { controller, reject: (err: unknown) => settle(() => reject(err)) };
          this.running = slot;
          if (signal?.aborted) controller.abort(signal.reason);
          let done: Promise<T>;
          try {
            done = task(controller.signal);
          } catch (err) {
            done = Promise.reject(err);
          }
          done.then(
            (value) => settle(() => resolve(value)),
            (err: unknown) => settle(() => reject(err)),
          ).finally(() => {
            if (this.running === slot) this.running = null;
            this.next();
          });
        },
        reject: (err) => settle(() => reject(err)),
        detach: () => signal?.removeEventListener('abort', onAbort),
      };
      const onAbort = (): void => {
        const reason = abortReason(signal!);
        const index = this.waiting.indexOf(entry);
        if (index >= 0) {
          // Still queued: leave without touching the key.
          this.waiting.splice(index, 1);
          settle(() => reject(reason));
          return;
        }
        if (this.running && !settled) {
          // Running: tell the task (it cancels on the key), answer the caller now, keep the slot until it settles.
          this.running.controller.abort(reason);
          settle(() => reject(reason));
        }
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(entry);
      if (!this.running) this.next();
    });
  }

  /**
   * Fail the queue for good (the key was removed or closed): abort the running task, reject its caller and
   * every waiting caller with `error` at once, and make every later `run` reject with it.
   */
  fail(error: unknown): void {
    if (!this.failure) this.failure = { error };
    const waiting = this.waiting.splice(0);
    for (const entry of waiting) {
      entry.detach();
      entry.reject(error);
    }
    if (this.running) {
      this.running.controller.abort(error);
      this.running.reject(error);
    }
  }

  /** Whether `fail` was called. */
  get failed(): boolean {
    return this.failure !== null;
  }

  private next(): void {
    if (this.running) return;
    const entry = this.waiting.shift();
    if (entry) entry.start();
  }
}
