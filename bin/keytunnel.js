#!/usr/bin/env node
// Entry point of the npm package and of a git checkout.
//
// Installed package (no TypeScript sources beside bin/): always runs the prebuilt bundle dist/keytunnel.mjs
// (built by `prepack`) with plain node — never a TypeScript loader, never another code path. A package without
// its bundle is broken and says so.
//
// Git checkout (cli/main.ts exists): runs the bundle (built by `npm ci` through `prepare`, or `npm run build`)
// while it is up to date — no tsx loader in memory, ~35 MB less RSS for a long-running gateway. When any
// source file is newer than the bundle (a developer editing sources must never run stale code), or with
// KEYTUNNEL_NO_BUNDLE=1, it runs the TypeScript sources through tsx, a devDependency present in a checkout.
// (Not a rebuild here: many processes start at once in the tests and would race on dist/.) The freshness
// check is a stat of each source file (~100 files, a few ms).
import { existsSync, readdirSync, statSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';

const ROOT = new URL('../', import.meta.url);
const BUNDLE = new URL('dist/keytunnel.mjs', ROOT);
const STAMP = new URL('dist/.build-stamp', ROOT);
const SOURCE_DIRS = ['agent', 'device', 'gateway', 'protocol', 'tunnel', 'cli'];

/** True when dist/ was built after the last change to any source file (or directory, so adds/removes count). */
function bundleIsFresh() {
  let built;
  try {
    built = statSync(STAMP).mtimeMs;
  } catch {
    return false;
  }
  if (statSync(new URL('scripts/build.mjs', ROOT)).mtimeMs > built) return false;
  const pending = SOURCE_DIRS.map((d) => new URL(`${d}/`, ROOT));
  while (pending.length > 0) {
    const dir = pending.pop();
    let entries;
    try {
      if (statSync(dir).mtimeMs > built) return false;
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const entry of entries) {
      if (entry.isDirectory()) pending.push(new URL(`${entry.name}/`, dir));
      else if (entry.isFile() && statSync(new URL(entry.name, dir)).mtimeMs > built) return false;
    }
  }
  return true;
}

function fail(message) {
  console.error(`keytunnel: ${message}`);
  process.exit(1);
}

// A gateway idles for days and does little per message (it forwards whole CTAP messages; TLS is native), so it
// runs without V8's optimizing JIT and with size-tuned heap/code heuristics: measured idle RSS (bundle) 74-78 ->
// 60-61 MB, a ceremony through it +~0.7 ms median. Set before any of its code loads. Not --lite-mode (another
// ~3 MB less): set at run time it aborts the process on any WebAssembly compile (tsx's and undici's lexers).
// Other commands (the agent's soft authenticator does its crypto in JS) keep the optimizing JIT.
const command = process.argv.slice(2).find((a) => !a.startsWith('-'));
if (command === 'gateway') {
  setFlagsFromString('--no-opt');
  setFlagsFromString('--optimize-for-size');
}
// The agent keeps the optimizing JIT (its soft authenticator parses and encodes CBOR in JS) but runs with V8's
// size-tuned heap heuristics and without growing its young generation (with the growth factor at 1 it stays at
// its initial 1 MB semi-spaces; --max-semi-space-size would say the same but cannot be set once the heap exists,
// and NODE_OPTIONS refuses both flags). Measured with 50 gateways doing ceremonies back to back: peak RSS
// 139-158 MB -> 97-99 MB, ceremonies/s unchanged within the noise (docs/bench/README.md).
if (command === 'agent') {
  setFlagsFromString('--optimize-for-size');
  setFlagsFromString('--semi-space-growth-factor=1');
}

const checkout = existsSync(new URL('cli/main.ts', ROOT));
let main;
if (!checkout) {
  if (!existsSync(BUNDLE)) fail(`this package has no dist/keytunnel.mjs (a package built without its prepack step): reinstall it`);
  ({ main } = await import('../dist/keytunnel.mjs'));
} else if (process.env.KEYTUNNEL_NO_BUNDLE !== '1' && bundleIsFresh()) {
  ({ main } = await import('../dist/keytunnel.mjs'));
} else {
  let register;
  try {
    ({ register } = await import('tsx/esm/api'));
  } catch {
    fail(
      'this checkout has no up-to-date bundle and no tsx (installed with --omit=dev?): run `npm ci` (with dev ' +
        'dependencies) or `npm run build`, or install the package tarball or a single executable instead',
    );
  }
  register();
  ({ main } = await import('../cli/main.ts'));
}
await main(process.argv.slice(2));
