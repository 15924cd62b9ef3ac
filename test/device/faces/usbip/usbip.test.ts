/**
 * The USB/IP face on the host, driven by a TypeScript USB/IP client: handshake (devlist, import), enumeration
 * control transfers, interrupt OUT + IN carrying CTAPHID through the real device engine, IN transfers held until
 * a report exists, unlink, and validation of hostile input. (Kernel-level checks with vhci-hcd run in the guest:
 * test/vm/usbip.test.ts.)
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { CtaphidDevice } from '../../../../device/ctaphid-device.ts';
import type { HostLink, ReportDevice } from '../../../../device/host-link.ts';
import { startUsbipFace } from '../../../../device/faces/usbip/usbip.ts';
import type { UsbipFace } from '../../../../device/faces/usbip/usbip.ts';
import { ECONNRESET, EPIPE, ST_DEV_BUSY, ST_NODEV, USBIP_VERSION } from '../../../../device/faces/usbip/usbip-protocol.ts';
import { FIDO_REPORT_DESCRIPTOR } from '../../../../device/faces/usb-descriptors.ts';
import type { Authenticator } from '../../../../protocol/authenticator.ts';
import { CID_BROADCAST, CTAPHID_INIT, CTAPHID_PING, CtaphidReassembler, fragment } from '../../../../protocol/ctaphid.ts';
import { UsbipTestClient } from './usbip-client.ts';
import type { Logger } from '../../../../protocol/logger.ts';

const authenticator: Authenticator = {
  descriptor: { id: 'test', label: 'test key', transport: 'soft', ctap1: false, wink: false },
  request: async () => Uint8Array.of(0x01),
};

interface Log {
  lines: string[];
}
function recorder(): Log & Logger {
  const lines: string[] = [];
  const rec = (o: object, m: string): void => void lines.push(`${m} ${JSON.stringify(o)}`);
  return { lines, debug: rec, info: rec, warn: rec, error: rec };
}

/** A ReportDevice that records link lifecycle and received reports. */
function countingDevice(): ReportDevice & { attaches: number; closes: number; received: Uint8Array[] } {
  const d = {
    attaches: 0,
    closes: 0,
    received: [] as Uint8Array[],
    attach(): HostLink {
      d.attaches++;
      return { receive: (r) => void d.received.push(r), close: () => void d.closes++ };
    },
  };
  return d;
}

const faces: UsbipFace[] = [];
const clients: UsbipTestClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const f of faces.splice(0)) await f.close();
});

async function start(device: ReportDevice, extra: { busid?: string } = {}) {
  const log = recorder();
  const face = await startUsbipFace(device, { port: 0, name: 'keytunnel test key', log, ...extra });
  faces.push(face);
  return { face, log };
}
async function client(face: UsbipFace): Promise<UsbipTestClient> {
  const c = await UsbipTestClient.connect(face.address.port);
  clients.push(c);
  return c;
}
async function imported(face: UsbipFace): Promise<UsbipTestClient> {
  const c = await client(face);
  c.sendImport(face.busid);
  const rep = await c.read(8 + 312);
  expect(rep.readUInt32BE(4)).toBe(0);
  return c;
}
const until = async (cond: () => boolean): Promise<void> => {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(cond()).toBe(true);
};

// Control requests (USB 2.0 §9.4).
const getDescriptor = (type: number, index: number, wLength: number, recipient = 0x80, wIndex = 0) => ({
  bmRequestType: recipient, bRequest: 0x06, wValue: (type << 8) | index, wIndex, wLength,
});

