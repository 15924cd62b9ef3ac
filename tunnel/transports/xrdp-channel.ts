/**
 * The VM side of an RDP dynamic virtual channel (DVC) on Linux with xrdp: open the channel by talking to the
 * session's channel server (xrdp-chansrv) on its API socket, exactly as xrdp's libxrdpapi `WTSVirtualChannelOpenEx`
 * does, but from Node — no native code, and our own open timeout (libxrdpapi waits a fixed 500 ms for the client's
 * answer, so on a slow RDP link every open fails and leaves a half-open channel).
 *
 * The chansrv API (xrdp 0.9.x, sesman/chansrv/chansrv.c `my_api_trans_data_in`):
 *   socket   /run/xrdp/sockdir/xrdpapi_<display>    (display = N of $DISPLAY ":N"; owned by the session user)
 *   request  u32le total length (16 + name) | u32le version 0 | u32le name length | name | u32le flags
 *            (flags: WTS_CHANNEL_OPTION_DYNAMIC = 1 for a DVC)
 *   reply    u32le creation status from the client's DYNVC_CREATE_RSP (MS-RDPEDYC §2.2.2.2): 0 = opened;
 *            anything else = the client refused (no listener for the name: a client without the plugin). A client
 *            that runs no dynamic channels at all (FreeRDP without any /dvc, /gfx, ...) never answers: hence
 *            our own timeout.
 *   then     a plain byte stream both ways; end-of-file when the channel closes (client disconnected, or the
 *            client closed it).
 * Windows puts an 8-byte CHANNEL_PDU_HEADER before each chunk read; xrdp's chansrv does not.
 */
import { existsSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { KeytunnelError } from '../../protocol/errors.ts';

/** WTS_CHANNEL_OPTION_DYNAMIC (wtsapi32.h): open a dynamic virtual channel, not a static one. */
export const WTS_CHANNEL_OPTION_DYNAMIC = 1;
/** xrdp's XRDP_SOCKET_PATH on Debian/Ubuntu (xrdp 0.9.x). */
export const XRDP_SOCKET_DIR = '/run/xrdp/sockdir';
/** The API request header before the name: total length, version, name length. */
const HEADER_BYTES = 12;
/** chansrv's limit for a DVC name is MAX_PATH; channel names here are short ASCII words. */
const MAX_CHANNEL_NAME_BYTES = 64;
/**
 * How long the client may take to answer the open (one RDP round trip plus the plugin's work). A client that has
 * no listener for the name answers in milliseconds; 10 s leaves room for a slow WAN link.
 */
export const DEFAULT_OPEN_TIMEOUT_MS = 10_000;

/** Not inside an xrdp session: no $DISPLAY, or no channel server socket for it. */
export class NotInRdpSessionError extends KeytunnelError {
  override readonly name = 'NotInRdpSessionError';
  readonly code = 'NOT_IN_RDP_SESSION';
}

/** The RDP client refused the channel (it has no keytunnel plugin, or the plugin cannot reach the agent). */
export class ChannelRefusedError extends KeytunnelError {
  override readonly name = 'ChannelRefusedError';
  readonly code = 'CHANNEL_REFUSED';
  constructor(
    readonly channel: string,
    readonly status: number,
  ) {
    super(
      `the RDP client refused virtual channel "${channel}" (status 0x${status.toString(16).padStart(8, '0')}): ` +
        `it has no keytunnel plugin (on the laptop: \`keytunnel install-rdp-plugin\`, then connect with ` +
        `/dvc:${channel},AGENT_PORT), or its plugin cannot reach the agent`,
    );
  }
}

export interface XrdpChannelOptions {
  /** The X display of the session (default: $DISPLAY). */
  readonly display?: string;
  /** Where chansrv puts its sockets (default: $XRDP_SOCKET_PATH, which xrdp sets in the session, else XRDP_SOCKET_DIR). */
  readonly socketDir?: string;
  readonly openTimeoutMs?: number;
}

/** The display number N of an X display name `[host]:N[.screen]`, or undefined. */
export function displayNumber(display: string | undefined): number | undefined {
  const m = display === undefined ? null : /^[^:]*:(\d{1,5})(?:\.\d+)?$/.exec(display);
  return m === null ? undefined : Number(m[1]);
}

/** The chansrv API socket of this session, or NotInRdpSessionError saying why there is none. */
export function chansrvSocketPath(options: XrdpChannelOptions = {}): string {
  const display = options.display ?? process.env.DISPLAY;
  const n = displayNumber(display);
  if (n === undefined) {
    throw new NotInRdpSessionError(
      display === undefined || display === ''
        ? 'not inside an RDP session: $DISPLAY is not set (run the gateway inside the xrdp session)'
        : `not inside an RDP session: cannot read a display number from $DISPLAY ${JSON.stringify(display.slice(0, 40))}`,
    );
  }
  const dir = options.socketDir ?? (process.env.XRDP_SOCKET_PATH || XRDP_SOCKET_DIR);
  const path = join(dir, `xrdpapi_${n}`);
  if (!existsSync(path)) {
    throw new NotInRdpSessionError(`not inside an xrdp session: display :${n} has no xrdp channel server (${path} is missing)`);
  }
  return path;
}

/** The chansrv API open request for `channel` (see the module comment). */
export function encodeOpenRequest(channel: string, flags: number): Buffer {
  const name = Buffer.from(channel, 'utf8');
  if (name.length === 0 || name.length > MAX_CHANNEL_NAME_BYTES || !/^[\x21-\x7e]+$/.test(channel)) {
    throw new RangeError(`virtual channel name must be 1..${MAX_CHANNEL_NAME_BYTES} printable ASCII characters`);
  }
  const out = Buffer.alloc(HEADER_BYTES + name.length + 4);
  out.writeUInt32LE(out.length, 0);
  out.writeUInt32LE(0, 4); // version
  out.writeUInt32LE(name.length, 8);
  name.copy(out, HEADER_BYTES);
  out.writeUInt32LE(flags >>> 0, HEADER_BYTES + name.length);
  return out;
}

/**
 * Open the dynamic virtual channel `channel` of the RDP session this process runs in. Resolves with the stream
 * (a connected Unix socket: bytes in and out are the channel's; end-of-file = the channel closed). Rejects with
 * NotInRdpSessionError, ChannelRefusedError, or a timeout / socket error.
 */
export function openXrdpChannel(channel: string, options: XrdpChannelOptions = {}): Promise<net.Socket> {
  const request = encodeOpenRequest(channel, WTS_CHANNEL_OPTION_DYNAMIC);
  const path = chansrvSocketPath(options);
  const timeoutMs = options.openTimeoutMs ?? DEFAULT_OPEN_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const socket = net.connect(path);
    const fail = (err: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    const timer = setTimeout(
      () =>
        fail(
          new Error(
            `the RDP client did not answer the open of virtual channel "${channel}" within ${timeoutMs} ms: it runs no ` +
              `dynamic virtual channels at all (FreeRDP loads them only when asked: connect with /dvc:${channel},AGENT_PORT), ` +
              'or the RDP link is very slow',
          ),
        ),
      timeoutMs,
    );
    // 'readable' + read(4) takes exactly the status and leaves any channel bytes behind it buffered for the stream's
    // next reader, without switching the stream to flowing mode.
    const onReadable = (): void => {
      const reply = socket.read(4) as Buffer | null;
      if (reply === null) return;
      const status = reply.readUInt32LE(0);
      if (status !== 0) return fail(new ChannelRefusedError(channel, status));
      clearTimeout(timer);
      socket.off('readable', onReadable);
      socket.off('error', fail);
      socket.off('close', onClose);
      resolve(socket);
    };
    const onClose = (): void => fail(new Error(`the xrdp channel server closed the connection while opening "${channel}"`));
    socket.on('readable', onReadable);
    socket.once('error', fail);
    socket.once('close', onClose);
    socket.once('connect', () => socket.write(request));
  });
}
