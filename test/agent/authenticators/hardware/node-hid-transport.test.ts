import { describe, expect, it } from 'vitest';
import {
  HidAccessDeniedError,
  HidClosedError,
  HidDeviceRemovedError,
  HidIoError,
} from '../../../../agent/authenticators/hardware/errors.ts';
import {
  type NodeHidApi,
  type NodeHidDevice,
  NodeHidTransport,
} from '../../../../agent/authenticators/hardware/node-hid-transport.ts';

/** A scripted stand-in for node-hid's HIDAsync. */
class FakeDevice implements NodeHidDevice {
  writes: Buffer[] = [];
  reads: Array<Buffer | undefined | Error> = [];
  readTimeouts: number[] = [];
  writeError: Error | null = null;
  writeResult: number | null = null;
  closeCalls = 0;
  async write(values: number[] | Buffer): Promise<number> {
    if (this.writeError) throw this.writeError;
    const buf = Buffer.from(values);
    this.writes.push(buf);
    return this.writeResult ?? buf.length;
  }
  async read(timeOut?: number): Promise<Buffer | undefined> {
    this.readTimeouts.push(timeOut ?? -1);
    const next = this.reads.shift();
    if (next instanceof Error) throw next;
    return next;
  }
  async close(): Promise<void> {
    this.closeCalls++;
    if (this.closeCalls > 1) throw new Error('already closed');
  }
}

function fakeHid(device: FakeDevice | Error): NodeHidApi & { opened: string[] } {
  const opened: string[] = [];
  return {
    opened,
    devicesAsync: async () => [],
    HIDAsync: {
      open: async (path: string) => {
        opened.push(path);
        if (device instanceof Error) throw device;
        return device;
      },
    },
  };
}

describe('NodeHidTransport', () => {
  it('writes each 64-byte report as 65 bytes with report id 0 first', async () => {
    const dev = new FakeDevice();
    const hid = fakeHid(dev);
    const t = await NodeHidTransport.open('/dev/hidraw0', { hid, platform: 'linux' });
    const report = new Uint8Array(64).map((_, i) => i + 1);
    await t.write(report);
    expect(hid.opened).toEqual(['/dev/hidraw0']);
    expect(dev.writes).toHaveLength(1);
    expect(dev.writes[0].length).toBe(65);
    expect(dev.writes[0][0]).toBe(0);
    expect([...dev.writes[0].subarray(1)]).toEqual([...report]);
  });

  it('rejects reports of the wrong size without writing', async () => {
    const dev = new FakeDevice();
    const t = await NodeHidTransport.open('/dev/hidraw0', { hid: fakeHid(dev), platform: 'linux' });
    await expect(t.write(new Uint8Array(65))).rejects.toBeInstanceOf(HidIoError);
    await expect(t.write(new Uint8Array(0))).rejects.toBeInstanceOf(HidIoError);
    expect(dev.writes).toHaveLength(0);
  });

  it('treats a short write as an I/O failure', async () => {
    const dev = new FakeDevice();
    dev.writeResult = -1;
    const t = await NodeHidTransport.open('/dev/hidraw0', { hid: fakeHid(dev), platform: 'linux' });
    await expect(t.write(new Uint8Array(64))).rejects.toBeInstanceOf(HidIoError);
  });

  it('reads 64-byte reports, null on timeout, pads short and truncates long reports', async () => {
    const dev = new FakeDevice();
    const full = Buffer.alloc(64, 7);
    dev.reads.push(full, Buffer.alloc(0), undefined, Buffer.from([1, 2, 3]), Buffer.alloc(70, 9));
    const t = await NodeHidTransport.open('/dev/hidraw0', { hid: fakeHid(dev), platform: 'linux' });
    expect([...(await t.read(100))!]).toEqual([...full]);
    expect(await t.read(5)).toBeUndefined();
    expect(await t.read(5)).toBeUndefined();
    const short = (await t.read(5))!;
    expect(short.length).toBe(64);
    expect([...short.subarray(0, 4)]).toEqual([1, 2, 3, 0]);
    const long = (await t.read(5))!;
    expect(long.length).toBe(64);
    expect(long.every((b) => b === 9)).toBe(true);
    expect(dev.readTimeouts).toEqual([100, 5, 5, 5, 5]);
    // Nonsense timeouts are clamped, never passed through.
    dev.reads.push(undefined, undefined);
    await t.read(-5);
    await t.read(Number.NaN);
    expect(dev.readTimeouts.slice(-2)).toEqual([0, 0]);
  });

  it('maps an open denied on Windows to the elevated-prompt hint', async () => {
    const hid = fakeHid(new TypeError('cannot open device with path \\\\?\\hid#vid_1050: open_device: (0x00000005) Access is denied.'));
    const err = await NodeHidTransport.open('\\\\?\\hid#vid_1050', { hid, platform: 'win32' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HidAccessDeniedError);
    expect((err as Error).message).toContain('elevated (Administrator) prompt');
  });

  it('maps an open denied on Linux to the udev hint', async () => {
    const hid = fakeHid(new Error("cannot open device with path /dev/hidraw2: Failed to open a device with path '/dev/hidraw2': Permission denied"));
    const err = await NodeHidTransport.open('/dev/hidraw2', { hid, platform: 'linux' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HidAccessDeniedError);
    expect((err as Error).message).toContain('uaccess');
  });

  it('a write denied on Windows surfaces as access denied too', async () => {
    const dev = new FakeDevice();
    dev.writeError = new TypeError('Cannot write to hid device: WriteFile: (0x00000005) Access is denied.');
    const t = await NodeHidTransport.open('\\\\?\\hid#x', { hid: fakeHid(dev), platform: 'win32' });
    await expect(t.write(new Uint8Array(64))).rejects.toBeInstanceOf(HidAccessDeniedError);
  });

  it('once the device is gone every call fails fast with DEVICE_REMOVED and the handle is closed', async () => {
    const dev = new FakeDevice();
    dev.reads.push(new Error('could not read from HID device: hid_read_timeout: unexpected poll error (device disconnected)'));
    const t = await NodeHidTransport.open('/dev/hidraw0', { hid: fakeHid(dev), platform: 'linux' });
    await expect(t.read(10)).rejects.toBeInstanceOf(HidDeviceRemovedError);
    await expect(t.write(new Uint8Array(64))).rejects.toBeInstanceOf(HidDeviceRemovedError);
    await expect(t.read(10)).rejects.toBeInstanceOf(HidDeviceRemovedError);
    expect(dev.writes).toHaveLength(0);
    expect(dev.closeCalls).toBe(1);
  });

  it('close is idempotent, never rejects, and later calls fail with HidClosedError', async () => {
    const dev = new FakeDevice();
    const t = await NodeHidTransport.open('/dev/hidraw0', { hid: fakeHid(dev), platform: 'linux' });
    await t.close();
    await t.close();
    expect(dev.closeCalls).toBe(1);
    expect(t.closed).toBe(true);
    await expect(t.write(new Uint8Array(64))).rejects.toBeInstanceOf(HidClosedError);
    await expect(t.read(1)).rejects.toBeInstanceOf(HidClosedError);
  });
});
