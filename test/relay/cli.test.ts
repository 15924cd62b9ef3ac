/**
 * The real commands as processes: `keytunnel demo` exits 0 with every step printed; `keytunnel agent` and
 * `keytunnel gateway` pair over TLS on 127.0.0.1, the VM side gets a working device, and both exit 0 on
 * SIGINT / SIGTERM after removing the device and closing the tunnel.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CtaphidClient } from '../../agent/authenticators/hardware/ctaphid-client.ts';
import { LoopbackTransport } from '../../agent/authenticators/hardware/loopback-transport.ts';
import { loadOrCreateIdentity } from '../../tunnel/identity.ts';
import { killAll, runCli } from '../support/cli-process.ts';
import { waitFor } from '../support/wait-for.ts';

const dirs: string[] = [];
afterEach(async () => {
  killAll();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

const run = runCli;

/** These spawn whole CLI processes: give them longer than the in-process default. */
const WAIT_MS = 15_000;

describe('keytunnel demo', () => {
  it('runs the whole relay on 127.0.0.1 and exits 0', async () => {
    const p = run(['demo']);
    const { code } = await p.exited;
    expect(code, p.stderr()).toBe(0);
    const out = p.stdout();
    expect(out).toMatch(/\[1\] CTAPHID INIT .* 0 tunnel round trips/);
    expect(out).toMatch(/\[2\] getInfo .*FIDO_2_1.* 0 tunnel round trips/);
    expect(out).toMatch(/\[3\] makeCredential +packed attestation verified by the RP .* 1 tunnel round trip\b/);
    expect(out).toMatch(/\[4\] getAssertion +signature verified by the RP; .* 1 tunnel round trip\b/);
    expect(out).toMatch(/OK: registered and signed in through the tunnel with 2 tunnel round trips in \d+ ms/);
    expect(out).toContain('"keytunnel-demo"'); // the fixed demo passphrase is disclosed
  }, 60_000);
});

describe('keytunnel agent / gateway processes', () => {
  it('pair, serve the VM, and exit 0 on SIGINT / SIGTERM with the device removed', async () => {
    const agentDir = await mkdtemp(join(tmpdir(), 'kt-cli-agent-'));
    const gatewayDir = await mkdtemp(join(tmpdir(), 'kt-cli-gw-'));
    dirs.push(agentDir, gatewayDir);
    const agentFp = (await loadOrCreateIdentity(agentDir)).identity.fingerprint;
    const gatewayFp = (await loadOrCreateIdentity(gatewayDir)).identity.fingerprint;

    const agent = run(
      ['agent', '--soft', '--approve', 'always', '--listen', '127.0.0.1:0', '--trust', gatewayFp, '--state-dir', agentDir],
      { KEYTUNNEL_PASSPHRASE: 'cli test passphrase' },
    );
    const port = await waitFor('the agent to listen', () => /listening on 127\.0\.0\.1:(\d+)/.exec(agent.stderr())?.[1], WAIT_MS);
    const gateway = run([
      'gateway',
      '--hid',
      'loopback:127.0.0.1:0',
      '--connect',
      `127.0.0.1:${port}`,
      '--trust',
      agentFp.replaceAll(':', '').toUpperCase(), // any accepted spelling
      '--state-dir',
      gatewayDir,
      '--name',
      'cli-vm',
    ]);
    const facePort = await waitFor('the virtual device', () => /"face":"loopback:127\.0\.0\.1:(\d+)"/.exec(gateway.stderr())?.[1], WAIT_MS);
    const client = await CtaphidClient.open(await LoopbackTransport.connect('127.0.0.1', Number(facePort)));
    const info = await client.cbor(Uint8Array.of(0x04));
    expect(info[0]).toBe(0);
    await client.close();
    expect(agent.stderr()).toContain('cli-vm'); // the agent knows the gateway by the name it announced

    gateway.child.kill('SIGTERM');
    expect(await gateway.exited).toEqual({ code: 0, signal: null });
    expect(gateway.stderr()).toMatch(/virtual device for \\"keytunnel soft authenticator\\" removed/);
    expect(gateway.stderr()).toContain('"msg":"stopped"');

    agent.child.kill('SIGINT');
    expect(await agent.exited).toEqual({ code: 0, signal: null });
    expect(agent.stderr()).toContain('"msg":"stopped"');
  }, 60_000);

  it('refuses to start without anything to export or without a tunnel endpoint (exit 1, one clear line)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kt-cli-bad-'));
    dirs.push(dir);
    const nothing = run(['agent', '--listen', '127.0.0.1:0', '--state-dir', dir]);
    expect((await nothing.exited).code).toBe(1);
    expect(nothing.stderr()).toContain('nothing to export: give --soft, --hardware, or both');
    const noEndpoint = run(['gateway', '--hid', 'loopback:127.0.0.1:0', '--state-dir', dir]);
    expect((await noEndpoint.exited).code).toBe(1);
    expect(noEndpoint.stderr()).toContain('give exactly one of --listen HOST:PORT or --connect HOST:PORT');
  }, 30_000);
});
