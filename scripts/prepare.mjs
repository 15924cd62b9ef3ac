/**
 * npm's `prepare` (runs on `npm ci` / `npm install` in a git checkout): build dist/ with scripts/build.mjs.
 * esbuild is a devDependency, so after `npm ci --omit=dev` it is missing: then say so and succeed, rather than
 * failing the install — bin/keytunnel.js then explains that this checkout has neither a bundle nor tsx. (Users
 * who want no dev dependencies install the package tarball or a single executable instead; see README.)
 */
try {
  await import('esbuild');
} catch {
  console.error(
    'keytunnel: esbuild is not installed (npm ci --omit=dev?): dist/ not built. A git checkout needs its dev ' +
      'dependencies (npm ci); without them install the package (npm install -g keytunnel-<version>.tgz) or use a ' +
      'single executable.',
  );
  process.exit(0);
}
await import('./build.mjs');
