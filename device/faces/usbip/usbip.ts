/**
 * The USB/IP face: a USB/IP server (protocol 1.1.1) exporting the virtual FIDO key, so a USB/IP client — Linux
 * `usbip attach` (vhci-hcd) or usbip-win2 on Windows — sees a full-speed USB HID security key.
 *
 * Per TCP connection: the handshake (OP_REQ_DEVLIST -> OP_REP_DEVLIST and close; or OP_REQ_IMPORT ->
 * OP_REP_IMPORT), then URB traffic (USBIP_CMD_SUBMIT / USBIP_CMD_UNLINK) handled by a UsbipFidoDevice. Each
 * import attaches one HostLink to the device engine; the connection closing closes it. One importer at a time
 * per device (like usbipd, a second import is refused with ST_DEV_BUSY).
 *
 * Everything from the network is validated: the protocol version, every length (bounded before anything is
 * buffered), the command codes; anything unexpected closes the connection with a log line. Binds to 127.0.0.1
 * by default (the VM reaches it through its own loopback or an SSH/qemu forward).
 */
import { createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { silentLogger, type Logger } from '../../../protocol/logger.ts';
import type { ReportDevice } from '../../host-link.ts';
import { MAX_TRANSFER_LENGTH, UsbipFidoDevice } from './usbip-device.ts';
import {
  BUSID_SIZE,
  NON_ISO_PACKETS,
  OP_HEADER_SIZE,
  OP_REQ_DEVLIST,
  OP_REQ_IMPORT,
  ST_DEV_BUSY,
  ST_NODEV,
  ST_OK,
  USBIP_DIR_IN,
  USBIP_DIR_OUT,
  USBIP_HEADER_SIZE,
  USBIP_VERSION,
  USB_SPEED_FULL,
  decodeCString,
  decodeOpHeader,
  decodeUrbHeader,
  encodeDevlistReply,
  encodeImportReply,
} from './usbip-protocol.ts';
import type { UsbipDeviceInfo } from './usbip-protocol.ts';
import { DEFAULT_PRODUCT_ID, DEFAULT_VENDOR_ID, USB_CLASS_HID } from '../usb-descriptors.ts';
import type { UsbDeviceIdentity } from '../usb-descriptors.ts';
import { KeytunnelError } from '../../../protocol/errors.ts';

export const USBIP_DEFAULT_PORT = 3240;
/** A connection must finish its handshake within this time. */
export const HANDSHAKE_TIMEOUT_MS = 10_000;
/** Bound on simultaneous connections (importers and devlist queries). */
export const MAX_CONNECTIONS = 16;
/** A client that stops reading our replies is dropped once this much is waiting to be sent. */
export const MAX_UNSENT_BYTES = 1 << 20;

export interface UsbipFaceOptions {
  /** Listen address (default 127.0.0.1). */
  readonly host?: string;
  /** TCP port (default 3240; 0 = any free port). */
  readonly port?: number;
  /** Bus id the client names in `usbip attach -b` (default "1-1"; the form is BUS-PORT[.PORT...]). */
  readonly busid?: string;
  /** Product string (the exported authenticator's label). */
  readonly name: string;
  readonly manufacturer?: string;
  readonly serial?: string;
  readonly vendor?: number;
  readonly product?: number;
  /** bcdDevice (default 0x0100). */
  readonly version?: number;
  readonly log?: Logger;
}

export interface UsbipFace {
  readonly address: { readonly host: string; readonly port: number };
  readonly busid: string;
  /** Stop listening, drop every connection (closing their HostLinks). Idempotent. */
  close(): Promise<void>;
}

export class UsbipError extends KeytunnelError {
  override readonly name = 'UsbipError';
  readonly code = 'USBIP';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

const BUSID_PATTERN = /^([1-9][0-9]{0,2})-[1-9][0-9]{0,2}(\.[1-9][0-9]{0,2}){0,4}$/;

/** Start a USB/IP server exporting `device`; resolves once it listens. */
export async function startUsbipFace(device: ReportDevice, opts: UsbipFaceOptions): Promise<UsbipFace> {
  const busid = opts.busid ?? '1-1';
  const m = BUSID_PATTERN.exec(busid);
  if (!m) throw new UsbipError(`bad USB/IP bus id "${busid}" (expected e.g. 1-1)`);
  const identity: UsbDeviceIdentity = {
    vendorId: opts.vendor ?? DEFAULT_VENDOR_ID,
    productId: opts.product ?? DEFAULT_PRODUCT_ID,
    bcdDevice: opts.version ?? 0x0100,
    manufacturer: opts.manufacturer ?? 'keytunnel',
    product: opts.name,
    serial: opts.serial ?? '0',
  };
  const info: UsbipDeviceInfo = {
    path: `/sys/devices/platform/keytunnel/usb${m[1]}/${busid}`,
    busid,
    busnum: Number(m[1]),
    devnum: 2,
    speed: USB_SPEED_FULL,
    idVendor: identity.vendorId,
    idProduct: identity.productId,
    bcdDevice: identity.bcdDevice,
    bDeviceClass: 0,
    bDeviceSubClass: 0,
    bDeviceProtocol: 0,
    bConfigurationValue: 1,
    bNumConfigurations: 1,
    interfaces: [{ bInterfaceClass: USB_CLASS_HID, bInterfaceSubClass: 0, bInterfaceProtocol: 0 }],
  };
  const server = new UsbipServer(device, identity, info, opts.log ?? silentLogger);
  const address = await server.listen(opts.host ?? '127.0.0.1', opts.port ?? USBIP_DEFAULT_PORT);
  return { address, busid, close: () => server.close() };
}

class UsbipServer {
  private readonly server: Server;
  private readonly connections = new Set<Connection>();
  private importer: Connection | undefined;
  private closing: Promise<void> | undefined;

  constructor(
    readonly device: ReportDevice,
    readonly identity: UsbDeviceIdentity,
    readonly info: UsbipDeviceInfo,
    readonly log: Logger,
  ) {
    this.server = createServer((socket) => this.accept(socket));
  }

  listen(host: string, port: number): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(new UsbipError(`cannot listen on ${host}:${port}: ${err.message}`, { cause: err }));
      this.server.once('error', onError);
      this.server.listen(port, host, () => {
        this.server.off('error', onError);
        this.server.on('error', (err) => this.log.warn({ err: String(err) }, 'usbip server error'));
        const a = this.server.address() as AddressInfo;
        this.log.info({ host: a.address, port: a.port, busid: this.info.busid }, 'usbip server listening');
        resolve({ host: a.address, port: a.port });
      });
    });
  }

  private accept(socket: Socket): void {
    if (this.closing || this.connections.size >= MAX_CONNECTIONS) {
      this.log.warn({ remote: socket.remoteAddress }, 'usbip: too many connections; refusing one');
      socket.destroy();
      return;
    }
    const c = new Connection(this, socket);
    this.connections.add(c);
    socket.once('close', () => {
      this.connections.delete(c);
      if (this.importer === c) this.importer = undefined;
    });
  }

  /** Claims the device for `c`; false when another connection has it. */
  claim(c: Connection): boolean {
    if (this.importer && this.importer !== c) return false;
    this.importer = c;
    return true;
  }

  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      for (const c of this.connections) c.destroy('server closing');
      this.server.close(() => resolve());
    }).then(() => this.log.info({}, 'usbip server closed'));
    return this.closing;
  }
}

