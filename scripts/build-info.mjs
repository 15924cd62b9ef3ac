/**
 * The build facts both bundles embed (scripts/build.mjs, scripts/build-exe.mjs): package version and source
 * commit, as esbuild `define`s for cli/build-info.ts's KEYTUNNEL_BUILD. Plain JavaScript: runs before anything
 * else is set up (the `prepare`/`prepack` scripts).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export function readPackage(root) {
  return JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
}

/**
 * `git describe --always --dirty --abbrev=12`, or "unknown" outside a git checkout (e.g. built from a tarball).
 * KEYTUNNEL_SOURCE_COMMIT overrides it (a build from an exported tree that knows its commit).
 */
export function sourceCommit(root) {
  const given = process.env.KEYTUNNEL_SOURCE_COMMIT;
  if (given) {
    if (!/^[0-9A-Za-z._+-]{1,64}$/.test(given)) throw new Error('KEYTUNNEL_SOURCE_COMMIT: 1-64 of [0-9A-Za-z._+-]');
    return given;
  }
  try {
    return execFileSync('git', ['describe', '--always', '--dirty', '--abbrev=12'], {
      cwd: root,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    return 'unknown';
  }
}

/** esbuild `define` for KEYTUNNEL_BUILD. */
export function buildDefine(root, kind) {
  const info = { version: readPackage(root).version, commit: sourceCommit(root), kind };
  return { info, define: { KEYTUNNEL_BUILD: JSON.stringify(info) } };
}

function packageName(spec) {
  const parts = spec.split('/');
  return spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

/**
 * Bare package names the bundle loads at run time, node: built-ins left out: the metafile's external imports,
 * plus the packages the sources load through `createRequire(import.meta.url)` (native addons, optional
 * pino-pretty), which esbuild leaves as `require*("name")` calls with a literal name in the output text.
 */
export function externalPackages(metafile, outputTexts = []) {
  const names = new Set();
  for (const text of outputTexts) {
    for (const m of text.matchAll(/(?:\brequire\d*|createRequire\(import\.meta\.url\))\(\s*["']([^"'.\/][^"']*)["']\s*\)/g)) {
      if (!m[1].startsWith('node:')) names.add(packageName(m[1]));
    }
  }
  for (const output of Object.values(metafile.outputs)) {
    for (const imp of output.imports) {
      if (!imp.external || imp.path.startsWith('node:') || imp.path.startsWith('.')) continue;
      names.add(packageName(imp.path));
    }
  }
  return [...names].sort();
}
