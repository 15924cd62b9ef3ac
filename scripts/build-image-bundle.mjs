/**
 * The container image's bundle (Dockerfile, build stage): `keytunnel` as one self-contained ES module tree
 * with every JavaScript dependency bundled in, so the runtime stage holds node and this directory only — no
 * node_modules, no npm. The native addons (node-hid, usb, @napi-rs/keyring) stay out: the image runs `keytunnel soft`
 * on a loopback face, and the CLI loads them lazily (only --hardware, hot-plug and the OS keychain need them).
 *
 *   node scripts/build-image-bundle.mjs OUT_DIR
 *
 * OUT_DIR gets keytunnel.mjs (the entry, which calls main()), dist/keytunnel.mjs (+ chunks, uhid-reader-worker.js;
 * the layout of the npm package, whose CLI reads ../package.json for its version), package.json (name, version,
 * type) and healthcheck.mjs.
 */
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = process.argv[2];
if (out === undefined) {
  console.error('usage: node scripts/build-image-bundle.mjs OUT_DIR');
  process.exit(2);
}
const dir = resolve(out);
rmSync(dir, { recursive: true, force: true });
mkdirSync(join(dir, 'dist'), { recursive: true });

await build({
  absWorkingDir: root,
  entryPoints: { keytunnel: 'cli/main.ts' },
  outdir: join(dir, 'dist'),
  outExtension: { '.js': '.mjs' },
  chunkNames: 'chunk-[hash]',
  bundle: true,
  splitting: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  // Native addons (and pino-pretty, loaded only for a terminal) are not in the image.
  external: ['node-hid', 'usb', '@napi-rs/keyring', 'pino-pretty'],
  // CommonJS dependencies bundled into ESM still call require() for node built-ins.
  banner: { js: "import { createRequire as __keytunnelCreateRequire } from 'node:module'; const require = __keytunnelCreateRequire(import.meta.url);" },
  sourcemap: false,
  legalComments: 'none',
  logLevel: 'warning',
});
copyFileSync(join(root, 'device/faces/uhid/uhid-reader-worker.js'), join(dir, 'dist', 'uhid-reader-worker.js'));
copyFileSync(join(root, 'packaging/container/healthcheck.mjs'), join(dir, 'healthcheck.mjs'));
// The entry: the bundle exports main() (as bin/keytunnel.js calls it); it does not run on import.
writeFileSync(join(dir, 'keytunnel.mjs'), "import { main } from './dist/keytunnel.mjs';\nawait main(process.argv.slice(2));\n");
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: pkg.name, version: pkg.version, type: 'module', license: pkg.license }, null, 2) + '\n');
console.error(`keytunnel: built the image bundle in ${dir}`);
