/**
 * Input reports waiting for a host-side reader: what every `ReportPort` over a stream (TCP loopback, hidraw)
 * needs between "a report arrived" and `read(timeoutMs)`. One reader at a time; bounded (a flooding device loses
 * its oldest reports, counted in `dropped`); once failed, every read rejects with the failure.
 */
export class ReportQueue {
  private readonly queue: Uint8Array[] = [];
  private waiter:
    | { resolve: (r: Uint8Array | undefined) => void; reject: (e: Error) => void; timer: ReturnType<typeof setTimeout> }
    | undefined;
  private failure: Error | undefined;
  /** Reports dropped because the queue was full. */
  dropped = 0;

  constructor(
    private readonly capacity: number,
    private readonly what: string,
  ) {}

  /** The error the queue failed with, if it has. */
  get error(): Error | undefined {
    return this.failure;
  }

  push(report: Uint8Array): void {
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      clearTimeout(w.timer);
      w.resolve(report);
      return;
    }
    if (this.queue.length >= this.capacity) {
      this.queue.shift();
      this.dropped++;
    }
    this.queue.push(report);
  }

  /** The next report, or undefined when none arrives within `timeoutMs`. */
  read(timeoutMs: number): Promise<Uint8Array | undefined> {
    const next = this.queue.shift();
    if (next) return Promise.resolve(next);
    if (this.failure) return Promise.reject(this.failure);
    if (this.waiter) return Promise.reject(new Error(`concurrent read on a ${this.what}`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        resolve(undefined);
      }, Math.max(0, timeoutMs));
      this.waiter = { resolve, reject, timer };
    });
  }

  /** Fail the pending and every later read (first failure wins). */
  fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      clearTimeout(w.timer);
      w.reject(err);
    }
  }
}
