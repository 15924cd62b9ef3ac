/**
 * Issue 16 end to end: passkeys registered through two gateways (real agent + gateways over TLS 1.3, the demo's
 * WebAuthn client on each gateway's loopback device), listed per VM, one deleted (that VM's next sign-in fails),
 * the store backed up and restored into a fresh installation where the VM signs in again — every sign-in
 * verified by the relying party with the public key it stored at registration.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CtaphidClient } from '../../agent/authenticators/hardware/ctaphid-client.ts';
import { LoopbackTransport } from '../../agent/authenticators/hardware/loopback-transport.ts';
import { AlwaysPresence } from '../../agent/presence/always.ts';
import type { AgentService } from '../../cli/commands/agent.ts';
import type { GatewayService } from '../../cli/commands/gateway.ts';
import { passkeysBackup, passkeysList, passkeysRestore, passkeysRm } from '../../cli/commands/passkeys.ts';
import { trustAdd } from '../../cli/commands/trust.ts';
import { WebAuthnError, type CtapCommandPort } from './passkeys-helpers.ts';
import { createLogger } from '../../cli/log.ts';
import type { PasskeyRow } from '../../cli/passkeys/listing.ts';
import { CTAP2_ERR_NO_CREDENTIALS } from '../../protocol/ctap2.ts';
import { loadOrCreateIdentity } from '../../tunnel/identity.ts';
import { PASS, captureIo, register, relyingParty, signIn } from './passkeys-helpers.ts';
import { startRelay } from '../support/relay.ts';

const log = createLogger({ level: 'error' });
let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'kt-passkeys-relay-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

interface Running {
  readonly agent: AgentService;
  readonly gateways: GatewayService[];
  readonly clients: CtaphidClient[];
  /** One CTAP port per gateway (its VM's view). */
  readonly ports: CtapCommandPort[];
  stop(): Promise<void>;
}

async function fingerprint(dir: string): Promise<string> {
  return (await loadOrCreateIdentity(dir)).identity.fingerprint;
}

