/**
 * The prebuilt bundle (dist/, scripts/build.mjs) is what a Windows node.exe runs: bin/keytunnel.js falls back
 * to the TypeScript sources through tsx when the bundle is stale, and tsx's esbuild is the Linux binary in this
 * tree, so under Wine a stale bundle would fail for a reason that is not Windows'. ensureFreshBundle rebuilds
 * dist/ (~0.5 s) when any source is newer than dist/.build-stamp — the same rule bin/keytunnel.js applies.
 */
import { execFile } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const BIN = join(ROOT, 'bin', 'keytunnel.js');
const SOURCE_DIRS = ['agent', 'gateway', 'protocol', 'tunnel', 'cli'];

function newestSourceMtime(): number {
  let newest = statSync(join(ROOT, 'scripts', 'build.mjs')).mtimeMs;
  const pending = SOURCE_DIRS.map((d) => join(ROOT, d));
  while (pending.length > 0) {
    const dir = pending.pop()!;
    newest = Math.max(newest, statSync(dir).mtimeMs);
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, entry.name);
      if (entry.isDirectory()) pending.push(p);
      else if (entry.isFile()) newest = Math.max(newest, statSync(p).mtimeMs);
    }
  }
  return newest;
}

export function bundleIsFresh(): boolean {
  try {
    return statSync(join(ROOT, 'dist', '.build-stamp')).mtimeMs >= newestSourceMtime();
  } catch {
    return false;
  }
}

/** Rebuilds dist/ when it is missing or older than a source file. */
export async function ensureFreshBundle(): Promise<void> {
  if (bundleIsFresh()) return;
  await promisify(execFile)(process.execPath, [join(ROOT, 'scripts', 'build.mjs')], { cwd: ROOT, timeout: 120_000 });
  if (!bundleIsFresh()) throw new Error('dist/ is still stale after scripts/build.mjs');
}
