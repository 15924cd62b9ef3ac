/**
 * The one face factory both commands use (device/faces/factory.ts): the slot → port rule of the socket faces,
 * the description format, and the serial number a caller may give each device (the USB/IP face is checked
 * through its USB string descriptor; the uhid face needs /dev/uhid and is covered by the VM tests).
 */
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { faceFactoryFor, type FaceHandle } from '../../../device/faces/factory.ts';
import type { ReportDevice } from '../../../device/host-link.ts';
import { UsbipTestClient } from './usbip/usbip-client.ts';

const device: ReportDevice = { attach: () => ({ receive() {}, close() {} }) };
const log = pino({ level: 'silent' });
const descriptor = { id: 'x', label: 'x', transport: 'remote' as const, ctap1: false, wink: false };

describe('face factory', () => {
  it('refuses a slot whose port would exceed 65535', async () => {
    const factory = faceFactoryFor({ kind: 'loopback', host: '127.0.0.1', port: 65535 }, log);
    await expect(factory(device, { descriptor, slot: 1 })).rejects.toThrow('no port left for device slot 1');
  });

  it('with PORT 0 every slot gets its own free port', async () => {
    const factory = faceFactoryFor({ kind: 'loopback', host: '127.0.0.1', port: 0 }, log);
    const a = await factory(device, { descriptor, slot: 0 });
    const b = await factory(device, { descriptor, slot: 1 });
    try {
      expect(a.address!.port).toBeGreaterThan(0);
      expect(b.address!.port).toBeGreaterThan(0);
      expect(a.address!.port).not.toBe(b.address!.port);
      expect(a.description).toBe(`loopback:127.0.0.1:${a.address!.port}`);
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe('face factory: usbip', () => {
  const handles: FaceHandle[] = [];
  const clients: UsbipTestClient[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    for (const h of handles.splice(0)) await h.close();
  });

  /** Imports bus id 1-1 from the face and reads USB string descriptors (USB 2.0 §9.6.7) as text. */
  async function usbStrings(handle: FaceHandle, indices: readonly number[]): Promise<string[]> {
    const c = await UsbipTestClient.connect(handle.address!.port);
    clients.push(c);
    c.sendImport('1-1');
    expect((await c.read(8 + 312)).readUInt32BE(4)).toBe(0);
    const texts: string[] = [];
    for (const index of indices) {
      const reply = await c.controlIn({ bmRequestType: 0x80, bRequest: 0x06, wValue: (3 << 8) | index, wIndex: 0x0409, wLength: 255 });
      expect(reply.status).toBe(0);
      texts.push(reply.data.subarray(2).toString('utf16le'));
    }
    return texts;
  }

  it('names the product after the label, describes itself as usbip:HOST:PORT busid 1-1, and carries the serial of its slot', async () => {
    const factory = faceFactoryFor({ kind: 'usbip', host: '127.0.0.1', port: 0 }, log, { serial: (slot) => `sn-${slot}` });
    const h = await factory(device, { descriptor: { ...descriptor, label: 'the key' }, slot: 2 });
    handles.push(h);
    expect(h.description).toBe(`usbip:127.0.0.1:${h.address!.port} busid 1-1`);
    expect(await usbStrings(h, [2, 3])).toEqual(['the key', 'sn-2']);
  });

  it('without a serial option keeps the face default', async () => {
    const h = await faceFactoryFor({ kind: 'usbip', host: '127.0.0.1', port: 0 }, log)(device, { descriptor, slot: 0 });
    handles.push(h);
    expect(await usbStrings(h, [3])).toEqual(['0']);
  });
});
