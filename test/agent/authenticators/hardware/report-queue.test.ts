import { describe, expect, it } from 'vitest';
import { ReportQueue } from '../../../../agent/authenticators/hardware/report-queue.ts';

const r = (n: number) => Uint8Array.of(n);

describe('ReportQueue', () => {
  it('hands queued reports out in order, then waits for the next one or times out with undefined', async () => {
    const q = new ReportQueue(8, 'test port');
    q.push(r(1));
    q.push(r(2));
    expect(await q.read(0)).toEqual(r(1));
    expect(await q.read(0)).toEqual(r(2));
    const pending = q.read(1000);
    q.push(r(3));
    expect(await pending).toEqual(r(3));
    expect(await q.read(1)).toBeUndefined();
  });

  it('drops the oldest report when full, and counts it', async () => {
    const q = new ReportQueue(2, 'test port');
    for (const n of [1, 2, 3]) q.push(r(n));
    expect(q.dropped).toBe(1);
    expect(await q.read(0)).toEqual(r(2));
  });

  it('refuses a second concurrent reader; a failure rejects the pending and later reads', async () => {
    const q = new ReportQueue(2, 'test port');
    const first = q.read(1000);
    await expect(q.read(1000)).rejects.toThrow('concurrent read on a test port');
    q.fail(new Error('gone'));
    q.fail(new Error('second failure is ignored'));
    await expect(first).rejects.toThrow('gone');
    await expect(q.read(0)).rejects.toThrow('gone');
    expect(q.error?.message).toBe('gone');
  });
});
