import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

/**
 * Four projects: `unit` (host-only tests, run in parallel), `vm` (tests that boot a Debian kernel under qemu;
 * scripts/vm/run-guest.sh lets one guest run per 2 CPUs, so they run one file at a time), `windows` (the
 * Windows node.exe under Wine, test/windows/; one file at a time, each Wine program takes a core), `rdp` (files
 * named *.rdp.test.ts: a real xrdp + FreeRDP connection on this machine, as root; one file at a time) and `docker`
 * (`*.docker.test.ts`: the container image built from the Dockerfile and run through testcontainers; its global
 * setup starts dockerd and builds the image, one file at a time). `npm test` runs the unit project first, so a
 * broken codec fails in two minutes rather than after the slower suites. The examples/ run as users run them:
 * `keytunnel/testing` and `keytunnel/testcontainers` resolve to the sources here.
 */
const VM_TESTS = ['test/vm/**/*.test.ts', 'test/agent/hid/vm-node-hid.test.ts', 'test/relay/vm.test.ts'];
const WINDOWS_TESTS = ['test/windows/**/*.test.ts'];
/** A real RDP connection (xrdp + FreeRDP on this machine, root): one file at a time, they share xrdp-sesman's port. */
const RDP_TESTS = ['test/**/*.rdp.test.ts'];
const DOCKER_TESTS = ['test/**/*.docker.test.ts', 'examples/**/*.docker.test.ts'];

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
