/**
 * Every repository path the user-facing docs name must exist: backticked paths (`agent/policy/`,
 * `test/vm/uhid.vm.test.ts`) in README.md and packaging/QUICKSTART.md, read from the repository root, and relative
 * markdown links, read from the document's folder. Renamed or removed files otherwise leave the docs citing
 * nothing (issue 12, item 10).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const DOCS = ['README.md', 'packaging/QUICKSTART.md'];
/** Top-level entries of the repository a backticked path may start with. */
const TOP = /^(agent|bin|cli|device|docs|examples|gateway|packaging|protocol|scripts|test|testcontainers|testing|tunnel)\//;
const ROOT_FILES = new Set(['Dockerfile', 'package.json', 'tsconfig.json', 'vitest.config.ts']);

/** Backticked spans that are repository paths (no spaces, globs, placeholders or flags). */
export function backtickedPaths(markdown: string): string[] {
  const spans = [...markdown.matchAll(/`([^`\n]+)`/g)].map((m) => m[1]!.replace(/[.,;:]$/, ''));
  return spans.filter((s) => !/[\s*<>…{}$]/.test(s) && (TOP.test(s) || ROOT_FILES.has(s)));
}

/** Relative markdown link targets (no scheme, no pure anchors), without their #fragment. */
export function relativeLinks(markdown: string): string[] {
  return [...markdown.matchAll(/\]\(([^)\s]+)\)/g)]
    .map((m) => m[1]!)
    .filter((t) => !/^[a-z][a-z0-9+.-]*:/i.test(t) && !t.startsWith('#'))
    .map((t) => t.split('#')[0]!);
}

describe('paths named in the docs exist', () => {
  it('finds paths and links in a sample (the extractor itself)', () => {
    const sample = 'Run `npm test`; see `agent/policy/` and `test/vm/*.vm.test.ts`, [bench](docs/bench/README.md#x), [a](https://e.com/x) and `<dir>/x`.';
    expect(backtickedPaths(sample)).toEqual(['agent/policy/']);
    expect(relativeLinks(sample)).toEqual(['docs/bench/README.md']);
  });

  for (const doc of DOCS) {
    const text = readFileSync(join(ROOT, doc), 'utf8');
    it(`${doc}: every backticked repository path exists`, () => {
      const paths = backtickedPaths(text);
      if (doc === 'README.md') expect(paths.length).toBeGreaterThan(20);
      expect(paths.filter((p) => !existsSync(join(ROOT, p)))).toEqual([]);
    });
    it(`${doc}: every relative link resolves`, () => {
      const links = relativeLinks(text);
      expect(links.filter((l) => !existsSync(join(ROOT, dirname(doc), l)))).toEqual([]);
    });
  }
});
