/**
 * The benchmark helpers that compute and draw what the benchmarks publish: percentiles, the CTAPHID report
 * count and the USB/IP round-trip model (docs/platform-notes.md), the targets' verdicts, the SVG chart, and the
 * FIDO usage-page check that picks the hidraw node. (The benchmarks themselves are scripts, not tests.)
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { CeremonyTiming } from '../../scripts/bench/ceremony.ts';
import { isFidoReportDescriptor, findFidoHidraw } from '../../scripts/bench/hidraw-port.ts';
import type { PointResult } from '../../scripts/bench/plan.ts';
import { reportCount, renderTables, targets, usbipModelRoundTrips, ceremonyPoint, type RelayRun } from '../../scripts/bench/relay-report.ts';
import { median, percentile, summarize, fmtMs } from '../../scripts/bench/stats.ts';
import { logTicks, renderLineChart, step125 } from '../../scripts/bench/svg-chart.ts';
import { FIDO_REPORT_DESCRIPTOR } from '../../device/faces/usb-descriptors.ts';

describe('stats', () => {
  it('nearest-rank percentiles and the median', () => {
    const s = [5, 1, 4, 2, 3];
    expect(median(s)).toBe(3);
    expect(median([1, 2, 3, 4])).toBe(2.5);
    expect(percentile(s, 95)).toBe(5);
    expect(percentile(s, 50)).toBe(3);
    expect(percentile(s, 0)).toBe(1);
    const twenty = Array.from({ length: 20 }, (_, i) => i + 1);
    expect(percentile(twenty, 95)).toBe(19);
    expect(summarize(twenty)).toEqual({ n: 20, median: 10.5, p95: 19, min: 1, max: 20 });
    expect(() => median([])).toThrow(RangeError);
  });
  it('formats milliseconds by magnitude', () => {
    expect(fmtMs(0.4242)).toBe('0.42');
    expect(fmtMs(4.242)).toBe('4.2');
    expect(fmtMs(42.4)).toBe('42');
    expect(fmtMs(4242)).toBe('4,242');
  });
});

describe('CTAPHID report count and the USB/IP model', () => {
  it('counts reports as CTAP 2.1 §11.2.4 fragments them (57-byte init, 59-byte continuation payloads)', () => {
    expect(reportCount(0)).toBe(1);
    expect(reportCount(57)).toBe(1);
    expect(reportCount(58)).toBe(2);
    expect(reportCount(57 + 59)).toBe(2);
    expect(reportCount(57 + 59 + 1)).toBe(3);
    expect(reportCount(1024)).toBe(18);
    expect(reportCount(7609)).toBe(129);
  });
});

function timing(total: number, bytes = { getInfo: 269, makeCredential: 292, getAssertion: 202 }): CeremonyTiming {
  return {
    ms: { init: total * 0.1, getInfo: total * 0.2, makeCredential: total * 0.4, getAssertion: total * 0.3 },
    totalMs: total,
    bytes,
    requestBytes: { getInfo: 1, makeCredential: 182, getAssertion: 146 },
  };
}

function run(results: PointResult[], hostOverhead?: RelayRun['hostOverhead']): RelayRun {
  return { startedAt: '2026-11-26T00:00:00Z', machine: {}, command: 'x', reps: 3, rtts: [0, 50], results, hostOverhead, durationS: 1 };
}

describe('relay report', () => {
  const results: PointResult[] = [
    { kind: 'ceremony', line: 'direct', rttMs: 0, samples: [timing(50), timing(52), timing(60)], errors: [] },
    { kind: 'ceremony', line: 'keytunnel', rttMs: 0, samples: [timing(50.5), timing(52.5), timing(61)], errors: [] },
    { kind: 'ceremony', line: 'keytunnel', rttMs: 50, samples: [timing(150), timing(160), timing(170)], errors: [] },
    { kind: 'ceremony', line: 'usbip', rttMs: 0, samples: [timing(40), timing(45), timing(50)], errors: [] },
    { kind: 'ceremony', line: 'usbip', rttMs: 50, samples: [timing(1600), timing(1650), timing(1700)], errors: ['CtaphidError: x'] },
  ];

  it('models USB/IP as Σ (OUT + IN − 1) reports per message: INIT 1, getInfo 5, makeCredential 8, getAssertion 6', () => {
    expect(usbipModelRoundTrips(ceremonyPoint(run(results), 'usbip', 50)!)).toBe(1 + 5 + 8 + 6);
  });

  it('judges the targets from medians', () => {
    const t = targets(run(results));
    const byName = (re: RegExp) => t.find((x) => re.test(x.name))!;
    // keytunnel 0 ms command medians are 1 % above direct's: well within 1 ms.
    expect(byName(/same in the guest/).pass).toBe(true);
    // 160 ≤ 1.2 × (52 + 150) = 242.4
    expect(byName(/1\.2 ×/).pass).toBe(true);
    expect(byName(/1\.2 ×/).measured).toContain('242');
    // 1650 / 160 = 10.3
    expect(byName(/≥ 10/).pass).toBe(true);
    expect(byName(/≥ 10/).measured).toBe('10.3 ×');
    expect(t.some((x) => /model, not measured/.test(x.name) && x.pass === undefined)).toBe(true);
  });

  it('fails the overhead target when the relay adds more than 1 ms to a command', () => {
    const slow = run(results, { direct: [timing(10), timing(10)], keytunnel: [timing(30), timing(30)] });
    const t = targets(slow).find((x) => /host only/.test(x.name))!;
    // makeCredential: 0.4 × (30 − 10) = 8 ms over
    expect(t.pass).toBe(false);
    expect(t.measured).toContain('makeCredential +8.00 ms');
  });

  it('renders the tables with every point, the ratios and the errors', () => {
    const text = renderTables(run(results));
    expect(text).toContain('| 50 ms | 52 / 60 (no network) | 160 / 170 | 1,650 / 1,700 | 10.3 × |');
    expect(text).toContain('- usbip @ 50 ms: CtaphidError: x');
    expect(text).toContain('getInfo 1 → 269 (1+5)');
  });
});

describe('SVG chart', () => {
  it('1-2-5 steps and log ticks', () => {
    expect(step125(37, 'up')).toBe(50);
    expect(step125(37, 'down')).toBe(20);
    expect(step125(100, 'up')).toBe(100);
    expect(step125(1850, 'up')).toBe(2000);
    expect(logTicks(20, 2000)).toEqual([20, 50, 100, 200, 500, 1000, 2000]);
  });

  it('draws every series, escapes text, and is one svg element', () => {
    const svg = renderLineChart(
      [
        { name: 'A <b> & "c"', color: '#123456', points: [{ x: 0, y: 10, hi: 12 }, { x: 50, y: 100 }] },
        { name: 'B', color: '#654321', dashed: true, points: [{ x: 0, y: 20 }, { x: 50, y: 30 }] },
      ],
      { title: 'T & t', xLabel: 'x', yLabel: 'y' },
    );
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trim().endsWith('</svg>')).toBe(true);
    expect(svg).toContain('A &lt;b&gt; &amp; &quot;c&quot;');
    expect(svg).toContain('T &amp; t');
    expect(svg).not.toContain('<b>');
    expect(svg.match(/<polyline /g)).toHaveLength(2);
    expect(svg).toContain('stroke-dasharray');
    expect(() => renderLineChart([], { title: '', xLabel: '', yLabel: '' })).toThrow(RangeError);
  });
});

describe('hidraw selection', () => {
  it('recognises the FIDO usage page in a report descriptor', () => {
    expect(isFidoReportDescriptor(FIDO_REPORT_DESCRIPTOR)).toBe(true);
    // A keyboard descriptor starts with Usage Page (Generic Desktop) 05 01.
    expect(isFidoReportDescriptor(Uint8Array.of(0x05, 0x01, 0x09, 0x06, 0xa1, 0x01))).toBe(false);
  });

  it('picks the FIDO node among hidraw nodes from sysfs, once its /dev node exists', () => {
    const sys = mkdtempSync(join(tmpdir(), 'kt-sysfs-'));
    try {
      for (const [name, desc] of [['hidraw0', Uint8Array.of(0x05, 0x01)], ['hidraw1', FIDO_REPORT_DESCRIPTOR]] as const) {
        mkdirSync(join(sys, name, 'device'), { recursive: true });
        writeFileSync(join(sys, name, 'device', 'report_descriptor'), desc);
      }
      const dev = join(sys, 'dev');
      mkdirSync(dev);
      // The FIDO node's /dev entry does not exist yet: nothing.
      expect(findFidoHidraw(sys, dev)).toBeUndefined();
      writeFileSync(join(dev, 'hidraw0'), '');
      writeFileSync(join(dev, 'hidraw1'), '');
      expect(findFidoHidraw(sys, dev)).toBe(join(dev, 'hidraw1'));
      expect(findFidoHidraw(join(sys, 'missing'), dev)).toBeUndefined();
    } finally {
      rmSync(sys, { recursive: true, force: true });
    }
  });
});
