/**
 * Relay transparency: the python-fido2 0.9.1 interop suite (test/interop/fido2_loopback.py) pointed at the
 * GATEWAY's loopback face — VM client → gateway device engine → TLS tunnel → agent → soft authenticator — passes
 * exactly the checks it passes against `keytunnel soft` directly (run here too, on a fresh store, for comparison),
 * including ClientPin with both protocols, credential management and the getInfo-after-setPIN cache refresh.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSoft } from '../../cli/commands/soft.ts';
import { loadOrCreateIdentity } from '../../tunnel/identity.ts';
import { runFido2Script, type InteropSummary } from '../interop/run-fido2-script.ts';
import { startRelay, type Relay } from '../support/relay.ts';

const log = pino({ level: 'silent' });
let base: string;
let relay: Relay | undefined;

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'kt-relay-interop-'));
});
afterAll(async () => {
  await relay?.close();
  await rm(base, { recursive: true, force: true });
});

async function direct(): Promise<InteropSummary> {
  const service = await startSoft(
    { hid: { kind: 'loopback', host: '127.0.0.1', port: 0 }, stateDir: join(base, 'direct'), profile: 'interop', approve: 'always' },
    { log, passphrase: 'interop passphrase', input: new PassThrough(), output: new PassThrough() },
  );
  try {
    return (await runFido2Script(service.address!.host, service.address!.port)).summary;
  } finally {
    await service.close();
  }
}

describe('python-fido2 through the relay', () => {
  it('passes the same suite through agent + tunnel + gateway as against keytunnel soft directly', async () => {
    const agentDir = join(base, 'agent');
    const gatewayDir = join(base, 'gateway');
    const gatewayFp = (await loadOrCreateIdentity(gatewayDir)).identity.fingerprint;
    relay = await startRelay({
      agent: { trust: [gatewayFp], stateDir: agentDir, profile: 'interop' },
      agentIo: { log, passphrase: 'interop passphrase' },
      gateways: [{ stateDir: gatewayDir }],
      gatewayIo: { log },
    });
    const gateway = relay.gateways[0];
    const device = gateway.core.list()[0];
    expect(device).toBeDefined();

    const relayed = await runFido2Script(device.address!.host, device.address!.port);
    const reference = await direct();
    // Check for check, the same outcome through the relay as directly...
    const outcome = (s: InteropSummary) => s.checks.map((c) => `${c.name}: ${c.ok ? 'ok' : c.error}`);
    expect(outcome(relayed.summary), relayed.stderr).toEqual(outcome(reference));
    // ...and that outcome is a full pass.
    expect(relayed.summary.checks.filter((c) => !c.ok), relayed.stderr).toEqual([]);
    expect(relayed.code).toBe(0);
    expect(relayed.summary).toMatchObject({ ok: true, failed: 0, fido2: '0.9.1' });
    // What the client observed is the same, too (getInfo as announced, U2F, PIN retries, credentials).
    for (const key of ['u2f', 'pinRetries', 'credMgmtV2', 'discoverable']) {
      expect(relayed.summary[key], key).toEqual(reference[key]);
    }
    expect(relayed.summary.info).toEqual(reference.info);
    // Every CTAP request but getInfo crossed the tunnel.
    expect(gateway.core.requestsSent).toBeGreaterThan(20);
  }, 180_000);
});
