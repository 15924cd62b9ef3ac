import { defineConfig } from 'vitest/config';

/**
 * Three projects: `unit` (host-only tests, run in parallel), `vm` (tests that boot a Debian kernel under qemu;
 * scripts/vm/run-guest.sh lets one guest run per 2 CPUs, so they run one file at a time) and `windows` (the
 * Windows node.exe under Wine, test/windows/; one file at a time, each Wine program takes a core). `npm test`
 * runs the unit project first, so a broken codec fails in two minutes rather than after the slower suites.
 */
const VM_TESTS = ['test/vm/**/*.test.ts', 'test/agent/hid/vm-node-hid.test.ts', 'test/relay/vm.test.ts'];
const WINDOWS_TESTS = ['test/windows/**/*.test.ts'];

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
