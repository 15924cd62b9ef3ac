/**
 * `keytunnel demo` (= `npm run demo`): the whole relay in one process, on 127.0.0.1, on a fresh machine.
 *
 *   WebAuthn client (TS, CTAPHID over the loopback face) → gateway (device engine + RemoteAuthenticator)
 *     → TLS 1.3 mutual-auth tunnel → agent → soft authenticator
 *   and a sample relying party (@simplewebauthn/server) that verifies the registration and the sign-in.
 *
 * Everything is temporary: both identities and the soft authenticator's encrypted store live in a fresh temp
 * directory (removed at the end), the store passphrase is the fixed, public DEMO_PASSPHRASE, and user presence is
 * approved automatically. The two sides trust each other's fingerprints exactly as `--trust` would.
 * Prints each step (INIT, getInfo, makeCredential, getAssertion), the tunnel round trips each cost, and the time.
 * Exits 0 on success.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { AlwaysPresence } from '../../agent/presence/always.ts';
import { CtaphidClient } from '../../agent/authenticators/hardware/ctaphid-client.ts';
import { LoopbackTransport } from '../../agent/authenticators/hardware/loopback-transport.ts';
import { decode, isCborMap } from '../../protocol/cbor.ts';
import { CAPABILITY_CBOR, CAPABILITY_LOCK, CAPABILITY_NMSG, CAPABILITY_WINK } from '../../protocol/ctaphid.ts';
import { CTAP2_GET_INFO } from '../../protocol/ctap2.ts';
import { loadOrCreateIdentity } from '../../tunnel/identity.ts';
import { createLogger, logLevelOption, type Logger } from '../log.ts';
import { startAgentService, type AgentService } from './agent.ts';
import { startGatewayService, type GatewayService } from './gateway.ts';

/** The demo's soft-authenticator store passphrase. Public on purpose: the store is temporary and deleted. */
export const DEMO_PASSPHRASE = 'keytunnel-demo';
const DEMO_USER = 'alice@example.com';

export interface DemoResult {
  /** REQUEST frames (tunnel round trips) per step. */
  readonly roundTrips: { readonly init: number; readonly getInfo: number; readonly makeCredential: number; readonly getAssertion: number };
  readonly totalRoundTrips: number;
  readonly elapsedMs: number;
  readonly fmt: string;
  readonly signCount: number;
}

function short(fp: string): string {
  return `${fp.slice(0, 11)}…${fp.slice(-5)}`;
}

function capabilityNames(caps: number): string {
  const names: string[] = [];
  if (caps & CAPABILITY_WINK) names.push('WINK');
  if (caps & CAPABILITY_LOCK) names.push('LOCK');
  if (caps & CAPABILITY_CBOR) names.push('CBOR');
  names.push(caps & CAPABILITY_NMSG ? 'NMSG' : 'MSG');
  return names.join(' ');
}

function plural(n: number): string {
  return `${n} tunnel round trip${n === 1 ? '' : 's'}`;
}