describe('USB/IP face: handshake', () => {
  it('listens on 127.0.0.1 and answers OP_REQ_DEVLIST with one full-speed HID device, then closes', async () => {
    const { face } = await start(countingDevice());
    expect(face.address.host).toBe('127.0.0.1');
    expect(face.address.port).toBeGreaterThan(0);
    const c = await client(face);
    c.sendDevlist();
    const h = await c.read(12);
    expect(h.readUInt16BE(0)).toBe(USBIP_VERSION);
    expect(h.readUInt16BE(2)).toBe(0x0005);
    expect(h.readUInt32BE(4)).toBe(0);
    expect(h.readUInt32BE(8)).toBe(1);
    const dev = await c.read(312 + 4);
    expect(dev.subarray(0x100, 0x104).toString('latin1')).toBe('1-1\0');
    expect(dev.readUInt32BE(0x120)).toBe(1); // busnum
    expect(dev.readUInt32BE(0x128)).toBe(2); // USB_SPEED_FULL
    expect(dev.readUInt16BE(0x12c)).toBe(0x1209);
    expect(dev[0x137]).toBe(1); // bNumInterfaces
    expect([...dev.subarray(312, 316)]).toEqual([3, 0, 0, 0]); // HID, no subclass, no protocol
    expect(await c.closedByServer()).toBe(true);
  });

  it('answers OP_REQ_IMPORT with the device, and refuses an unknown bus id with ST_NODEV', async () => {
    const { face } = await start(countingDevice(), { busid: '3-2' });
    const bad = await client(face);
    bad.sendImport('1-1');
    const rep = await bad.read(8);
    expect(rep.readUInt32BE(4)).toBe(ST_NODEV);
    expect(await bad.closedByServer()).toBe(true);

    const good = await client(face);
    good.sendImport('3-2');
    const ok = await good.read(8 + 312);
    expect(ok.readUInt16BE(2)).toBe(0x0003);
    expect(ok.readUInt32BE(4)).toBe(0);
    expect(ok.subarray(8 + 0x100, 8 + 0x104).toString('latin1')).toBe('3-2\0');
    expect(ok.readUInt32BE(8 + 0x120)).toBe(3);
  });

  it('one importer at a time: a second import gets ST_DEV_BUSY; after the first leaves, import works again', async () => {
    const dev = countingDevice();
    const { face } = await start(dev);
    const first = await imported(face);
    const second = await client(face);
    second.sendImport('1-1');
    expect((await second.read(8)).readUInt32BE(4)).toBe(ST_DEV_BUSY);
    first.close();
    await until(() => dev.closes === 1);
    await imported(face);
    expect(dev.attaches).toBe(2);
  });

  it('rejects a bad bus id option', async () => {
    await expect(startUsbipFace(countingDevice(), { port: 0, name: 'x', busid: '1-1; rm' })).rejects.toThrow(/bus id/);
  });
});

describe('USB/IP face: enumeration', () => {
  it('answers GET_DESCRIPTOR for device, configuration, strings, HID and report descriptors', async () => {
    const { face } = await start(countingDevice());
    const c = await imported(face);

    const dev8 = await c.controlIn(getDescriptor(1, 0, 8));
    expect(dev8.status).toBe(0);
    expect([...dev8.data]).toEqual([18, 1, 0x00, 0x02, 0, 0, 0, 64]);
    const dev = await c.controlIn(getDescriptor(1, 0, 18));
    expect(dev.data.length).toBe(18);
    expect(dev.data.readUInt16LE(8)).toBe(0x1209);
    expect(dev.numberOfPackets).toBe(0xffffffff);

    const cfg9 = await c.controlIn(getDescriptor(2, 0, 9));
    const total = cfg9.data.readUInt16LE(2);
    expect(total).toBe(41);
    const cfg = await c.controlIn(getDescriptor(2, 0, 255));
    expect(cfg.data.length).toBe(41);
    // interface: class 3, subclass 0, protocol 0, two endpoints
    expect([...cfg.data.subarray(9, 18)]).toEqual([9, 4, 0, 0, 2, 3, 0, 0, 0]);
    // endpoints 0x81 IN and 0x01 OUT, interrupt, 64 bytes
    expect([...cfg.data.subarray(27, 34)]).toEqual([7, 5, 0x81, 3, 64, 0, 5]);
    expect([...cfg.data.subarray(34, 41)]).toEqual([7, 5, 0x01, 3, 64, 0, 5]);

    expect([...(await c.controlIn(getDescriptor(3, 0, 255))).data]).toEqual([4, 3, 0x09, 0x04]);
    const product = (await c.controlIn(getDescriptor(3, 2, 255))).data;
    expect(product.subarray(2).toString('utf16le')).toBe('keytunnel test key');
    expect((await c.controlIn(getDescriptor(3, 1, 255))).data.subarray(2).toString('utf16le')).toBe('keytunnel');
    expect((await c.controlIn(getDescriptor(3, 3, 255))).status).toBe(0);
    expect((await c.controlIn(getDescriptor(3, 9, 255))).status).toBe(-EPIPE);

    const report = await c.controlIn(getDescriptor(0x22, 0, 255, 0x81));
    expect(new Uint8Array(report.data)).toEqual(FIDO_REPORT_DESCRIPTOR);
    const hid = await c.controlIn(getDescriptor(0x21, 0, 255, 0x81));
    expect([...hid.data]).toEqual([9, 0x21, 0x11, 0x01, 0, 1, 0x22, 34, 0]);
  });

  it('stalls the device qualifier (full-speed only) and unknown requests; acks SET_CONFIGURATION and SET_IDLE', async () => {
    const { face } = await start(countingDevice());
    const c = await imported(face);
    const q = await c.controlIn(getDescriptor(6, 0, 10));
    expect(q.status).toBe(-EPIPE);
    expect(q.actualLength).toBe(0);
    expect((await c.controlOut({ bmRequestType: 0x00, bRequest: 0x09, wValue: 1, wIndex: 0, wLength: 0 })).status).toBe(0);
    expect([...(await c.controlIn({ bmRequestType: 0x80, bRequest: 0x08, wValue: 0, wIndex: 0, wLength: 1 })).data]).toEqual([1]);
    expect((await c.controlOut({ bmRequestType: 0x21, bRequest: 0x0a, wValue: 0, wIndex: 0, wLength: 0 })).status).toBe(0);
    const status = await c.controlIn({ bmRequestType: 0x80, bRequest: 0x00, wValue: 0, wIndex: 0, wLength: 2 });
    expect(status.status).toBe(0);
    expect([...status.data]).toEqual([0, 0]);
    // HID GET_REPORT: nothing to give on demand.
    expect((await c.controlIn({ bmRequestType: 0xa1, bRequest: 0x01, wValue: 0x0100, wIndex: 0, wLength: 64 })).status).toBe(-EPIPE);
    // A vendor request.
    expect((await c.controlIn({ bmRequestType: 0xc0, bRequest: 0x42, wValue: 0, wIndex: 0, wLength: 4 })).status).toBe(-EPIPE);
    // A transfer to an endpoint the device does not have.
    const seq = c.submit({ direction: 1, ep: 2, length: 64 });
    const r = await c.nextSubmit();
    expect(r.seqnum).toBe(seq);
    expect(r.status).toBe(-EPIPE);
  });
});

