/**
 * The tunnel over a byte stream that is not a TCP socket, and the RDP virtual channel transport
 * (tunnel/transports/xrdp-channel.ts, tunnel/dial-target.ts) against a stand-in xrdp-chansrv (fake-chansrv.ts):
 * the chansrv open request byte for byte, a refused open failing within milliseconds, the open timeout, TLS + HELLO
 * over a plain JS Duplex, and the gateway dialing the agent through the channel: a closed channel is a lost
 * connection (the device survives the grace period, the channel is reopened), TCP fallback when the channel is
 * refused, and a clear setup error outside an RDP session. The real xrdp + FreeRDP run is test/rdp/*.rdp.test.ts.
 */
import { createHash } from 'node:crypto';
import net from 'node:net';
import { Duplex } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { CtaphidClient } from '../../agent/authenticators/hardware/ctaphid-client.ts';
import { LoopbackTransport } from '../../agent/authenticators/hardware/loopback-transport.ts';
import { startAgentService, type AgentService } from '../../cli/commands/agent.ts';
import { startGatewayService, type GatewayService } from '../../cli/commands/gateway.ts';
import { parseConnectTargets, RelaySetupError } from '../../cli/options.ts';
import { encode, type CborValue } from '../../protocol/cbor.ts';
import { loadOrCreateIdentity } from '../../tunnel/identity.ts';
import { dial, listen } from '../../tunnel/tls.ts';
import {
  ChannelRefusedError,
  chansrvSocketPath,
  displayNumber,
  encodeOpenRequest,
  NotInRdpSessionError,
  openXrdpChannel,
  WTS_CHANNEL_OPTION_DYNAMIC,
} from '../../tunnel/transports/xrdp-channel.ts';
import { TrustSet } from '../../tunnel/trust.ts';
import { FakeChansrv, STATUS_UNSUCCESSFUL } from './fake-chansrv.ts';
import { captureLog, newIdentity, removeTempDirs, tempDir, waitFor } from './helpers.ts';

const stops: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s();
  await removeTempDirs();
});

async function chansrv(): Promise<FakeChansrv> {
  const fake = await FakeChansrv.start();
  stops.push(() => fake.close());
  return fake;
}

describe('chansrv API open request (xrdp 0.9 my_api_trans_data_in)', () => {
  it('is total length, version 0, name length, name, flags — all u32 little-endian', () => {
    const bytes = encodeOpenRequest('keytunnel', WTS_CHANNEL_OPTION_DYNAMIC);
    expect(bytes.toString('hex')).toBe(
      '19000000' + '00000000' + '09000000' + Buffer.from('keytunnel').toString('hex') + '01000000',
    );
    expect(() => encodeOpenRequest('', 1)).toThrow(RangeError);
    expect(() => encodeOpenRequest('a b', 1)).toThrow(RangeError);
    expect(() => encodeOpenRequest('x'.repeat(65), 1)).toThrow(RangeError);
  });

  it('reads the display number from $DISPLAY forms', () => {
    expect(displayNumber(':10')).toBe(10);
    expect(displayNumber(':10.0')).toBe(10);
    expect(displayNumber('localhost:12.1')).toBe(12);
    expect(displayNumber('')).toBeUndefined();
    expect(displayNumber(undefined)).toBeUndefined();
    expect(displayNumber('wayland-0')).toBeUndefined();
  });
});

describe('openXrdpChannel', () => {
  it('sends the open request and hands back the channel as a byte stream', async () => {
    const fake = await chansrv();
    const echo = net.createServer((s) => s.pipe(s));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    stops.push(() => new Promise<void>((r) => echo.close(() => r())));
    fake.mode = { kind: 'bridge', host: '127.0.0.1', port: (echo.address() as net.AddressInfo).port };
    const channel = await openXrdpChannel('keytunnel', fake.options);
    stops.push(() => void channel.destroy());
    expect(fake.requests.map((r) => [r.name, r.flags])).toEqual([['keytunnel', WTS_CHANNEL_OPTION_DYNAMIC]]);
    expect(fake.requests[0].raw).toEqual(encodeOpenRequest('keytunnel', 1));
    const payload = Buffer.from(Array.from({ length: 100_000 }, (_, i) => i & 0xff));
    const back: Buffer[] = [];
    channel.on('data', (d: Buffer) => back.push(d));
    channel.write(payload);
    await waitFor(() => Buffer.concat(back).length >= payload.length);
    expect(Buffer.concat(back).equals(payload)).toBe(true);
    // The channel closing (an RDP disconnect) is end-of-file on the stream.
    const closed = new Promise((r) => channel.once('close', r));
    fake.disconnect();
    await closed;
  });

  it('a client without the plugin refuses: ChannelRefusedError within milliseconds, naming the fix', async () => {
    const fake = await chansrv();
    const started = performance.now();
    const err = await openXrdpChannel('keytunnel', fake.options).catch((e: unknown) => e);
    expect(performance.now() - started).toBeLessThan(500);
    expect(err).toBeInstanceOf(ChannelRefusedError);
    expect((err as ChannelRefusedError).status).toBe(STATUS_UNSUCCESSFUL);
    expect((err as Error).message).toContain('keytunnel install-rdp-plugin');
  });

  it('gives up after its own open timeout when the client never answers', async () => {
    const fake = await chansrv();
    fake.mode = { kind: 'silent' };
    await expect(openXrdpChannel('keytunnel', { ...fake.options, openTimeoutMs: 150 })).rejects.toThrow(/within 150 ms: it runs no dynamic virtual channels/);
  });

  it('outside an RDP session: NotInRdpSessionError saying why', async () => {
    const dir = await tempDir('kt-nosession-');
    expect(() => chansrvSocketPath({ display: '', socketDir: dir })).toThrow(/\$DISPLAY is not set/);
    expect(() => chansrvSocketPath({ display: ':3', socketDir: dir })).toThrow(NotInRdpSessionError);
    expect(() => chansrvSocketPath({ display: ':3', socketDir: dir })).toThrow(/display :3 has no xrdp channel server/);
  });
});

