import { describe, expect, it } from 'vitest';
import type { FidoDeviceInfo } from '../../../../agent/authenticators/hardware/device-info.ts';
import { formatDeviceTable, runDevices } from '../../../../cli/commands/devices.ts';

const keys: FidoDeviceInfo[] = [
  { path: '/dev/hidraw2', vendorId: 0x1050, productId: 0x0407, product: 'YubiKey 5 NFC', manufacturer: 'Yubico', serialNumber: '12345678' },
  { path: '/dev/hidraw10', vendorId: 0x20a0, productId: 0x42b2, product: '', manufacturer: '', serialNumber: '' },
];

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, stdout: (t: string) => out.push(t), stderr: (t: string) => err.push(t) };
}

describe('keytunnel devices', () => {
  it('prints an aligned table of path, vid:pid, product, serial', async () => {
    const io = capture();
    expect(await runDevices({ json: false }, { ...io, list: async () => keys })).toBe(0);
    expect(io.err).toEqual([]);
    const lines = io.out.join('').trimEnd().split('\n');
    expect(lines).toEqual([
      'PATH           VID:PID    PRODUCT        SERIAL',
      '/dev/hidraw2   1050:0407  YubiKey 5 NFC  12345678',
      '/dev/hidraw10  20a0:42b2  -              -',
    ]);
    expect(formatDeviceTable([])).toBe('PATH  VID:PID  PRODUCT  SERIAL\n');
  });

  it('says "no FIDO keys found" on stderr and exits 0 when there are none', async () => {
    const io = capture();
    expect(await runDevices({ json: false }, { ...io, list: async () => [] })).toBe(0);
    expect(io.out).toEqual([]);
    expect(io.err.join('')).toBe('no FIDO keys found\n');
  });

  it('--json prints parseable records (and [] when empty)', async () => {
    const io = capture();
    expect(await runDevices({ json: true }, { ...io, list: async () => keys })).toBe(0);
    const parsed = JSON.parse(io.out.join('')) as Array<Record<string, unknown>>;
    expect(parsed).toHaveLength(2);
    expect(parsed[0]).toEqual({
      id: 'hid:1050:0407:sn:12345678',
      path: '/dev/hidraw2',
      vidPid: '1050:0407',
      vendorId: 0x1050,
      productId: 0x0407,
      product: 'YubiKey 5 NFC',
      manufacturer: 'Yubico',
      serialNumber: '12345678',
    });
    const empty = capture();
    await runDevices({ json: true }, { ...empty, list: async () => [] });
    expect(JSON.parse(empty.out.join(''))).toEqual([]);
    expect(empty.err).toEqual([]);
  });

  it('reports an enumeration failure on stderr with exit code 1', async () => {
    const io = capture();
    const code = await runDevices({ json: false }, { ...io, list: async () => Promise.reject(new Error('hidapi init failed')) });
    expect(code).toBe(1);
    expect(io.err.join('')).toContain('hidapi init failed');
  });
});