describe('USB/IP face: interrupt transfers through the device engine', () => {
  async function initChannel(c: UsbipTestClient): Promise<number> {
    const nonce = randomBytes(8);
    const inSeq = c.submit({ direction: 1, ep: 1, length: 64 });
    const outSeq = c.submit({ direction: 0, ep: 1, length: 64, data: fragment(CID_BROADCAST, CTAPHID_INIT, nonce)[0] });
    // The IN transfer was submitted first but is held until the device has a report: the OUT completes first.
    const first = await c.nextSubmit();
    expect(first.seqnum).toBe(outSeq);
    expect(first.status).toBe(0);
    expect(first.actualLength).toBe(64);
    const answer = await c.nextSubmit();
    expect(answer.seqnum).toBe(inSeq);
    expect(answer.actualLength).toBe(64);
    expect(answer.data.readUInt32BE(0)).toBe(CID_BROADCAST);
    expect(answer.data[4]).toBe(0x80 | CTAPHID_INIT);
    expect(answer.data.subarray(7, 15).equals(nonce)).toBe(true);
    return answer.data.readUInt32BE(15);
  }

  it('CTAPHID INIT: OUT report in, IN report out', async () => {
    const engine = new CtaphidDevice(authenticator);
    const { face } = await start(engine);
    const c = await imported(face);
    const cid = await initChannel(c);
    expect(cid).not.toBe(CID_BROADCAST);
    expect(cid).not.toBe(0);
    engine.close();
  });

  it('a 7609-byte PING (129 reports each way) comes back intact', async () => {
    const engine = new CtaphidDevice(authenticator);
    const { face } = await start(engine);
    const c = await imported(face);
    const cid = await initChannel(c);
    const payload = randomBytes(7609);
    const reports = fragment(cid, CTAPHID_PING, payload);
    expect(reports.length).toBe(129);
    for (const r of reports) {
      c.submit({ direction: 0, ep: 1, length: 64, data: r });
      expect((await c.nextSubmit()).status).toBe(0);
    }
    const reassembler = new CtaphidReassembler({ channel: cid });
    let done: Uint8Array | undefined;
    for (let i = 0; i < 129 && !done; i++) {
      c.submit({ direction: 1, ep: 1, length: 64 });
      const r = await c.nextSubmit();
      const res = reassembler.accept(new Uint8Array(r.data), 0);
      if (res.kind === 'complete') done = res.payload;
    }
    expect(done && Buffer.from(done).equals(payload)).toBe(true);
    engine.close();
  });

  it('unlinking a held IN transfer answers -ECONNRESET and never completes it; unlinking a finished one answers 0', async () => {
    const engine = new CtaphidDevice(authenticator);
    const { face } = await start(engine);
    const c = await imported(face);
    const held = c.submit({ direction: 1, ep: 1, length: 64 });
    const unlinkSeq = c.unlink(held);
    const u = await c.nextReply();
    expect(u).toEqual({ kind: 'unlink', seqnum: unlinkSeq, status: -ECONNRESET });
    // The next report goes to a new IN transfer, not the unlinked one.
    const cid = await initChannel(c);
    expect(cid).toBeGreaterThan(0);
    const again = c.unlink(held);
    expect(await c.nextReply()).toEqual({ kind: 'unlink', seqnum: again, status: 0 });
    engine.close();
  });

  it('one HostLink per import, closed when the connection goes away or the face closes', async () => {
    const dev = countingDevice();
    const { face } = await start(dev);
    const c = await imported(face);
    expect(dev.attaches).toBe(1);
    c.submit({ direction: 0, ep: 1, length: 10, data: Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8, 9, 10) });
    await c.nextSubmit();
    // A short OUT transfer is zero-padded to a whole 64-byte report.
    expect(dev.received.length).toBe(1);
    expect(dev.received[0].length).toBe(64);
    expect([...dev.received[0].subarray(0, 11)]).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0]);
    c.close();
    await until(() => dev.closes === 1);

    const c2 = await imported(face);
    expect(dev.attaches).toBe(2);
    await faces.splice(0)[0].close();
    await until(() => dev.closes === 2);
    expect(await c2.closedByServer()).toBe(true);
  });
});

