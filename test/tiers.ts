/**
 * Test tiers, chosen by file name (vitest.config.ts builds its projects from these suffixes):
 *
 *   *.vm.test.ts      `vm`: boots the qemu guest of scripts/vm/ (test/vm/harness.ts); one file at a time
 *   *.wine.test.ts    `windows`: runs the Windows node.exe under Wine (test/windows/wine.ts); one file at a time
 *   *.rdp.test.ts     `rdp`: a real xrdp + FreeRDP connection on this machine (root); one file at a time
 *   *.docker.test.ts  `docker`: the container image, built and run through testcontainers; one file at a time
 *   *.test.ts         `unit`: everything else, host only, files in parallel
 *
 * A harness that needs a tier calls `requireTier` first, so a test that boots a VM or starts Wine but is named
 * like a unit test fails at once with the fix, instead of silently running in the unit tier's parallel pool.
 * This module must not import vitest: vitest.config.ts imports it.
 */
import { basename } from 'node:path';

export type HarnessTier = 'vm' | 'windows';
export type Tier = HarnessTier | 'rdp' | 'docker';

/** The file-name suffix of each tier that needs more than the host. */
export const TIER_SUFFIX: Readonly<Record<Tier, string>> = {
  vm: '.vm.test.ts',
  windows: '.wine.test.ts',
  rdp: '.rdp.test.ts',
  docker: '.docker.test.ts',
};

/** What each harness tier needs (for the error message). */
const TIER_HARNESS: Readonly<Record<HarnessTier, string>> = {
  vm: 'boots the qemu guest (test/vm/harness.ts)',
  windows: 'runs Windows programs under Wine (test/windows/wine.ts)',
};

/**
 * Throws unless `testPath` (the running vitest file; undefined outside vitest, e.g. in a script) is named for one
 * of `tiers` (the first is the one a misnamed file is told to use). Called by a harness before it does its
 * expensive work.
 */
export function requireTier(tiers: HarnessTier | readonly HarnessTier[], testPath: string | undefined): void {
  if (testPath === undefined) return;
  const allowed = typeof tiers === 'string' ? [tiers] : tiers;
  if (allowed.some((t) => testPath.endsWith(TIER_SUFFIX[t]))) return;
  const tier = allowed[0]!;
  throw new Error(
    `${basename(testPath)} ${TIER_HARNESS[tier]}, so it belongs to the ${tier} tier: ` +
      `rename it to *${TIER_SUFFIX[tier]} (vitest.config.ts picks tiers by file name; see test/tiers.ts)`,
  );
}
