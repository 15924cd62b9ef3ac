/**
 * A copy of this checkout's working tree (tracked and untracked, not ignored files) in a temporary directory,
 * with node_modules linked in, for tests that build or pack: they must not rebuild the checkout's own dist/
 * while other tests run bin/keytunnel.js from it.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The checkout's commit as `git describe` names it (what a build from the checkout embeds). */
export function checkoutCommit(): string {
  return execFileSync('git', ['describe', '--always', '--dirty', '--abbrev=12'], { cwd: REPO_ROOT, encoding: 'utf8' }).trim();
}

/** Copy the working tree into a fresh directory under `parent` (default: the OS temp dir); returns its path. */
export function copyWorkingTree(parent = tmpdir()): string {
  const dest = mkdtempSync(join(parent, 'keytunnel-tree-'));
  const files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: REPO_ROOT, encoding: 'utf8' })
    .split('\0')
    .filter((f) => f !== '');
  for (const file of files) {
    mkdirSync(join(dest, dirname(file)), { recursive: true });
    try {
      copyFileSync(join(REPO_ROOT, file), join(dest, file));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err; // deleted but not yet staged
    }
  }
  symlinkSync(join(REPO_ROOT, 'node_modules'), join(dest, 'node_modules'));
  return dest;
}
