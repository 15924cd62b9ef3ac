/** Input report pacing for the uhid face, with an injected clock and timer (no sleeping). */
import { describe, expect, it } from 'vitest';
import { InputPacer } from '../../../../device/faces/uhid/uhid-pacer.ts';
import { FakeClock } from '../../../support/fake-clock.ts';

const report = (i: number): Uint8Array => Uint8Array.of(i & 0xff, i >> 8);

describe('InputPacer', () => {
  it('sends a burst of up to 32 reports at once, then one per millisecond, in order', () => {
    const clock = new FakeClock();
    const sent: number[] = [];
    const p = new InputPacer((r) => sent.push(r[0] | (r[1] << 8)), { clock });
    for (let i = 0; i < 129; i++) p.send(report(i));
    expect(sent.length).toBe(32);
    expect(p.pending).toBe(97);
    clock.advance(1);
    expect(sent.length).toBe(33);
    clock.advance(10);
    expect(sent.length).toBe(43);
    clock.advance(200);
    expect(sent.length).toBe(129);
    expect(sent).toEqual(Array.from({ length: 129 }, (_, i) => i));
    expect(p.pending).toBe(0);
  });

  it('a message of 21 reports (1200 bytes) is never delayed, and the burst refills with idle time', () => {
    const clock = new FakeClock();
    let sent = 0;
    const p = new InputPacer(() => sent++, { clock });
    for (let i = 0; i < 21; i++) p.send(report(i));
    expect(sent).toBe(21);
    // 11 tokens left: the next 21-report message gets 11 at once.
    for (let i = 0; i < 21; i++) p.send(report(i));
    expect(sent).toBe(32);
    clock.advance(100);
    expect(sent).toBe(42);
    // After 32 ms idle the bucket is full again.
    clock.advance(32);
    for (let i = 0; i < 32; i++) p.send(report(i));
    expect(sent).toBe(74);
  });

  it('clear() drops what is queued and stops the timer', () => {
    const clock = new FakeClock();
    let sent = 0;
    const p = new InputPacer(() => sent++, { clock, burst: 2, intervalMs: 5 });
    for (let i = 0; i < 10; i++) p.send(report(i));
    expect(sent).toBe(2);
    p.clear();
    expect(p.pending).toBe(0);
    clock.advance(1000);
    expect(sent).toBe(2);
  });

  it('honours a custom interval', () => {
    const clock = new FakeClock();
    let sent = 0;
    const p = new InputPacer(() => sent++, { clock, burst: 1, intervalMs: 2 });
    for (let i = 0; i < 5; i++) p.send(report(i));
    expect(sent).toBe(1);
    clock.advance(1);
    expect(sent).toBe(1);
    clock.advance(1);
    expect(sent).toBe(2);
    clock.advance(6);
    expect(sent).toBe(5);
  });

  it('rejects nonsense options', () => {
    expect(() => new InputPacer(() => {}, { burst: 0 })).toThrow(RangeError);
    expect(() => new InputPacer(() => {}, { intervalMs: 0 })).toThrow(RangeError);
  });
});
