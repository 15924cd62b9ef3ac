/**
 * Entry of the single executables (Node SEA; built by scripts/build-exe.mjs as one CommonJS bundle). What
 * bin/keytunnel.js does for the npm package, plus what a bundle inside an executable needs:
 * - user arguments start at argv[2] (argv[1] is the executable itself);
 * - the gateway's V8 flags (see bin/keytunnel.js) are set before any of its code loads;
 * - `import.meta.url` of keytunnel's own modules is replaced (scripts/build-exe.mjs) by a getter returning a
 *   file URL in this build's asset directory (cli/sea/assets.ts), so `new URL('./uhid-reader-worker.js',
 *   import.meta.url)` in device/faces/uhid/uhid.ts names the reader script, written there (with a package.json
 *   saying it is an ES module) the first time it is asked for; dependencies' import.meta.url (yargs reads it
 *   at load) is the executable's own file URL, which writes nothing.
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import sea from 'node:sea';
import { exeAssetDir } from './assets.ts';

const argv = process.argv.slice(2);

if (argv.find((a) => !a.startsWith('-')) === 'gateway') {
  setFlagsFromString('--no-opt');
  setFlagsFromString('--optimize-for-size');
}

Object.defineProperty(globalThis, '__KEYTUNNEL_EXE_URL', { value: pathToFileURL(process.execPath).href });

let moduleUrl: string | undefined;
Object.defineProperty(globalThis, '__KEYTUNNEL_MODULE_URL', {
  get(): string {
    if (moduleUrl === undefined) {
      const dir = exeAssetDir();
      dir.ensureText('package.json', '{ "type": "module" }\n');
      dir.materialize('uhid-reader-worker.js');
      moduleUrl = pathToFileURL(join(dir.dir, 'keytunnel.cjs')).href;
    }
    return moduleUrl;
  },
});

if (!sea.isSea()) {
  console.error('keytunnel: this bundle only runs inside the single executable');
  process.exit(1);
}

import('../main.ts')
  .then(({ main }) => main(argv))
  .catch((err: unknown) => {
    console.error(`keytunnel: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
