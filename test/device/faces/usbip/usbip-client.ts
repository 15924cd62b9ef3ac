/**
 * A minimal USB/IP client for tests (the host kernel here has no vhci-hcd): speaks the handshake and URB
 * messages of Documentation/usb/usbip_protocol.rst over one TCP connection and reads exact-length replies.
 */
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import {
  BUSID_SIZE,
  NON_ISO_PACKETS,
  OP_REQ_DEVLIST,
  OP_REQ_IMPORT,
  USBIP_CMD_SUBMIT,
  USBIP_CMD_UNLINK,
  USBIP_HEADER_SIZE,
  encodeOpHeader,
  encodeSetup,
} from '../../../../device/faces/usbip/usbip-protocol.ts';
import type { SetupPacket } from '../../../../device/faces/usbip/usbip-protocol.ts';

export interface RetSubmit {
  readonly kind: 'submit';
  readonly seqnum: number;
  readonly status: number;
  readonly actualLength: number;
  readonly numberOfPackets: number;
  readonly data: Buffer;
}
export interface RetUnlink {
  readonly kind: 'unlink';
  readonly seqnum: number;
  readonly status: number;
}

export class UsbipTestClient {
  private buf = Buffer.alloc(0);
  private waiter: (() => void) | undefined;
  private ended = false;
  private seq = 1;
  /** Which submitted seqnums were IN transfers (their RET carries data). */
  private readonly inSeqs = new Set<number>();

  private constructor(readonly socket: Socket) {
    socket.on('data', (b: Buffer) => {
      this.buf = Buffer.concat([this.buf, b]);
      this.waiter?.();
    });
    socket.on('close', () => {
      this.ended = true;
      this.waiter?.();
    });
    socket.on('error', () => {});
  }

  static connect(port: number): Promise<UsbipTestClient> {
    return new Promise((resolve, reject) => {
      const s = connect(port, '127.0.0.1', () => resolve(new UsbipTestClient(s)));
      s.once('error', reject);
    });
  }

  /** Resolves true once the server has closed the connection (and everything it sent was read). */
  async closedByServer(): Promise<boolean> {
    while (!this.ended) await new Promise<void>((r) => (this.waiter = r));
    return this.buf.length === 0;
  }

  async read(n: number): Promise<Buffer> {
    while (this.buf.length < n) {
      if (this.ended) throw new Error(`connection closed while waiting for ${n} bytes (have ${this.buf.length})`);
      await new Promise<void>((r) => (this.waiter = r));
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return Buffer.from(out);
  }

  send(b: Uint8Array): void {
    this.socket.write(b);
  }

  sendDevlist(): void {
    this.send(encodeOpHeader(OP_REQ_DEVLIST, 0));
  }

  sendImport(busid: string): void {
    const b = new Uint8Array(8 + BUSID_SIZE);
    b.set(encodeOpHeader(OP_REQ_IMPORT, 0));
    b.set(Buffer.from(busid, 'ascii'), 8);
    this.send(b);
  }

  /** Sends USBIP_CMD_SUBMIT; returns its seqnum. */
  submit(opts: { direction: 0 | 1; ep: number; length: number; setup?: SetupPacket; data?: Uint8Array; devid?: number }): number {
    const seqnum = this.seq++;
    const data = opts.direction === 0 ? (opts.data ?? new Uint8Array(0)) : new Uint8Array(0);
    const b = Buffer.alloc(USBIP_HEADER_SIZE + data.length);
    b.writeUInt32BE(USBIP_CMD_SUBMIT, 0);
    b.writeUInt32BE(seqnum, 4);
    b.writeUInt32BE(opts.devid ?? 0x00010002, 8);
    b.writeUInt32BE(opts.direction, 12);
    b.writeUInt32BE(opts.ep, 16);
    b.writeUInt32BE(0, 20);
    b.writeInt32BE(opts.length, 24);
    b.writeInt32BE(0, 28);
    b.writeUInt32BE(NON_ISO_PACKETS, 32);
    b.writeInt32BE(5, 36);
    if (opts.setup) b.set(encodeSetup(opts.setup), 40);
    b.set(data, USBIP_HEADER_SIZE);
    if (opts.direction === 1) this.inSeqs.add(seqnum);
    this.send(b);
    return seqnum;
  }

  unlink(target: number): number {
    const seqnum = this.seq++;
    const b = Buffer.alloc(USBIP_HEADER_SIZE);
    b.writeUInt32BE(USBIP_CMD_UNLINK, 0);
    b.writeUInt32BE(seqnum, 4);
    b.writeUInt32BE(0x00010002, 8);
    b.writeUInt32BE(target, 20);
    this.send(b);
    return seqnum;
  }

  /** Reads the next RET_SUBMIT or RET_UNLINK. */
  async nextReply(): Promise<RetSubmit | RetUnlink> {
    const h = await this.read(USBIP_HEADER_SIZE);
    const command = h.readUInt32BE(0);
    const seqnum = h.readUInt32BE(4);
    const status = h.readInt32BE(20);
    if (command === 4) return { kind: 'unlink', seqnum, status };
    if (command !== 3) throw new Error(`unexpected reply command ${command}`);
    const actualLength = h.readInt32BE(24);
    const data = this.inSeqs.has(seqnum) && actualLength > 0 ? await this.read(actualLength) : Buffer.alloc(0);
    this.inSeqs.delete(seqnum);
    return { kind: 'submit', seqnum, status, actualLength, numberOfPackets: h.readUInt32BE(32), data };
  }

  async nextSubmit(): Promise<RetSubmit> {
    const r = await this.nextReply();
    if (r.kind !== 'submit') throw new Error(`expected RET_SUBMIT, got RET_UNLINK ${r.seqnum}`);
    return r;
  }

  /** A control IN transfer on endpoint 0. */
  async controlIn(setup: Omit<SetupPacket, 'wLength'> & { wLength: number }): Promise<RetSubmit> {
    const seq = this.submit({ direction: 1, ep: 0, length: setup.wLength, setup });
    const r = await this.nextSubmit();
    if (r.seqnum !== seq) throw new Error(`reply for ${r.seqnum}, expected ${seq}`);
    return r;
  }

  async controlOut(setup: SetupPacket, data?: Uint8Array): Promise<RetSubmit> {
    const seq = this.submit({ direction: 0, ep: 0, length: data?.length ?? 0, setup, data });
    const r = await this.nextSubmit();
    if (r.seqnum !== seq) throw new Error(`reply for ${r.seqnum}, expected ${seq}`);
    return r;
  }

  close(): void {
    this.socket.destroy();
  }
}
