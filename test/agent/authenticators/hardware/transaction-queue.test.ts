import { describe, expect, it } from 'vitest';
import { HidDeviceRemovedError, HidQueueFullError } from '../../../../agent/authenticators/hardware/errors.ts';
import { TransactionQueue } from '../../../../agent/authenticators/hardware/transaction-queue.ts';

/** A task whose completion the test controls, recording when it started and what signal it got. */
function deferredTask<T>(log: string[], name: string) {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  let signal: AbortSignal | undefined;
  const done = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return {
    task: (s: AbortSignal) => {
      signal = s;
      log.push(`start ${name}`);
      return done;
    },
    resolve,
    reject,
    get signal() {
      return signal;
    },
  };
}

const flush = () => new Promise<void>((r) => setImmediate(r));

describe('TransactionQueue', () => {
  it('runs one task at a time in arrival order (FIFO across callers)', async () => {
    const q = new TransactionQueue();
    const log: string[] = [];
    const tasks = ['a', 'b', 'c'].map((n) => deferredTask<string>(log, n));
    const results = tasks.map((t) => q.run(t.task));
    await flush();
    expect(log).toEqual(['start a']);
    expect(q.busy).toBe(true);
    expect(q.pending).toBe(2);
    tasks[0].resolve('A');
    await flush();
    expect(log).toEqual(['start a', 'start b']);
    tasks[1].resolve('B');
    await flush();
    tasks[2].resolve('C');
    expect(await Promise.all(results)).toEqual(['A', 'B', 'C']);
    expect(log).toEqual(['start a', 'start b', 'start c']);
    expect(q.busy).toBe(false);
  });

  it('a task that fails does not block the next one', async () => {
    const q = new TransactionQueue();
    const first = q.run(async () => {
      throw new Error('boom');
    });
    const second = q.run(() => {
      throw new Error('sync boom');
    });
    const third = q.run(async () => 3);
    await expect(first).rejects.toThrow('boom');
    await expect(second).rejects.toThrow('sync boom');
    expect(await third).toBe(3);
  });

  it('a request aborted while queued leaves the queue without ever touching the key', async () => {
    const q = new TransactionQueue();
    const log: string[] = [];
    const a = deferredTask<string>(log, 'a');
    const b = deferredTask<string>(log, 'b');
    const c = deferredTask<string>(log, 'c');
    const ac = new AbortController();
    const pa = q.run(a.task);
    const pb = q.run(b.task, ac.signal);
    const pc = q.run(c.task);
    await flush();
    ac.abort(new Error('cancelled by host'));
    await expect(pb).rejects.toThrow('cancelled by host');
    expect(q.pending).toBe(1);
    a.resolve('A');
    await flush();
    c.resolve('C');
    expect(await pa).toBe('A');
    expect(await pc).toBe('C');
    expect(log).toEqual(['start a', 'start c']);
  });

  it('an already-aborted signal is refused at once', async () => {
    const q = new TransactionQueue();
    let ran = false;
    const ac = new AbortController();
    ac.abort();
    await expect(
      q.run(async () => {
        ran = true;
      }, ac.signal),
    ).rejects.toMatchObject({ name: 'AbortError' });
    expect(ran).toBe(false);
  });

  it('aborting the running task answers its caller now but holds the key until the task settles', async () => {
    const q = new TransactionQueue();
    const log: string[] = [];
    const a = deferredTask<string>(log, 'a');
    const b = deferredTask<string>(log, 'b');
    const ac = new AbortController();
    const pa = q.run(a.task, ac.signal);
    const pb = q.run(b.task);
    await flush();
    ac.abort(new Error('cancel'));
    await expect(pa).rejects.toThrow('cancel');
    expect(a.signal?.aborted).toBe(true);
    await flush();
    // The cancelled transaction has not finished on the key yet: b must wait.
    expect(log).toEqual(['start a']);
    a.reject(new Error('CTAP2_ERR_KEEPALIVE_CANCEL'));
    await flush();
    expect(log).toEqual(['start a', 'start b']);
    b.resolve('B');
    expect(await pb).toBe('B');
  });

  it('fail() rejects the running and every queued caller at once, and all later runs', async () => {
    const q = new TransactionQueue();
    const log: string[] = [];
    const a = deferredTask<string>(log, 'a');
    const b = deferredTask<string>(log, 'b');
    const pa = q.run(a.task);
    const pb = q.run(b.task);
    await flush();
    const removed = new HidDeviceRemovedError('/dev/hidraw0');
    q.fail(removed);
    await expect(pa).rejects.toBe(removed);
    await expect(pb).rejects.toBe(removed);
    expect(a.signal?.aborted).toBe(true);
    expect(a.signal?.reason).toBe(removed);
    await expect(q.run(async () => 1)).rejects.toBe(removed);
    expect(q.failed).toBe(true);
    // The hung task settling later changes nothing and b never starts.
    a.resolve('late');
    await flush();
    expect(log).toEqual(['start a']);
  });

  it('is bounded: beyond the limit a request is refused with QUEUE_FULL', async () => {
    const q = new TransactionQueue({ limit: 2 });
    const log: string[] = [];
    const a = deferredTask<number>(log, 'a');
    const pa = q.run(a.task);
    const p1 = q.run(async () => 1);
    const p2 = q.run(async () => 2);
    await expect(q.run(async () => 3)).rejects.toBeInstanceOf(HidQueueFullError);
    a.resolve(0);
    expect(await Promise.all([pa, p1, p2])).toEqual([0, 1, 2]);
  });
});