describe('USB/IP face: hostile input', () => {
  async function expectClosed(payload: Uint8Array, logPattern: RegExp, importFirst = false) {
    const dev = countingDevice();
    const { face, log } = await start(dev);
    const c = importFirst ? await imported(face) : await client(face);
    c.send(payload);
    expect(await c.closedByServer()).toBe(true);
    await until(() => log.lines.some((l) => logPattern.test(l)));
    if (importFirst) await until(() => dev.closes === 1);
  }

  it('closes on a wrong protocol version', async () => {
    await expectClosed(Uint8Array.of(0x01, 0x06, 0x80, 0x05, 0, 0, 0, 0), /unsupported USB\/IP version 0x106/);
  });

  it('closes on an unknown OP request', async () => {
    await expectClosed(Uint8Array.of(0x01, 0x11, 0x80, 0x99, 0, 0, 0, 0), /unknown USB\/IP request 0x8099/);
  });

  it('closes on an unknown URB command', async () => {
    const b = new Uint8Array(48);
    b[3] = 0x07;
    await expectClosed(b, /unknown USB\/IP command 0x7/, true);
  });

  it('closes on an oversized transfer length without buffering it', async () => {
    const b = Buffer.alloc(48);
    b.writeUInt32BE(1, 0);
    b.writeUInt32BE(1, 4);
    b.writeUInt32BE(0, 12);
    b.writeUInt32BE(1, 16);
    b.writeInt32BE(0x7fffffff, 24);
    await expectClosed(b, /transfer of 2147483647 bytes/, true);
  });

  it('closes on a negative transfer length, a bad direction, and isochronous packets', async () => {
    const neg = Buffer.alloc(48);
    neg.writeUInt32BE(1, 0);
    neg.writeInt32BE(-1, 24);
    await expectClosed(neg, /transfer of -1 bytes/, true);
    const dir = Buffer.alloc(48);
    dir.writeUInt32BE(1, 0);
    dir.writeUInt32BE(7, 12);
    await expectClosed(dir, /bad transfer direction 7/, true);
    const iso = Buffer.alloc(48);
    iso.writeUInt32BE(1, 0);
    iso.writeUInt32BE(1, 12);
    iso.writeUInt32BE(3, 32);
    await expectClosed(iso, /isochronous/, true);
  });

  it('survives random bytes after import without throwing (connection closed or still usable)', async () => {
    const engine = new CtaphidDevice(authenticator);
    for (let i = 0; i < 20; i++) {
      const { face } = await start(engine);
      const c = await imported(face);
      c.send(randomBytes(200 + i * 37));
      c.close();
      await faces.splice(0)[0].close();
    }
    engine.close();
  });

  it('a handshake split across many TCP segments still works', async () => {
    const { face } = await start(countingDevice());
    const c = await client(face);
    const req = new Uint8Array(40);
    req.set([0x01, 0x11, 0x80, 0x03, 0, 0, 0, 0]);
    req.set(Buffer.from('1-1'), 8);
    for (const byte of req) {
      c.send(Uint8Array.of(byte));
      await new Promise((r) => setImmediate(r));
    }
    const rep = await c.read(8 + 312);
    expect(rep.readUInt32BE(4)).toBe(0);
  });
});
