import { afterEach, describe, expect, it, vi } from 'vitest';
import { LogRateLimit } from '../../agent/log-rate-limit.ts';
import { GatewaySession, identityView } from '../../agent/session.ts';
import { ERR_PROTOCOL, type Frame } from '../../protocol/tunnel.ts';
import { silentLogger } from '../../protocol/logger.ts';

describe('LogRateLimit', () => {
  it('lets a burst through, then one line per interval, and reports what it dropped with the next line', () => {
    let t = 0;
    const limit = new LogRateLimit({ burst: 3, intervalMs: 1000, now: () => t });
    expect([limit.take(), limit.take(), limit.take()]).toEqual([0, 0, 0]);
    for (let i = 0; i < 50; i++) expect(limit.take()).toBeUndefined();
    t += 999;
    expect(limit.take()).toBeUndefined();
    t += 1;
    expect(limit.take()).toBe(51); // one token back: the line goes out, with the count of what was dropped
    expect(limit.take()).toBeUndefined();
    expect(limit.drainSuppressed()).toBe(1);
    expect(limit.drainSuppressed()).toBe(0);
    t += 60_000; // a quiet minute refills the bucket, never beyond the burst
    expect([limit.take(), limit.take(), limit.take(), limit.take()]).toEqual([0, 0, 0, undefined]);
  });

  it('a clock going back gives no tokens', () => {
    let t = 10_000;
    const limit = new LogRateLimit({ burst: 1, intervalMs: 1000, now: () => t });
    expect(limit.take()).toBe(0);
    t = 0;
    expect(limit.take()).toBeUndefined();
    t = 999;
    expect(limit.take()).toBeUndefined();
  });
});

describe('gateway ERROR frames in the agent log (finding 5)', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  function session() {
    const lines: { obj: Record<string, unknown>; msg: string }[] = [];
    const log = { ...silentLogger, warn: (obj: object, msg: string) => void lines.push({ obj: obj as Record<string, unknown>, msg }) };
    const s = new GatewaySession(
      { fingerprint: 'ab', name: 'vm' },
      { send() {}, close() {} },
      { lookup: () => undefined, exported: () => [] },
      identityView,
      log,
    );
    return { s, lines };
  }
  const error = (message: string): Frame => ({ type: 'error', requestId: null, code: ERR_PROTOCOL, message });

  it('a flood from one gateway is rate-limited, with periodic "N similar messages suppressed" lines', () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const { s, lines } = session();
    for (let i = 0; i < 10_000; i++) s.handleFrame(error(`boom ${i}`));
    expect(lines.length).toBeLessThanOrEqual(10);
    expect(lines.every((l) => l.msg === 'gateway reported an error')).toBe(true);

    vi.advanceTimersByTime(10_000);
    s.handleFrame(error('later'));
    expect(lines.at(-2)).toEqual({ obj: { suppressed: 10_000 - 10 }, msg: `${10_000 - 10} similar messages from this gateway suppressed` });
    expect(lines.at(-1)!.obj.message).toBe('later');

    for (let i = 0; i < 5; i++) s.handleFrame(error('again'));
    s.handleClose(); // the count of the last suppressed ones is not lost
    expect(lines.at(-1)).toEqual({ obj: { suppressed: 5 }, msg: '5 similar messages from this gateway suppressed' });
  });

  it("the gateway's message is logged printable and bounded", () => {
    const { s, lines } = session();
    s.handleFrame(error('x\u202e'.repeat(500)));
    const message = lines[0]!.obj.message as string;
    expect(message).not.toContain('\u202e');
    expect(Array.from(message).length).toBeLessThanOrEqual(201);
  });
});
