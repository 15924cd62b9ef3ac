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
 * The packages in package.json's `dependencies` stay external (imported at run time from node_modules, native
 * addons and all) and are exactly what the bundle imports (checked below and by test/dist/package.test.ts);
 * everything else (the demo's @simplewebauthn/server, ...) is bundled, so an installed package needs no
 * devDependency. dist/exe/ (the single executables, scripts/build-exe.mjs) is left alone.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, version as esbuildVersion } from 'esbuild';
import { buildDefine, externalPackages, readPackage } from './build-info.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');

mkdirSync(dist, { recursive: true });
for (const entry of readdirSync(dist)) if (entry !== 'exe') rmSync(join(dist, entry), { recursive: true, force: true });

const pkg = readPackage(root);
const dependencies = Object.keys(pkg.dependencies ?? {});
// Optional peers (testcontainers, for keytunnel/testcontainers): external, installed by the user who wants them.
const peers = Object.keys(pkg.peerDependencies ?? {});
const { info, define } = buildDefine(root, 'bundle');

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
  external: [...dependencies, ...peers], // also covers their subpaths (yargs/helpers)
  define,
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
const outputTexts = Object.keys(result.metafile.outputs).map((file) => readFileSync(join(root, file), 'utf8'));
const externals = externalPackages(result.metafile, outputTexts);
const undeclared = externals.filter((d) => !dependencies.includes(d) && !peers.includes(d));
if (undeclared.length > 0) throw new Error(`the bundle loads packages missing from dependencies: ${undeclared.join(', ')}`);
const unused = dependencies.filter((d) => !externals.includes(d));
if (unused.length > 0) throw new Error(`package.json dependencies the bundle never imports: ${unused.join(', ')}`);
writeFileSync(
  join(dist, '.build-stamp'),
  JSON.stringify({ builtAt: new Date().toISOString(), ...info, esbuild: esbuildVersion, node: process.version, externals, inputs }, null, 2) + '\n',
);
const outputs = Object.keys(result.metafile.outputs).length;
console.error(`keytunnel: built dist/keytunnel.mjs (${inputs.length} sources, ${outputs} files) in ${Date.now() - started} ms`);
