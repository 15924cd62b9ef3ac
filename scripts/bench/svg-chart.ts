/**
 * A hand-written SVG line chart (no dependency): series of (x, y) points with optional p95 whiskers, a linear x
 * axis and a logarithmic y axis (the lines differ by an order of magnitude or more, and a log scale shows their
 * ratios as distances). Text is escaped; the output is a standalone SVG document.
 */

export interface ChartPoint {
  readonly x: number;
  readonly y: number;
  /** Upper whisker (e.g. p95), drawn as a thin vertical line with a cap. */
  readonly hi?: number;
}

export interface ChartSeries {
  readonly name: string;
  readonly color: string;
  readonly points: readonly ChartPoint[];
  readonly dashed?: boolean;
}

export interface ChartOptions {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly width?: number;
  readonly height?: number;
  /** Optional note under the title (e.g. the machine). */
  readonly subtitle?: string;
}

function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** 1-2-5 ticks covering [lo, hi] on a log scale. */
export function logTicks(lo: number, hi: number): number[] {
  const ticks: number[] = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e;
      if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) ticks.push(v);
    }
  }
  return ticks;
}

/** The nearest 1-2-5 value at or below ('down') / at or above ('up') v > 0. */
export function step125(v: number, dir: 'up' | 'down'): number {
  const e = Math.floor(Math.log10(v));
  const candidates = [-1, 0, 1].flatMap((d) => [1, 2, 5].map((m) => m * 10 ** (e + d)));
  return dir === 'up' ? Math.min(...candidates.filter((c) => c >= v * (1 - 1e-12))) : Math.max(...candidates.filter((c) => c <= v * (1 + 1e-12)));
}

function tickLabel(v: number): string {
  if (v >= 1000) return `${v / 1000} s`;
  return `${v} ms`;
}

export function renderLineChart(series: readonly ChartSeries[], opts: ChartOptions): string {
  const W = opts.width ?? 760;
  const H = opts.height ?? 460;
  const m = { left: 72, right: 24, top: opts.subtitle ? 58 : 42, bottom: 52 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const all = series.flatMap((s) => s.points);
  if (all.length === 0) throw new RangeError('nothing to plot');
  const xMax = Math.max(...all.map((p) => p.x));
  const xMin = Math.min(0, ...all.map((p) => p.x));
  const ys = all.flatMap((p) => [p.y, p.hi ?? p.y]).filter((v) => v > 0);
  const yLo = step125(Math.min(...ys), 'down');
  const yHi = step125(Math.max(...ys), 'up');
  const X = (x: number): number => m.left + ((x - xMin) / (xMax - xMin || 1)) * pw;
  const Y = (y: number): number => m.top + ph - ((Math.log10(Math.max(y, yLo)) - Math.log10(yLo)) / (Math.log10(yHi) - Math.log10(yLo))) * ph;
  const f = (n: number): string => n.toFixed(1);
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${m.left}" y="22" font-size="15" font-weight="bold">${esc(opts.title)}</text>`);
  if (opts.subtitle) out.push(`<text x="${m.left}" y="40" fill="#555">${esc(opts.subtitle)}</text>`);
  // Grid and axes.
  for (const t of logTicks(yLo, yHi)) {
    out.push(`<line x1="${m.left}" x2="${m.left + pw}" y1="${f(Y(t))}" y2="${f(Y(t))}" stroke="#e4e4e4"/>`);
    out.push(`<text x="${m.left - 6}" y="${f(Y(t) + 4)}" text-anchor="end">${esc(tickLabel(t))}</text>`);
  }
  const xTicks = [...new Set(all.map((p) => p.x))].sort((a, b) => a - b);
  for (const t of xTicks) {
    out.push(`<line x1="${f(X(t))}" x2="${f(X(t))}" y1="${m.top}" y2="${m.top + ph}" stroke="#f0f0f0"/>`);
    out.push(`<text x="${f(X(t))}" y="${m.top + ph + 18}" text-anchor="middle">${t}</text>`);
  }
  out.push(`<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="none" stroke="#888"/>`);
  out.push(`<text x="${m.left + pw / 2}" y="${H - 12}" text-anchor="middle">${esc(opts.xLabel)}</text>`);
  out.push(`<text transform="translate(16 ${m.top + ph / 2}) rotate(-90)" text-anchor="middle">${esc(opts.yLabel)}</text>`);
  // Series.
  series.forEach((s, i) => {
    const pts = [...s.points].sort((a, b) => a.x - b.x);
    const dash = s.dashed ? ' stroke-dasharray="6 4"' : '';
    out.push(`<g>`);
    out.push(`<title>${esc(s.name)}</title>`);
    if (pts.length > 1) {
      out.push(`<polyline fill="none" stroke="${esc(s.color)}" stroke-width="2"${dash} points="${pts.map((p) => `${f(X(p.x))},${f(Y(p.y))}`).join(' ')}"/>`);
    }
    for (const p of pts) {
      if (p.hi !== undefined && p.hi > p.y) {
        out.push(`<line x1="${f(X(p.x))}" x2="${f(X(p.x))}" y1="${f(Y(p.y))}" y2="${f(Y(p.hi))}" stroke="${esc(s.color)}"/>`);
        out.push(`<line x1="${f(X(p.x) - 4)}" x2="${f(X(p.x) + 4)}" y1="${f(Y(p.hi))}" y2="${f(Y(p.hi))}" stroke="${esc(s.color)}"/>`);
      }
      if (!s.dashed) out.push(`<circle cx="${f(X(p.x))}" cy="${f(Y(p.y))}" r="3.5" fill="${esc(s.color)}"><title>${esc(`${s.name}: ${p.x} → ${p.y.toFixed(1)} ms`)}</title></circle>`);
    }
    out.push(`</g>`);
  });
  // Legend: a box in the top-left corner of the plot (the lines rise to the right, so it stays clear of them).
  const lw = 14 + Math.max(...series.map((s) => s.name.length)) * 6.6 + 40;
  out.push(`<rect x="${m.left + 10}" y="${m.top + 10}" width="${f(lw)}" height="${series.length * 20 + 10}" fill="white" fill-opacity="0.9" stroke="#ccc"/>`);
  series.forEach((s, i) => {
    const dash = s.dashed ? ' stroke-dasharray="6 4"' : '';
    const ly = m.top + 26 + i * 20;
    out.push(`<line x1="${m.left + 20}" x2="${m.left + 46}" y1="${ly}" y2="${ly}" stroke="${esc(s.color)}" stroke-width="2"${dash}/>`);
    out.push(`<text x="${m.left + 52}" y="${ly + 4}">${esc(s.name)}</text>`);
  });
  out.push(`</svg>`);
  return out.join('\n') + '\n';
}
