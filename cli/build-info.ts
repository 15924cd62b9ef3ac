/**
 * What `keytunnel --version` prints: the package version and the source commit it was built from.
 *
 * The bundles (scripts/build.mjs for the npm package, scripts/build-exe.mjs for the single executables) replace
 * `KEYTUNNEL_BUILD` with a constant at build time, so an installed package or an executable needs neither
 * package.json beside it nor git. Run from sources (tsx, a development checkout) it is undefined and the same
 * facts are read from the checkout.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface BuildInfo {
  readonly version: string;
  /** `git describe --always --dirty --abbrev=12` of the tree it was built from, or "unknown". */
  readonly commit: string;
  /** "bundle", "sea" (single executable) or "sources". */
  readonly kind: string;
}

declare const KEYTUNNEL_BUILD: BuildInfo | undefined;

/** The commit of the git checkout at `dir`, or "unknown" (no git, not a checkout). */
export function gitCommit(dir: string): string {
  try {
    return execFileSync('git', ['describe', '--always', '--dirty', '--abbrev=12'], {
      cwd: dir,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 5000,
    }).trim();
  } catch {
    return 'unknown';
  }
}

export function buildInfo(): BuildInfo {
  if (typeof KEYTUNNEL_BUILD !== 'undefined') return KEYTUNNEL_BUILD;
  const root = new URL('../', import.meta.url);
  const pkg = JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as { version: string };
  return { version: pkg.version, commit: gitCommit(fileURLToPath(root)), kind: 'sources' };
}

/** The one line `--version` prints, e.g. "0.1.0 (commit 5af0b09e9140, bundle)". */
export function versionLine(info: BuildInfo = buildInfo()): string {
  return `${info.version} (commit ${info.commit}, ${info.kind})`;
}
