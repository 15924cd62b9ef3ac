/**
 * A stand-in for xrdp-chansrv's API socket (`xrdpapi_<display>` in a temp dir), for tests of the RDP channel
 * transport without an RDP session. It parses the open request exactly as chansrv does (u32le total length, u32le
 * version 0, u32le name length, name, u32le flags) and then, like a FreeRDP client with or without the keytunnel
 * plugin, either refuses (status 0xC0000001, what xrdp relays for a name the client has no listener for), stays
 * silent, or accepts and bridges the channel to a TCP endpoint — what the plugin does with the agent's --listen.
 * `disconnect()` ends every open channel, as an RDP client disconnect does.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type ChansrvMode = { kind: 'refuse' } | { kind: 'silent' } | { kind: 'bridge'; host: string; port: number };

export interface OpenRequest {
  readonly name: string;
  readonly flags: number;
  readonly raw: Buffer;
}

/** STATUS_UNSUCCESSFUL, the creation status a client without a listener for the name answers. */
export const STATUS_UNSUCCESSFUL = 0xc0000001;

export class FakeChansrv {
  mode: ChansrvMode = { kind: 'refuse' };
  readonly requests: OpenRequest[] = [];
  private readonly open = new Set<net.Socket>();

  private constructor(
    readonly socketDir: string,
    readonly display: string,
    private readonly server: net.Server,
  ) {}

  static async start(displayNumber = 7): Promise<FakeChansrv> {
    const dir = await mkdtemp(join(tmpdir(), 'kt-chansrv-'));
    const server = net.createServer();
    const fake = new FakeChansrv(dir, `:${displayNumber}.0`, server);
    server.on('connection', (s) => fake.accept(s));
    await new Promise<void>((resolve) => server.listen(join(dir, `xrdpapi_${displayNumber}`), resolve));
    return fake;
  }

  /** The options for openXrdpChannel / startGatewayService's `rdp`. */
  get options(): { display: string; socketDir: string } {
    return { display: this.display, socketDir: this.socketDir };
  }

  /** End every open channel (an RDP client disconnect). */
  disconnect(): void {
    for (const s of this.open) s.destroy();
    this.open.clear();
  }

  async close(): Promise<void> {
    this.disconnect();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await rm(this.socketDir, { recursive: true, force: true });
  }

  private accept(api: net.Socket): void {
    let buf = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length < 8) return;
      const total = buf.readUInt32LE(0);
      if (buf.readUInt32LE(4) !== 0 || total > 1024) return void api.destroy();
      if (buf.length < total) return;
      api.off('data', onData);
      const nameLength = buf.readUInt32LE(8);
      const request = {
        name: buf.subarray(12, 12 + nameLength).toString('utf8'),
        flags: buf.readUInt32LE(12 + nameLength),
        raw: Buffer.from(buf.subarray(0, total)),
      };
      this.requests.push(request);
      this.answer(api, buf.subarray(total));
    };
    api.on('data', onData);
    api.on('error', () => api.destroy());
  }

  private answer(api: net.Socket, early: Buffer): void {
    const mode = this.mode;
    const status = (code: number): Buffer => {
      const b = Buffer.alloc(4);
      b.writeUInt32LE(code >>> 0);
      return b;
    };
    if (mode.kind === 'silent') return;
    if (mode.kind === 'refuse') return void api.write(status(STATUS_UNSUCCESSFUL));
    const agent = net.connect(mode.port, mode.host);
    agent.on('error', () => api.destroy());
    agent.once('connect', () => {
      this.open.add(api);
      api.write(status(0));
      if (early.length > 0) agent.write(early);
      api.pipe(agent);
      agent.pipe(api);
    });
    api.once('close', () => {
      this.open.delete(api);
      agent.destroy();
    });
    agent.once('close', () => api.destroy());
  }
}
