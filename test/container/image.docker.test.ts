/**
 * The container image built from the Dockerfile (on the local debootstrap base, by the docker project's global
 * setup): what it holds, that its default command answers its own HEALTHCHECK, that it refuses a non-loopback
 * face without the opt-in, and that KeytunnelContainer (testcontainers, reaper disabled, host network) serves
 * real ceremonies that @simplewebauthn/server verifies.
 */
import { spawnSync } from 'node:child_process';
import {
  generateAuthenticationOptions,
  generateRegistrationOptions,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
} from '@simplewebauthn/server';
import { afterAll, describe, expect, it } from 'vitest';
import { KeytunnelContainer, type StartedKeytunnelContainer } from '../../testcontainers/index.ts';
import { WebAuthnTestClient } from '../../testing/index.ts';
import { inspectImage } from './docker.ts';

const image = process.env.KEYTUNNEL_IMAGE!;

function docker(...args: string[]): { code: number | null; out: string } {
  const r = spawnSync('docker', args, { timeout: 120_000 });
  return { code: r.status, out: `${r.stdout?.toString() ?? ''}${r.stderr?.toString() ?? ''}` };
}

const containers: string[] = [];
let started: StartedKeytunnelContainer | undefined;
afterAll(async () => {
  await started?.stop();
  for (const id of containers) docker('rm', '-f', id);
});

describe('the keytunnel image', () => {
  it('runs the bundle alone as a non-root user, with a HEALTHCHECK and keytunnel soft as the default command', () => {
    expect(inspectImage(image, '{{.Config.User}}')).toBe('10001:10001');
    expect(inspectImage(image, '{{json .Config.Healthcheck.Test}}')).toBe('["CMD","node","/app/healthcheck.mjs"]');
    expect(inspectImage(image, '{{json .Config.Entrypoint}}')).toBe('["node","/app/keytunnel.mjs"]');
    expect(JSON.parse(inspectImage(image, '{{json .Config.Cmd}}'))).toEqual([
      'soft',
      '--hid',
      'loopback:0.0.0.0:8090',
      '--allow-unauthenticated-remote-access',
      '--approve',
      'always',
      '--state-dir',
      '/home/keytunnel/state',
    ]);
    const listing = docker('run', '--rm', '--network', 'none', '--entrypoint', 'node', image, '-e',
      "const fs=require('fs');console.log(JSON.stringify({uid:process.getuid(),app:fs.readdirSync('/app').sort(),nm:fs.existsSync('/app/node_modules')||fs.existsSync('/node_modules')}))");
    expect(listing.code, listing.out).toBe(0);
    expect(JSON.parse(listing.out.trim().split('\n').pop()!)).toEqual({ uid: 10001, app: ['dist', 'healthcheck.mjs', 'keytunnel.mjs', 'package.json'], nm: false });
  });

  it('the default command becomes healthy (CTAPHID_INIT answered on port 8090 inside its own network namespace)', async () => {
    // --network none: the default command's 0.0.0.0 face is reachable from nowhere but the container itself.
    const run = docker('run', '-d', '--network', 'none', image);
    expect(run.code, run.out).toBe(0);
    const id = run.out.trim();
    containers.push(id);
    const deadline = Date.now() + 60_000;
    let status = '';
    while (Date.now() < deadline) {
      status = docker('inspect', '--format', '{{.State.Health.Status}}', id).out.trim();
      if (status === 'healthy' || status === 'unhealthy') break;
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(status, docker('logs', id).out).toBe('healthy');
    expect(docker('logs', id).out).toMatch(/listening on loopback:0\.0\.0\.0:8090/);
  });

  it('refuses a non-loopback face without --allow-unauthenticated-remote-access', () => {
    const r = docker('run', '--rm', '--network', 'none', image, 'soft', '--hid', 'loopback:0.0.0.0:8090', '--approve', 'always');
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(/refusing to listen on 0\.0\.0\.0/);
  });

  it('KeytunnelContainer: register and sign in through the container, verified by the RP', async () => {
    expect(process.env.TESTCONTAINERS_RYUK_DISABLED).toBe('true');
    started = await new KeytunnelContainer(image).withHostNetwork().start();
    const device = started.getDevice();
    expect(device.host).toBe('127.0.0.1');
    const client = new WebAuthnTestClient({ device, origin: 'https://example.com' });
    try {
      const regOptions = await generateRegistrationOptions({ rpName: 'Example', rpID: 'example.com', userName: 'carol', supportedAlgorithmIDs: [-8], attestationType: 'direct' });
      const reg = await verifyRegistrationResponse({
        response: await client.register(regOptions),
        expectedChallenge: regOptions.challenge,
        expectedOrigin: 'https://example.com',
        expectedRPID: 'example.com',
        supportedAlgorithmIDs: [-8],
        requireUserVerification: false,
      });
      expect(reg.verified).toBe(true);
      expect(reg.registrationInfo!.fmt).toBe('packed');
      const authOptions = await generateAuthenticationOptions({ rpID: 'example.com', allowCredentials: [{ id: reg.registrationInfo!.credential.id }] });
      const auth = await verifyAuthenticationResponse({
        response: await client.authenticate(authOptions),
        expectedChallenge: authOptions.challenge,
        expectedOrigin: 'https://example.com',
        expectedRPID: 'example.com',
        credential: reg.registrationInfo!.credential,
        requireUserVerification: false,
      });
      expect(auth.verified).toBe(true);
    } finally {
      await client.close();
    }
    await started.stop();
    started = undefined;
  });
});