describe('TransactionQueue fairness between origins', () => {
  it('serves origins round-robin; a newcomer goes right after the running task, not after the backlog', async () => {
    const q = new TransactionQueue();
    const log: string[] = [];
    const tasks = new Map<string, ReturnType<typeof deferredTask<string>>>();
    const submit = (name: string, origin: string) => {
      const t = deferredTask<string>(log, name);
      tasks.set(name, t);
      return q.run(t.task, undefined, origin);
    };
    const results = [submit('a1', 'A'), submit('a2', 'A'), submit('a3', 'A'), submit('b1', 'B'), submit('c1', 'C'), submit('b2', 'B')];
    for (let i = 0; i < 6; i++) {
      await flush();
      const running = log[log.length - 1].slice('start '.length);
      tasks.get(running)!.resolve(running);
    }
    await Promise.all(results);
    expect(log).toEqual(['start a1', 'start b1', 'start c1', 'start a2', 'start b2', 'start a3']);
  });

  it("an origin's first waiting request is admitted even when others filled the queue; its own backlog is bounded", async () => {
    const q = new TransactionQueue({ limit: 4, perOriginLimit: 3 });
    const log: string[] = [];
    const hold = deferredTask<string>(log, 'hold');
    const held = q.run(hold.task, undefined, 'A');
    const a = [1, 2, 3].map(() => q.run(async () => 'a', undefined, 'A'));
    await expect(q.run(async () => 'a4', undefined, 'A')).rejects.toBeInstanceOf(HidQueueFullError);
    const b1 = q.run(async () => 'b1', undefined, 'B');
    // 4 waiting now: B's second is refused (B already waits), C's first still gets in.
    await expect(q.run(async () => 'b2', undefined, 'B')).rejects.toBeInstanceOf(HidQueueFullError);
    const c1 = q.run(async () => 'c1', undefined, 'C');
    expect(q.pending).toBe(5);
    expect(q.pendingFor('A')).toBe(3);
    hold.resolve('hold');
    expect(await Promise.all([held, ...a, b1, c1])).toEqual(['hold', 'a', 'a', 'a', 'b1', 'c1']);
  });

  it('aborting the only waiting request of an origin removes the origin from the rotation', async () => {
    const q = new TransactionQueue();
    const log: string[] = [];
    const first = deferredTask<string>(log, 'a1');
    const pa = q.run(first.task, undefined, 'A');
    const ac = new AbortController();
    const pb = q.run(async () => 'b', ac.signal, 'B');
    const pa2 = q.run(async () => 'a2', undefined, 'A');
    ac.abort(new Error('gone'));
    await expect(pb).rejects.toThrow('gone');
    expect(q.pendingFor('B')).toBe(0);
    first.resolve('a1');
    expect(await Promise.all([pa, pa2])).toEqual(['a1', 'a2']);
    expect(q.pending).toBe(0);
  });
});