/** Bytes received but not yet consumed; bounded by what the current parse step may need. */
class Connection {
  private buffered: Buffer[] = [];
  private bufferedLength = 0;
  private phase: 'handshake' | 'urb' | 'done' = 'handshake';
  private usb: UsbipFidoDevice | undefined;
  private readonly handshakeTimer: NodeJS.Timeout;

  constructor(
    private readonly server: UsbipServer,
    private readonly socket: Socket,
  ) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.server.log.debug({ err: String(err) }, 'usbip connection error'));
    socket.on('close', () => this.teardown());
    this.handshakeTimer = setTimeout(() => this.destroy('handshake timeout'), HANDSHAKE_TIMEOUT_MS);
  }

  destroy(reason: string): void {
    if (this.phase !== 'done') this.server.log.info({ reason }, 'usbip: closing connection');
    this.phase = 'done';
    this.socket.destroy();
    this.teardown();
  }

  private teardown(): void {
    this.phase = 'done';
    clearTimeout(this.handshakeTimer);
    this.buffered = [];
    this.bufferedLength = 0;
    const usb = this.usb;
    this.usb = undefined;
    usb?.close();
  }

  private onData(chunk: Buffer): void {
    if (this.phase === 'done') return;
    this.buffered.push(chunk);
    this.bufferedLength += chunk.length;
    try {
      this.parse();
    } catch (err) {
      this.destroy(`internal error: ${String(err)}`);
    }
  }

  /** The first `n` buffered bytes, or undefined if fewer are buffered. Does not consume. */
  private peek(n: number): Uint8Array | undefined {
    if (this.bufferedLength < n) return undefined;
    if (this.buffered[0].length < n) this.buffered = [Buffer.concat(this.buffered)];
    return this.buffered[0].subarray(0, n);
  }

  private consume(n: number): void {
    this.bufferedLength -= n;
    while (n > 0) {
      const head = this.buffered[0];
      if (head.length <= n) {
        this.buffered.shift();
        n -= head.length;
      } else {
        this.buffered[0] = head.subarray(n);
        n = 0;
      }
    }
  }

  private parse(): void {
    while (this.phase !== 'done') {
      if (this.phase === 'handshake') {
        if (!this.handshake()) return;
      } else if (!this.urb()) {
        return;
      }
    }
  }

  /** One OP request; false when more bytes are needed. */
  private handshake(): boolean {
    const h = this.peek(OP_HEADER_SIZE);
    if (!h) return false;
    const op = decodeOpHeader(h);
    if (op.version !== USBIP_VERSION) {
      this.destroy(`unsupported USB/IP version 0x${op.version.toString(16)}`);
      return false;
    }
    if (op.code === OP_REQ_DEVLIST) {
      this.consume(OP_HEADER_SIZE);
      this.server.log.debug({}, 'usbip: devlist');
      this.phase = 'done';
      clearTimeout(this.handshakeTimer);
      this.socket.end(encodeDevlistReply([this.server.info]));
      return false;
    }
    if (op.code === OP_REQ_IMPORT) {
      const req = this.peek(OP_HEADER_SIZE + BUSID_SIZE);
      if (!req) return false;
      const busid = decodeCString(req.subarray(OP_HEADER_SIZE, OP_HEADER_SIZE + BUSID_SIZE));
      this.consume(OP_HEADER_SIZE + BUSID_SIZE);
      if (busid !== this.server.info.busid) {
        this.server.log.info({ busid: busid ?? '(malformed)' }, 'usbip: import of an unknown bus id refused');
        this.phase = 'done';
        this.socket.end(encodeImportReply(ST_NODEV));
        return false;
      }
      if (!this.server.claim(this)) {
        this.server.log.info({ busid }, 'usbip: import refused, the device is imported by another client');
        this.phase = 'done';
        this.socket.end(encodeImportReply(ST_DEV_BUSY));
        return false;
      }
      clearTimeout(this.handshakeTimer);
      this.socket.write(encodeImportReply(ST_OK, this.server.info));
      this.usb = new UsbipFidoDevice(this.server.device, this.server.identity, (m) => this.write(m), this.server.log);
      this.phase = 'urb';
      this.server.log.info({ busid, remote: this.socket.remoteAddress }, 'usbip: device imported');
      return true;
    }
    this.destroy(`unknown USB/IP request 0x${op.code.toString(16)}`);
    return false;
  }

  /** One URB command; false when more bytes are needed. */
  private urb(): boolean {
    const h = this.peek(USBIP_HEADER_SIZE);
    if (!h) return false;
    const cmd = decodeUrbHeader(h);
    if (cmd.command === 'unknown') {
      this.destroy(`unknown USB/IP command 0x${cmd.code.toString(16)}`);
      return false;
    }
    if (cmd.command === 'unlink') {
      this.consume(USBIP_HEADER_SIZE);
      this.usb?.unlink(cmd.seqnum, cmd.unlinkSeqnum);
      return true;
    }
    if (cmd.direction !== USBIP_DIR_OUT && cmd.direction !== USBIP_DIR_IN) {
      this.destroy(`bad transfer direction ${cmd.direction}`);
      return false;
    }
    if (cmd.transferBufferLength < 0 || cmd.transferBufferLength > MAX_TRANSFER_LENGTH) {
      this.destroy(`transfer of ${cmd.transferBufferLength} bytes`);
      return false;
    }
    if (cmd.numberOfPackets !== 0 && cmd.numberOfPackets !== NON_ISO_PACKETS) {
      this.destroy('isochronous transfers are not supported');
      return false;
    }
    const dataLength = cmd.direction === USBIP_DIR_OUT ? cmd.transferBufferLength : 0;
    const whole = this.peek(USBIP_HEADER_SIZE + dataLength);
    if (!whole) return false;
    const data = whole.slice(USBIP_HEADER_SIZE, USBIP_HEADER_SIZE + dataLength);
    this.consume(USBIP_HEADER_SIZE + dataLength);
    this.usb?.submit({
      seqnum: cmd.seqnum,
      direction: cmd.direction,
      ep: cmd.ep,
      transferBufferLength: cmd.transferBufferLength,
      setup: cmd.setup,
      data,
    });
    return true;
  }

  private write(message: Uint8Array): void {
    if (this.phase === 'done' || this.socket.destroyed) return;
    if (this.socket.writableLength > MAX_UNSENT_BYTES) {
      this.destroy('the client is not reading');
      return;
    }
    this.socket.write(message);
  }
}
