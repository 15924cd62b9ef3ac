/**
 * One transaction at a time per key, shared fairly between callers — a real key has one CTAPHID channel and
 * answers one message at a time (CTAP 2.1 PS 2021-06-15 §11.2.5.1: a request from another channel while one is
 * pending is answered ERR_CHANNEL_BUSY), and several VMs may share one key. This queue is the one place the agent
 * orders transactions on a key: the CtaphidChannel under it (ctaphid-client.ts) keeps no queue of its own.
 *
 * Rules:
 *   - tasks never overlap; each origin (a gateway's certificate fingerprint; '' for the agent itself) has its own
 *     FIFO sub-queue, and the sub-queues are served round-robin, one task each in turn, so a gateway with a
 *     backlog delays another gateway by at most one of its tasks, not by its whole backlog;
 *   - a task aborted while still queued leaves the queue without ever running (the key is not touched);
 *   - a task aborted while running rejects its caller at once, but the slot is held until the task itself
 *     settles, so the key has finished with the cancelled message before the next one is sent;
 *   - `fail(err)` (key removed / closed) rejects the running caller and everything queued with `err`, and
 *     every later `run` fails fast with it;
 *   - the queue is bounded so an untrusted gateway cannot pile up work: at most `perOriginLimit` tasks wait per
 *     origin, and an origin that already has tasks waiting is refused once `limit` tasks wait in all; an origin
 *     with nothing waiting is always admitted (one gateway's backlog never refuses another gateway's first request).
 *     The total is thus bounded by `limit` + the number of origins (the trusted gateways).
 */
import { HidQueueFullError } from './errors.ts';

/** The work: given a signal that aborts on the caller's abort or on `fail`, do one transaction. */
export type QueueTask<T> = (signal: AbortSignal) => Promise<T>;

interface Entry {
  readonly origin: string;
  readonly start: () => void;
  readonly reject: (err: unknown) => void;
  readonly detach: () => void;
}

export const DEFAULT_QUEUE_LIMIT = 32;
/** Tasks one origin may have waiting: a VM's client sends one CTAP request per device at a time. */
export const DEFAULT_PER_ORIGIN_QUEUE_LIMIT = 8;

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('The operation was aborted', 'AbortError');
}

export class TransactionQueue {
  private readonly limit: number;
  private readonly perOriginLimit: number;
  /** Waiting tasks per origin, each FIFO. */
  private readonly waiting = new Map<string, Entry[]>();
  /** Origins with waiting tasks, in the order they are served next (round-robin). */
  private readonly ring: string[] = [];
  private waitingCount = 0;
  private lastOrigin: string | undefined;
  private running: { readonly controller: AbortController; readonly reject: (err: unknown) => void } | null = null;
  private failure: { readonly error: unknown } | null = null;

  constructor(options: { limit?: number; perOriginLimit?: number } = {}) {
    this.limit = Math.max(1, options.limit ?? DEFAULT_QUEUE_LIMIT);
    this.perOriginLimit = Math.max(1, Math.min(options.perOriginLimit ?? DEFAULT_PER_ORIGIN_QUEUE_LIMIT, this.limit));
  }

  /** Number of tasks waiting (not counting the running one). */
  get pending(): number {
    return this.waitingCount;
  }

  /** Number of tasks of `origin` waiting. */
  pendingFor(origin: string): number {
    return this.waiting.get(origin)?.length ?? 0;
  }

  /** Whether a task holds the key right now. */
  get busy(): boolean {
    return this.running !== null;
  }

  /**
   * Run `task` when its turn comes; `origin` names the caller for fairness (default '': local). Rejects with the
   * abort reason, the `fail` error, HidQueueFullError, or the task's own error.
   */
  run<T>(task: QueueTask<T>, signal?: AbortSignal, origin = ''): Promise<T> {
    if (this.failure) return Promise.reject(this.failure.error);
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    const mine = this.pendingFor(origin);
    if (mine >= this.perOriginLimit) return Promise.reject(new HidQueueFullError(this.perOriginLimit));
    if (mine > 0 && this.waitingCount >= this.limit) return Promise.reject(new HidQueueFullError(this.limit));

    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const settle = (fn: () => void): void => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener('abort', onAbort);
        fn();
      };
      const entry: Entry = {
        origin,
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
        if (this.dequeue(entry)) {
          // Still queued: leave without touching the key.
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
      this.enqueue(entry);
      if (!this.running) this.next();
    });
  }

  /**
   * Fail the queue for good (the key was removed or closed): abort the running task, reject its caller and
   * every waiting caller with `error` at once, and make every later `run` reject with it.
   */
  fail(error: unknown): void {
    if (!this.failure) this.failure = { error };
    const waiting = [...this.waiting.values()].flat();
    this.waiting.clear();
    this.ring.length = 0;
    this.waitingCount = 0;
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

  private enqueue(entry: Entry): void {
    let queue = this.waiting.get(entry.origin);
    if (queue === undefined) {
      this.waiting.set(entry.origin, (queue = []));
      this.ring.push(entry.origin);
    }
    queue.push(entry);
    this.waitingCount++;
  }

  /** Take a waiting entry out of its sub-queue; false when it is not waiting (running or done). */
  private dequeue(entry: Entry): boolean {
    const queue = this.waiting.get(entry.origin);
    const index = queue?.indexOf(entry) ?? -1;
    if (index < 0) return false;
    queue!.splice(index, 1);
    this.waitingCount--;
    if (queue!.length === 0) this.dropOrigin(entry.origin);
    return true;
  }

  private dropOrigin(origin: string): void {
    this.waiting.delete(origin);
    const at = this.ring.indexOf(origin);
    if (at >= 0) this.ring.splice(at, 1);
  }

  /** Start the next task: the next origin in the ring, skipping the one served last while others wait. */
  private next(): void {
    if (this.running || this.ring.length === 0) return;
    if (this.ring.length > 1 && this.ring[0] === this.lastOrigin) this.ring.push(this.ring.shift()!);
    const origin = this.ring.shift()!;
    const queue = this.waiting.get(origin)!;
    const entry = queue.shift()!;
    this.waitingCount--;
    if (queue.length > 0) this.ring.push(origin);
    else this.waiting.delete(origin);
    this.lastOrigin = origin;
    entry.start();
  }
}
