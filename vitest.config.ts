import { defineConfig } from 'vitest/config';
import { TIER_SUFFIX } from './test/tiers.ts';

/**
 * Three projects, chosen by file name (test/tiers.ts): `unit` (every other `*.test.ts`: host-only tests, run in
 * parallel), `vm` (`*.vm.test.ts`: tests that boot a Debian kernel under qemu; scripts/vm/run-guest.sh lets one
 * guest run per 2 CPUs, so they run one file at a time) and `windows` (`*.wine.test.ts`: the Windows node.exe
 * under Wine; one file at a time, each Wine program takes a core). `npm test` runs the unit project first, so a
 * broken codec fails in two minutes rather than after the slower suites. The VM and Wine harnesses refuse to run
 * from a file not named for their tier, so such a test cannot join the unit tier by accident.
 */
const VM_TESTS = [`test/**/*${TIER_SUFFIX.vm}`];
const WINDOWS_TESTS = [`test/**/*${TIER_SUFFIX.windows}`];

export default defineConfig({
  test: {
    testTimeout: 20_000,
    hookTimeout: 60_000,
    projects: [
      { extends: true, test: { name: 'unit', include: ['test/**/*.test.ts'], exclude: [...VM_TESTS, ...WINDOWS_TESTS] } },
      { extends: true, test: { name: 'vm', include: VM_TESTS, fileParallelism: false } },
      { extends: true, test: { name: 'windows', include: WINDOWS_TESTS, fileParallelism: false } },
    ],
  },
});
