/**
 * globalSetup of the `docker` vitest project: a Docker engine, the local base image and the keytunnel image
 * built from the repository's Dockerfile, once per run. The tests find the image in KEYTUNNEL_IMAGE; the
 * testcontainers reaper (Ryuk) is disabled because its image cannot be pulled here (the tests stop their
 * containers themselves).
 */
import { buildTestImage, ensureDocker } from './docker.ts';

export default async function setup(): Promise<void> {
  await ensureDocker();
  process.env.KEYTUNNEL_IMAGE = buildTestImage();
  process.env.TESTCONTAINERS_RYUK_DISABLED = 'true';
  // This machine runs inside a container (/.dockerenv) and the engine has no bridge network, where testcontainers
  // would look for the host's address: the containers share the host's network, so the host is 127.0.0.1.
  process.env.TESTCONTAINERS_HOST_OVERRIDE ??= '127.0.0.1';
}