/** The agent (soft authenticator on `agentDir`) and one gateway per directory, each with a client on its device. */
async function start(agentDir: string, gatewayDirs: readonly string[], passphrase = PASS): Promise<Running> {
  const relay = await startRelay({
    agent: { stateDir: agentDir },
    agentIo: { log, passphrase, presence: new AlwaysPresence() },
    gateways: gatewayDirs.map((stateDir) => ({ stateDir, name: 'vm' })),
    gatewayIo: { log },
  });
  const { agent, gateways } = relay;
  const clients: CtaphidClient[] = [];
  const stop = async (): Promise<void> => {
    for (const c of clients) await c.close().catch(() => undefined);
    await relay.close();
  };
  try {
    for (const g of gateways) {
      const device = g.core.list()[0]!;
      clients.push(await CtaphidClient.open(await LoopbackTransport.connect(device.address!.host, device.address!.port)));
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { agent, gateways, clients, ports: clients.map((c) => (request: Uint8Array) => c.cbor(request)), stop };
}

async function listJson(stateDir: string, extra: { gateway?: string } = {}, passphrase = PASS): Promise<PasskeyRow[]> {
  const io = captureIo({ KEYTUNNEL_PASSPHRASE: passphrase });
  await passkeysList({ stateDir, profile: 'default', ...extra, json: true }, io);
  return JSON.parse(io.lines.join('\n')) as PasskeyRow[];
}

it('two gateways: list per VM, rm (the VM\'s next sign-in fails), backup, restore into a fresh installation, sign in there', async () => {
  const agentDir = join(root, 'agent');
  const gwA = join(root, 'gw-a');
  const gwB = join(root, 'gw-b');
  const [fpA, fpB] = [await fingerprint(gwA), await fingerprint(gwB)];
  await trustAdd({ fingerprint: fpA, name: 'customer-a', 'state-dir': agentDir }, () => {});
  await trustAdd({ fingerprint: fpB, name: 'customer-b', 'state-dir': agentDir }, () => {});
  const login = relyingParty('login.example.com');
  const shop = relyingParty('shop.example.com');

  let run = await start(agentDir, [gwA, gwB]);
  let alice: string, bob: string, carol: string;
  try {
    alice = await register(login, run.ports[0]!, 'alice@a.example');
    bob = await register(login, run.ports[1]!, 'bob@b.example');
    carol = await register(shop, run.ports[1]!, 'carol@b.example');
    await signIn(login, run.ports[0]!, alice);
    // A VM sees only its own scope: B cannot use A's passkey.
    const cross = await signIn(login, run.ports[1]!, alice).catch((e: unknown) => e);
    expect((cross as WebAuthnError).ctapStatus).toBe(CTAP2_ERR_NO_CREDENTIALS);
  } finally {
    await run.stop();
  }

  // Per VM, JSON and table.
  const all = await listJson(agentDir);
  expect(all.map((r) => [r.gateway, r.rpId, r.userName, r.credentialId]).sort()).toEqual(
    [
      ['customer-a', 'login.example.com', 'alice@a.example', alice],
      ['customer-b', 'login.example.com', 'bob@b.example', bob],
      ['customer-b', 'shop.example.com', 'carol@b.example', carol],
    ].sort(),
  );
  expect(all.find((r) => r.credentialId === alice)).toMatchObject({ signCount: 1, alg: -7, gatewayFingerprint: fpA });
  expect((await listJson(agentDir, { gateway: 'customer-b' })).map((r) => r.credentialId).sort()).toEqual([bob, carol].sort());
  const table = captureIo();
  await passkeysList({ stateDir: agentDir, profile: 'default', gateway: 'customer-a' }, table);
  expect(table.lines).toHaveLength(2);
  expect(table.lines[1]).toMatch(/^customer-a\s+login\.example\.com\s+alice@a\.example/);

  // Delete bob's login passkey; B's next sign-in with it fails, carol's still works.
  await passkeysRm({ stateDir: agentDir, profile: 'default', ids: [bob], yes: true }, captureIo());
  run = await start(agentDir, [gwB]);
  try {
    const gone = await signIn(login, run.ports[0]!, bob).catch((e: unknown) => e);
    expect((gone as WebAuthnError).ctapStatus).toBe(CTAP2_ERR_NO_CREDENTIALS);
    expect((await signIn(shop, run.ports[0]!, carol)).id).toBe(carol);
  } finally {
    await run.stop();
  }

  // Back up; restore into a fresh installation (another store passphrase) that trusts the same gateways.
  const file = join(root, 'laptop.ktb');
  await passkeysBackup({ stateDir: agentDir, profile: 'default', out: file }, captureIo());
  const newDir = join(root, 'new-laptop');
  await trustAdd({ fingerprint: fpA, name: 'customer-a', 'state-dir': newDir }, () => {});
  await trustAdd({ fingerprint: fpB, name: 'customer-b', 'state-dir': newDir }, () => {});
  const NEW_PASS = 'the new laptop';
  await passkeysRestore({ stateDir: newDir, profile: 'default', file }, captureIo({ KEYTUNNEL_PASSPHRASE: NEW_PASS }));
  expect((await listJson(newDir, {}, NEW_PASS)).map((r) => [r.gateway, r.credentialId]).sort()).toEqual(
    [
      ['customer-a', alice],
      ['customer-b', carol],
    ].sort(),
  );
  run = await start(newDir, [gwA, gwB], NEW_PASS);
  try {
    expect(await signIn(login, run.ports[0]!, alice)).toEqual({ id: alice, newCounter: 2 });
    expect((await signIn(login, run.ports[0]!)).id).toBe(alice); // discoverable, through the VM
    expect((await signIn(shop, run.ports[1]!, carol)).id).toBe(carol);
  } finally {
    await run.stop();
  }
}, 120_000);
