/**
 * The npm package, as a user gets it: `npm pack` (prepack builds the bundle), `npm install -g <tarball>` into an
 * empty prefix (dependencies from the registry), then the installed `keytunnel` runs on plain node — `--version`
 * (with the source commit), `id`, `demo` (whose relying party, a devDependency, must be bundled) — and the
 * installed tree holds only the bundle, bin/, packaging templates, README and LICENSE: no tests, scripts,
 * TypeScript sources or tsx.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkoutCommit, copyWorkingTree, REPO_ROOT } from './tree-copy.ts';

const work = mkdtempSync(join(tmpdir(), 'keytunnel-pkg-'));
const prefix = join(work, 'prefix');
const pkgDir = join(prefix, 'lib', 'node_modules', 'keytunnel');
const bin = join(prefix, 'bin', 'keytunnel');
const version = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const commit = checkoutCommit();
let tree = '';

function run(cmd: string, args: string[], cwd: string, timeout = 120_000): SpawnSyncReturns<string> {
  const r = spawnSync(cmd, args, {
    cwd,
    encoding: 'utf8',
    timeout,
    // The commit of the checkout the copy was made from (the copy is no git checkout).
    env: { ...process.env, KEYTUNNEL_SOURCE_COMMIT: commit, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' },
  });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}\n${r.stdout}\n${r.stderr}`);
  return r;
}

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)],
  );
}

beforeAll(() => {
  tree = copyWorkingTree(work);
  run('npm', ['pack', '--pack-destination', work], tree);
  const tarball = join(work, `keytunnel-${version}.tgz`);
  expect(existsSync(tarball)).toBe(true);
  run('npm', ['install', '-g', '--prefix', prefix, tarball], work, 300_000);
}, 420_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('the npm package installed from its tarball', () => {
  it('ships the bundle, bin/, packaging templates, README and LICENSE, and nothing else', () => {
    const files = walk(pkgDir)
      .map((f) => relative(pkgDir, f))
      .filter((f) => !f.startsWith('node_modules/'));
    const top = [...new Set(files.map((f) => f.split('/')[0]))].sort();
    expect(top).toEqual(['LICENSE', 'README.md', 'bin', 'dist', 'package.json', 'packaging']);
    expect(files).toContain('dist/keytunnel.mjs');
    expect(files).toContain('dist/uhid-reader-worker.js');
    // Sources never ship; the declarations of keytunnel/testing and keytunnel/testcontainers do.
    expect(files.filter((f) => f.endsWith('.ts') && !(f.startsWith('dist/types/') && f.endsWith('.d.ts')))).toEqual([]);
    expect(files).toContain('dist/types/testing/index.d.ts');
    expect(files.filter((f) => f.startsWith('dist/exe/'))).toEqual([]);
  });

  it('installs exactly the runtime dependencies: no tsx, esbuild, test libraries or dropped packages', () => {
    const installed = walk(join(prefix, 'lib', 'node_modules'))
      .map((f) => relative(join(prefix, 'lib', 'node_modules'), f))
      .filter((f) => f.endsWith('/package.json'));
    for (const absent of ['tsx', 'esbuild', 'vitest', 'typescript', 'fast-check', 'testcontainers', 'cbor-x', '@simplewebauthn/server']) {
      expect(installed.some((f) => f.includes(`node_modules/${absent}/package.json`))).toBe(false);
    }
    const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
      peerDependencies?: Record<string, string>;
    };
    const stamp = JSON.parse(readFileSync(join(pkgDir, 'dist', '.build-stamp'), 'utf8')) as { externals: string[] };
    // What the bundle imports at run time: the dependencies, plus optional peers (testcontainers) the user installs.
    const peers = Object.keys(pkg.peerDependencies ?? {});
    expect(Object.keys(pkg.dependencies).sort()).toEqual(stamp.externals.filter((e) => !peers.includes(e)));
  });

  it('`keytunnel --version` prints the version and the source commit', () => {
    const r = run(bin, ['--version'], work);
    expect(r.stdout.trim()).toBe(`${version} (commit ${commit}, bundle)`);
  });

  it('`keytunnel id` creates an identity and prints its fingerprint', () => {
    const state = join(work, 'state');
    const r = run(bin, ['id', '--state-dir', state], work);
    const fingerprint = r.stdout.split('\n')[0];
    expect(fingerprint).toMatch(/^[0-9a-f]{2}(:[0-9a-f]{2}){31}$/);
    expect(existsSync(join(state, 'identity.pem'))).toBe(true);
    // The same identity the second time.
    expect(run(bin, ['id', '--state-dir', state], work).stdout.split('\n')[0]).toBe(fingerprint);
  });

  it('`keytunnel demo` runs a full ceremony on plain node', () => {
    const r = run(bin, ['demo'], work, 120_000);
    expect(r.stdout).toMatch(/^OK: registered and signed in through the tunnel/m);
    expect(r.stdout).toContain('signature verified by the RP');
  }, 130_000);

  it('`keytunnel install-service --dry-run` finds its templates in the installed package', () => {
    const r = run(bin, ['install-service', '--gateway', '--dry-run', '--prefix', join(work, 'root')], work);
    expect(r.stdout).toContain(join(pkgDir, 'bin', 'keytunnel.js'));
  });
});
