/** tunnel/reconnect.ts: backoff math, and the reconnect loop driven by a fake clock (no sleeps). */
import { describe, expect, it } from 'vitest';
import { DEFAULT_BACKOFF, Reconnector, backoffDelay } from '../../tunnel/reconnect.ts';
import { FakeClock } from '../support/fake-clock.ts';
import { captureLog } from './helpers.ts';

describe('backoffDelay', () => {
  const noJitter = () => 0;
  it('doubles from initialMs and caps at maxMs', () => {
    expect(Array.from({ length: 10 }, (_, n) => backoffDelay(n, DEFAULT_BACKOFF, noJitter))).toEqual([
      500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000,
    ]);
    expect(backoffDelay(10_000, DEFAULT_BACKOFF, noJitter)).toBe(30000); // no overflow to Infinity/NaN
  });
  it('jitter takes up to `jitter` of the delay away, never adds', () => {
    const policy = { initialMs: 1000, maxMs: 8000, factor: 2, jitter: 0.5 };
    expect(backoffDelay(0, policy, () => 0.999999)).toBe(500);
    expect(backoffDelay(0, policy, () => 0.5)).toBe(750);
    expect(backoffDelay(5, policy, () => 0.5)).toBe(6000);
    for (let n = 0; n < 20; n++) {
      const d = backoffDelay(n, policy, Math.random);
      const base = Math.min(8000, 1000 * 2 ** n);
      expect(d).toBeGreaterThanOrEqual(base / 2);
      expect(d).toBeLessThanOrEqual(base);
    }
  });
  it('honours other factors and no jitter', () => {
    expect(backoffDelay(3, { initialMs: 100, maxMs: 1e6, factor: 3, jitter: 0 }, () => 0.9)).toBe(2700);
  });
});

async function flush(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

class FakeConn {
  private resolve!: (v: string) => void;
  readonly closed = new Promise<string>((r) => (this.resolve = r));
  closedWith: string | undefined;
  close(reason = 'closed'): void {
    this.closedWith ??= reason;
    this.resolve(reason);
  }
}

describe('Reconnector', () => {
  function setup(outcomes: ('fail' | 'ok')[], onConnected: (c: FakeConn) => void = () => {}) {
    const clock = new FakeClock();
    const conns: FakeConn[] = [];
    let attempts = 0;
    const cap = captureLog();
    const r = new Reconnector<FakeConn>({
      connect: async () => {
        const outcome = outcomes[attempts++] ?? 'fail';
        if (outcome === 'fail') throw new Error('ECONNREFUSED');
        const c = new FakeConn();
        conns.push(c);
        return c;
      },
      onConnected,
      log: cap.log,
      target: 'agent at 127.0.0.1:1',
      clock,
      random: () => 0,
      backoff: { initialMs: 100, maxMs: 1000, factor: 2, jitter: 0.5 },
      stableAfterMs: 5000,
    });
    return { clock, conns, r, cap, attempts: () => attempts };
  }

  it('retries failures with growing, capped delays', async () => {
    const { clock, r, attempts, cap } = setup([]);
    r.start();
    await flush();
    expect(attempts()).toBe(1);
    expect(clock.scheduled).toEqual([100]);
    await clock.advanceAsync(99);
    expect(attempts()).toBe(1); // not before the delay
    await clock.advanceAsync(1);
    expect(attempts()).toBe(2);
    await clock.advanceAsync(200 + 400 + 800 + 1000 + 1000);
    expect(clock.scheduled).toEqual([100, 200, 400, 800, 1000, 1000, 1000]);
    expect(r.consecutiveFailures).toBe(7);
    expect(cap.text()).toContain('cannot connect to agent at 127.0.0.1:1');
    await r.close();
    expect(clock.pending).toBe(0);
  });

  it('hands each connection over, reconnects when it drops, and resets the backoff only after a stable connection', async () => {
    const connected: FakeConn[] = [];
    const { clock, conns, r } = setup(['fail', 'fail', 'ok', 'ok', 'fail', 'ok'], (c) => connected.push(c));
    r.start();
    await flush();
    await clock.advanceAsync(100 + 200); // two failures, then connected
    expect(connected).toHaveLength(1);
    expect(r.connection).toBe(conns[0]);
    // Drops quickly (before stableAfterMs): the failure count keeps growing.
    await clock.advanceAsync(1000);
    conns[0].close('peer went away');
    await flush();
    expect(r.connection).toBeUndefined();
    expect(clock.scheduled.at(-1)).toBe(400);
    await clock.advanceAsync(400);
    expect(connected).toHaveLength(2);
    // Stays up long enough: after it drops, the next delay starts from initialMs again.
    await clock.advanceAsync(6000);
    conns[1].close('peer went away');
    await flush();
    expect(clock.scheduled.at(-1)).toBe(100);
    await clock.advanceAsync(100); // fail
    expect(clock.scheduled.at(-1)).toBe(200);
    await clock.advanceAsync(200); // ok
    expect(connected).toHaveLength(3);
    await r.close();
    expect(conns[2].closedWith).toBe('shutting down');
  });

  it('stop() cancels a pending retry', async () => {
    const { clock, r, attempts } = setup([]);
    r.start();
    await flush();
    expect(clock.pending).toBe(1);
    await r.close();
    expect(clock.pending).toBe(0);
    await clock.advanceAsync(10_000);
    expect(attempts()).toBe(1);
  });

  it('a throwing connection handler closes that connection and the loop carries on', async () => {
    const { clock, conns, r } = setup(['ok', 'ok'], () => {
      throw new Error('boom');
    });
    r.start();
    await flush();
    expect(conns[0].closedWith).toBe('connection handler failed');
    await clock.advanceAsync(100);
    expect(conns).toHaveLength(2);
    await r.close();
  });
});