describe('--connect targets', () => {
  it('parses rdp:CHANNEL, tcp:HOST:PORT and bare HOST:PORT in order', () => {
    expect(parseConnectTargets('rdp:keytunnel,tcp:10.0.2.2:7531')).toEqual([
      { kind: 'rdp', channel: 'keytunnel' },
      { kind: 'tcp', host: '10.0.2.2', port: 7531 },
    ]);
    expect(parseConnectTargets('[::1]:9')).toEqual([{ kind: 'tcp', host: '::1', port: 9 }]);
    expect(parseConnectTargets('rdp')).toEqual([{ kind: 'rdp', channel: 'keytunnel' }]);
    expect(() => parseConnectTargets('rdp:bad name')).toThrow(RelaySetupError);
    expect(() => parseConnectTargets('rdp:x,rdp:x')).toThrow(/twice/);
    expect(() => parseConnectTargets('tcp:host')).toThrow(/HOST:PORT/);
  });
});

describe('the tunnel over a stream that is not a TCP socket', () => {
  it('TLS 1.3 with pinned identities and HELLO over a plain JS Duplex', async () => {
    const agentId = await newIdentity();
    const gwId = await newIdentity();
    const log = captureLog().log;
    const server = await listen({ host: '127.0.0.1', port: 0 }, agentId, new TrustSet([{ fingerprint: gwId.fingerprint, source: 'cli' }]), () => {}, { role: 'agent', name: 'a', log });
    stops.push(() => server.close());
    // A JS Duplex relaying to the listener: TLS cannot use a socket handle here, only the stream interface.
    let relayed = 0;
    const opener = {
      description: 'an in-memory relay',
      open: async (): Promise<Duplex> => {
        const tcp = net.connect(server.address().port, '127.0.0.1');
        const duplex = new Duplex({
          read() {},
          write(chunk: Buffer, _enc, cb) {
            relayed += chunk.length;
            tcp.write(chunk, cb);
          },
          final(cb) {
            tcp.end(cb);
          },
          destroy(err, cb) {
            tcp.destroy();
            cb(err);
          },
        });
        tcp.on('data', (d: Buffer) => duplex.push(d));
        tcp.on('end', () => duplex.push(null));
        tcp.on('close', () => duplex.destroy());
        return duplex;
      },
    };
    const conn = await dial(opener, gwId, new TrustSet([{ fingerprint: agentId.fingerprint, source: 'cli' }]), { role: 'gateway', name: 'g', log });
    stops.push(() => conn.close('test over'));
    expect(conn.fingerprint).toBe(agentId.fingerprint);
    expect(conn.name).toBe('a');
    expect(relayed).toBeGreaterThan(0);
    // And an unpinned peer is refused over it just the same.
    await expect(dial(opener, gwId, new TrustSet([{ fingerprint: gwId.fingerprint, source: 'cli' }]), { role: 'gateway', name: 'g', log })).rejects.toThrow(
      /unknown agent with fingerprint .* at an in-memory relay/,
    );
  });
});

function makeCredentialRequest(): Uint8Array {
  const clientDataHash = createHash('sha256').update('rdp transport test').digest();
  const body = encode(
    new Map<CborValue, CborValue>([
      [1, new Uint8Array(clientDataHash)],
      [2, new Map<CborValue, CborValue>([['id', 'example.com'], ['name', 'Example']])],
      [3, new Map<CborValue, CborValue>([['id', Uint8Array.of(1, 2, 3, 4)], ['name', 'alice']])],
      [4, [new Map<CborValue, CborValue>([['alg', -7], ['type', 'public-key']])]],
    ]),
  );
  return Uint8Array.of(0x01, ...body);
}

