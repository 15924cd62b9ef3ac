/**
 * Builds the prebuilt CLI bundle that bin/keytunnel.js runs with plain node (no tsx loader: ~35 MB less RSS for
 * a long-running gateway). Run automatically by `npm ci` / `npm install` (the `prepare` script); plain JavaScript
 * because it runs before anything else is set up.
 *
 * Output (all in dist/, git-ignored):
 *   keytunnel.mjs          the entry (cli/main.ts); each command module stays a lazily loaded chunk (splitting),
 *                          so a gateway never loads the agent's or the demo's code
 *   chunk-*.mjs            the command chunks and shared code
 *   testing.mjs            keytunnel/testing (testing/index.ts), testcontainers.mjs keytunnel/testcontainers
 *   types/                 their .d.ts (tsc -p tsconfig.types.json)
 *   uhid-reader-worker.js  copied as is: device/faces/uhid/uhid.ts loads it via new URL(..., import.meta.url)
 *   .build-stamp           what the bundle was built from; written last, its mtime is what bin/keytunnel.js
 *                          compares with the sources' mtimes
 * node_modules packages stay external (imported at run time, native addons and all).
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, version as esbuildVersion } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');

rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });

const started = Date.now();
const result = await build({
  absWorkingDir: root,
  // keytunnel/testing and keytunnel/testcontainers (package.json exports) share chunks with the CLI.
  entryPoints: { keytunnel: 'cli/main.ts', testing: 'testing/index.ts', testcontainers: 'testcontainers/index.ts' },
  outdir: 'dist',
  outExtension: { '.js': '.mjs' },
  chunkNames: 'chunk-[hash]',
  bundle: true,
  splitting: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  packages: 'external',
  sourcemap: false,
  legalComments: 'none',
  logLevel: 'warning',
  metafile: true,
});

copyFileSync(join(root, 'device/faces/uhid/uhid-reader-worker.js'), join(dist, 'uhid-reader-worker.js'));

// Type declarations of the library entry points (dist/types/{testing,testcontainers}/index.d.ts). TypeScript is a
// devDependency: an install without it (npm ci --omit=dev) still gets a working CLI, only without these types.
const tsc = join(root, 'node_modules', '.bin', process.platform === 'win32' ? 'tsc.cmd' : 'tsc');
if (existsSync(tsc)) {
  const types = spawnSync(tsc, ['-p', 'tsconfig.types.json'], { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' });
  if (types.status !== 0) throw new Error('tsc -p tsconfig.types.json failed');
} else {
  console.warn('keytunnel: typescript not installed; dist/types (keytunnel/testing declarations) not emitted');
}

const inputs = Object.keys(result.metafile.inputs).sort();
writeFileSync(
  join(dist, '.build-stamp'),
  JSON.stringify({ builtAt: new Date().toISOString(), esbuild: esbuildVersion, node: process.version, inputs }, null, 2) + '\n',
);
const outputs = Object.keys(result.metafile.outputs).length;
console.log(`keytunnel: built dist/keytunnel.mjs (${inputs.length} sources, ${outputs} files) in ${Date.now() - started} ms`);