/** Run the demo; `out` receives the human-readable lines. Throws on any failure (after cleaning up). */
export async function runDemo(out: (line: string) => void, log: Logger): Promise<DemoResult> {
  const started = performance.now();
  const dir = await mkdtemp(join(tmpdir(), 'keytunnel-demo-'));
  let agent: AgentService | undefined;
  let gateway: GatewayService | undefined;
  let client: CtaphidClient | undefined;
  try {
    const agentDir = join(dir, 'agent');
    const gatewayDir = join(dir, 'gateway');
    const agentFp = (await loadOrCreateIdentity(agentDir)).identity.fingerprint;
    const gatewayFp = (await loadOrCreateIdentity(gatewayDir)).identity.fingerprint;
    out('keytunnel demo: agent, TLS tunnel, gateway and a WebAuthn client in one process on 127.0.0.1');
    out(`  temporary state in ${dir} (deleted at the end)`);
    out(`  soft authenticator store passphrase: "${DEMO_PASSPHRASE}" (fixed demo value); user presence auto-approved`);

    agent = await startAgentService(
      {
        soft: true,
        hardware: false,
        listen: { host: '127.0.0.1', port: 0 },
        trust: [gatewayFp],
        stateDir: agentDir,
        profile: 'demo',
        approve: 'always',
        name: 'demo-laptop',
      },
      { log, passphrase: DEMO_PASSPHRASE, presence: new AlwaysPresence() },
    );
    out(`  agent    ${short(agentFp)}  listens on ${agent.address!.host}:${agent.address!.port}, trusts the gateway`);
    gateway = await startGatewayService(
      {
        hid: { kind: 'loopback', host: '127.0.0.1', port: 0 },
        connect: agent.address,
        trust: [agentFp],
        stateDir: gatewayDir,
        name: 'demo-vm',
      },
      { log },
    );
    const gw = gateway;
    const deadline = Date.now() + 10_000;
    while (gw.core.list().length === 0) {
      if (Date.now() > deadline) throw new Error('the gateway did not create the virtual device within 10 s');
      await new Promise((r) => setTimeout(r, 10));
    }
    const device = gw.core.list()[0];
    out(`  gateway  ${short(gatewayFp)}  dialed the agent (TLS 1.3, both certificates pinned by fingerprint)`);
    out(`  device   "${device.label}" on the ${device.description} face`);
    out('');

    const trips = (): number => gw.core.requestsSent;
    const ceremonyStart = performance.now();

    // [1] CTAPHID_INIT — answered by the gateway's device engine.
    const transport = await LoopbackTransport.connect(device.address!.host, device.address!.port);
    client = await CtaphidClient.open(transport);
    const c = client;
    const init = c.info!;
    const initTrips = trips();
    out(
      `[1] CTAPHID INIT          channel 0x${init.cid.toString(16).padStart(8, '0')}, CTAPHID v${init.protocolVersion}, ` +
        `capabilities ${capabilityNames(init.capabilities)}  — ${plural(initTrips)}`,
    );

    // [2] authenticatorGetInfo — answered from the gateway's cache.
    const infoAnswer = await c.cbor(Uint8Array.of(CTAP2_GET_INFO));
    if (infoAnswer[0] !== 0) throw new Error(`getInfo failed with CTAP status 0x${infoAnswer[0].toString(16)}`);
    const info = decode(infoAnswer.subarray(1));
    const versions = isCborMap(info) ? info.get(1) : undefined;
    const aaguid = isCborMap(info) ? info.get(3) : undefined;
    const infoTrips = trips() - initTrips;
    out(
      `[2] getInfo               ${Array.isArray(versions) ? versions.join(', ') : '?'}; AAGUID ` +
        `${aaguid instanceof Uint8Array ? Buffer.from(aaguid).toString('hex') : '?'}  — ${plural(infoTrips)} (gateway cache)`,
    );

    // The sample relying party (a devDependency: imported only here).
    const { DemoRelyingParty } = await import('../demo/relying-party.ts');
    const { WebAuthnTestClient } = await import('../../testing/webauthn-client.ts');
    const rp = new DemoRelyingParty();
    // keytunnel/testing's WebAuthn client, on this CTAPHID channel (so the tunnel round trips stay counted per step).
    const webauthn = new WebAuthnTestClient({ ctap: (request, opts) => c.cbor(request, { timeoutMs: opts?.timeoutMs }), origin: rp.origin });

    // [3] makeCredential — registration ceremony.
    const before3 = trips();
    const registration = await webauthn.register(await rp.registrationOptions(DEMO_USER));
    const registered = await rp.verifyRegistration(registration);
    const mcTrips = trips() - before3;
    out(
      `[3] makeCredential        ${registered.fmt} attestation verified by the RP (${rp.rpID}); credential ` +
        `${registered.credential.id.slice(0, 12)}…  — ${plural(mcTrips)}`,
    );

    // [4] getAssertion — sign-in ceremony.
    const before4 = trips();
    const assertion = await webauthn.authenticate(await rp.authenticationOptions());
    const { newCounter } = await rp.verifyAuthentication(assertion);
    const gaTrips = trips() - before4;
    out(`[4] getAssertion          signature verified by the RP; ${DEMO_USER} signed in, sign count ${newCounter}  — ${plural(gaTrips)}`);

    const ceremonyMs = performance.now() - ceremonyStart;
    const elapsedMs = performance.now() - started;
    out('');
    out(
      `OK: registered and signed in through the tunnel with ${plural(trips())} in ${ceremonyMs.toFixed(0)} ms ` +
        `(${elapsedMs.toFixed(0)} ms including setup).`,
    );
    return {
      roundTrips: { init: initTrips, getInfo: infoTrips, makeCredential: mcTrips, getAssertion: gaTrips },
      totalRoundTrips: trips(),
      elapsedMs,
      fmt: registered.fmt,
      signCount: newCounter,
    };
  } finally {
    await client?.close().catch(() => undefined);
    await gateway?.close().catch(() => undefined);
    await agent?.close().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
}

export const demoCommand: CommandModule = {
  command: 'demo',
  describe: 'Register and sign in through agent + TLS tunnel + gateway, all on 127.0.0.1 (npm run demo)',
  builder: (yargs: Argv) =>
    yargs
      .options(logLevelOption)
      .epilogue(
        'Uses a temporary state directory, the fixed demo passphrase and automatic user presence; needs the dev ' +
          'dependencies (`npm ci`) for the sample relying party.',
      ),
  handler: async (argv: ArgumentsCamelCase) => {
    let log: Logger;
    try {
      // Quiet by default: the demo's own lines are the output; problems still reach stderr.
      log = createLogger({ level: (argv['logLevel'] as string | undefined) ?? process.env.KEYTUNNEL_LOG_LEVEL ?? 'error', name: 'demo' });
    } catch (err) {
      process.stderr.write(`keytunnel demo: ${(err as Error).message}\n`);
      process.exitCode = 2;
      return;
    }
    try {
      await runDemo((line) => process.stdout.write(`${line}\n`), log);
      process.exitCode = 0;
    } catch (err) {
      process.stderr.write(`keytunnel demo FAILED: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    }
    log.flush?.();
  },
};

export default demoCommand;