describe('gateway --connect rdp:keytunnel (stand-in chansrv bridging to the agent, as the FreeRDP plugin does)', () => {
  async function agentAndIds(): Promise<{ agent: AgentService; agentFp: string; gwDir: string; gwFp: string }> {
    const agentDir = await tempDir('kt-rdp-agent-');
    const gwDir = await tempDir('kt-rdp-gw-');
    const agentFp = (await loadOrCreateIdentity(agentDir)).identity.fingerprint;
    const gwFp = (await loadOrCreateIdentity(gwDir)).identity.fingerprint;
    const agent = await startAgentService(
      { soft: true, hardware: false, listen: { host: '127.0.0.1', port: 0 }, trust: [gwFp], stateDir: agentDir, profile: 'default', approve: 'always' },
      { log: captureLog().log, passphrase: 'rdp transport test' },
    );
    stops.push(() => agent.close());
    return { agent, agentFp, gwDir, gwFp };
  }

  async function gatewayVia(connect: string, fake: FakeChansrv, agentFp: string, gwDir: string, graceMs = 10_000) {
    const cap = captureLog();
    const gateway = await startGatewayService(
      { hid: { kind: 'loopback', host: '127.0.0.1', port: 0 }, connect: parseConnectTargets(connect), trust: [agentFp], stateDir: gwDir, graceMs },
      { log: cap.log, rdp: fake.options, backoff: { initialMs: 50, maxMs: 200 }, connection: { heartbeatIntervalMs: 200, deadAfterMs: 1000 } },
    );
    stops.push(() => gateway.close());
    return { gateway, cap };
  }

  async function makeCredentialThrough(gateway: GatewayService): Promise<number> {
    await waitFor(() => gateway.core.list().length > 0, 5000);
    const device = gateway.core.list()[0];
    const client = await CtaphidClient.open(await LoopbackTransport.connect(device.address!.host, device.address!.port));
    try {
      return (await client.cbor(makeCredentialRequest()))[0];
    } finally {
      await client.close();
    }
  }

  it('tunnels over the channel; a closed channel is a lost connection: the device stays, the channel is reopened', async () => {
    const { agent, agentFp, gwDir } = await agentAndIds();
    const fake = await chansrv();
    fake.mode = { kind: 'bridge', ...agent.address! };
    const { gateway, cap } = await gatewayVia('rdp:keytunnel', fake, agentFp, gwDir);
    expect(await makeCredentialThrough(gateway)).toBe(0);
    const device = gateway.core.list()[0];
    expect(fake.requests).toHaveLength(1);

    // The RDP client disconnects; while it is away the channel cannot be opened.
    fake.mode = { kind: 'refuse' };
    fake.disconnect();
    await waitFor(() => cap.text().includes('agent disconnected; its devices stay'), 3000);
    await waitFor(() => cap.text().includes('the RDP client refused virtual channel'), 3000);
    expect(gateway.core.list()).toEqual([device]); // within the grace period

    // It reconnects: the gateway reopens the channel and the same device works again.
    fake.mode = { kind: 'bridge', ...agent.address! };
    await waitFor(() => agent.core.gateways().length === 1 && fake.requests.length >= 3, 5000);
    expect(await makeCredentialThrough(gateway)).toBe(0);
    expect(gateway.core.list()[0].address).toEqual(device.address);
  });

  it('falls back to TCP when the channel is refused (rdp:keytunnel,tcp:HOST:PORT)', async () => {
    const { agent, agentFp, gwDir } = await agentAndIds();
    const fake = await chansrv();
    const { gateway, cap } = await gatewayVia(`rdp:keytunnel,tcp:127.0.0.1:${agent.address!.port}`, fake, agentFp, gwDir);
    expect(await makeCredentialThrough(gateway)).toBe(0);
    expect(fake.requests).toHaveLength(1);
    expect(cap.text()).toContain('cannot reach the peer over rdp:keytunnel; trying tcp:127.0.0.1:');
  });

  it('refuses to start with rdp only outside an RDP session, saying so', async () => {
    const gwDir = await tempDir('kt-rdp-gw-');
    const err = await startGatewayService(
      { hid: { kind: 'loopback', host: '127.0.0.1', port: 0 }, connect: parseConnectTargets('rdp:keytunnel'), trust: [], stateDir: gwDir },
      { log: captureLog().log, rdp: { display: '', socketDir: gwDir } },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RelaySetupError);
    expect((err as Error).message).toMatch(/not inside an RDP session.*tcp:HOST:PORT/);
  });
});
