import { defineConfig } from 'vitest/config';
import { fileURLToPath } from 'node:url';
import { TIER_SUFFIX } from './test/tiers.ts';

/**
 * Projects, chosen by file name (test/tiers.ts): `unit` (every other `*.test.ts`: host-only tests, run in
 * parallel; the examples/ too), `vm` (`*.vm.test.ts`: tests that boot a Debian kernel under qemu;
 * scripts/vm/run-guest.sh lets one guest run per 2 CPUs, so they run one file at a time), `windows`
 * (`*.wine.test.ts`: the Windows node.exe under Wine; one file at a time, each Wine program takes a core), `rdp`
 * (`*.rdp.test.ts`: a real xrdp + FreeRDP connection on this machine, as root; one file at a time, they share
 * xrdp-sesman's port) and `docker` (`*.docker.test.ts`: the container image built from the Dockerfile and run
 * through testcontainers; its global setup starts dockerd and builds the image). `npm test` runs the unit project
 * first, so a broken codec fails in two minutes rather than after the slower suites. The VM and Wine harnesses
 * refuse to run from a file not named for their tier, so such a test cannot join the unit tier by accident.
 * The examples/ run as users run them: `keytunnel/testing` and `keytunnel/testcontainers` resolve to the
 * sources here.
 */
const tier = (suffix: string) => [`test/**/*${suffix}`, `examples/**/*${suffix}`];
const VM_TESTS = tier(TIER_SUFFIX.vm);
const WINDOWS_TESTS = tier(TIER_SUFFIX.windows);
const RDP_TESTS = tier(TIER_SUFFIX.rdp);
const DOCKER_TESTS = tier(TIER_SUFFIX.docker);

export default defineConfig({
  resolve: {
    alias: {
      'keytunnel/testing': fileURLToPath(new URL('./testing/index.ts', import.meta.url)),
      'keytunnel/testcontainers': fileURLToPath(new URL('./testcontainers/index.ts', import.meta.url)),
    },
  },
  test: {
    testTimeout: 20_000,
    hookTimeout: 60_000,
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['test/**/*.test.ts', 'examples/**/*.test.ts'],
          exclude: [...VM_TESTS, ...WINDOWS_TESTS, ...RDP_TESTS, ...DOCKER_TESTS],
        },
      },
      { extends: true, test: { name: 'vm', include: VM_TESTS, fileParallelism: false } },
      { extends: true, test: { name: 'windows', include: WINDOWS_TESTS, fileParallelism: false } },
      { extends: true, test: { name: 'rdp', include: RDP_TESTS, fileParallelism: false } },
      {
        extends: true,
        test: {
          name: 'docker',
          include: DOCKER_TESTS,
          fileParallelism: false,
          // The first run makes the base image with debootstrap (a few minutes); later runs rebuild only the image.
          globalSetup: ['test/container/global-setup.ts'],
          hookTimeout: 120_000,
          testTimeout: 120_000,
        },
      },
    ],
  },
});
