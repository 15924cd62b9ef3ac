import { describe, expect, it } from 'vitest';
import {
  cleanDeviceString,
  fidoDeviceId,
  fidoDeviceLabel,
  filterFidoDevices,
  listFidoDevices,
  MAX_FIDO_DEVICES,
  vidPid,
} from '../../../../agent/authenticators/hardware/device-info.ts';
import type { NodeHidApi, NodeHidDeviceInfo } from '../../../../agent/authenticators/hardware/node-hid-transport.ts';

const yubikey: NodeHidDeviceInfo = {
  vendorId: 0x1050,
  productId: 0x0407,
  path: '/dev/hidraw2',
  serialNumber: '',
  manufacturer: 'Yubico',
  product: 'YubiKey OTP+FIDO+CCID',
  release: 0x0543,
  interface: 1,
  usagePage: 0xf1d0,
  usage: 1,
};
const keyboard: NodeHidDeviceInfo = { ...yubikey, path: '/dev/hidraw1', usagePage: 1, usage: 6, interface: 0 };

describe('FIDO device records', () => {
  it('keeps only usage page 0xF1D0 / usage 1 interfaces, once per path', () => {
    const out = filterFidoDevices([keyboard, yubikey, { ...yubikey }, { ...yubikey, usage: 2, path: '/dev/hidraw9' }]);
    expect(out).toEqual([
      { path: '/dev/hidraw2', vendorId: 0x1050, productId: 0x0407, product: 'YubiKey OTP+FIDO+CCID', manufacturer: 'Yubico', serialNumber: '' },
    ]);
  });

  it('drops malformed records and bounds the list', () => {
    const bad: NodeHidDeviceInfo[] = [
      { ...yubikey, path: undefined },
      { ...yubikey, path: '' },
      { ...yubikey, path: 'x'.repeat(2000) },
      { ...yubikey, vendorId: -1, path: '/a' },
      { ...yubikey, productId: 0x10000, path: '/b' },
    ];
    expect(filterFidoDevices(bad)).toEqual([]);
    const many = Array.from({ length: 200 }, (_, i) => ({ ...yubikey, path: `/dev/hidraw${i}` }));
    expect(filterFidoDevices(many)).toHaveLength(MAX_FIDO_DEVICES);
  });

  it('cleans device-supplied strings (control characters, length)', () => {
    expect(cleanDeviceString('  Evil\u001b[31mKey\n ')).toBe('Evil[31mKey');
    expect(cleanDeviceString('k'.repeat(500))).toHaveLength(64);
    expect(cleanDeviceString(undefined)).toBe('');
    expect(cleanDeviceString(42)).toBe('');
  });

  it('lists through node-hid devicesAsync', async () => {
    const hid: NodeHidApi = {
      devicesAsync: async () => [keyboard, yubikey],
      HIDAsync: { open: async () => Promise.reject(new Error('unused')) },
    };
    expect((await listFidoDevices(hid)).map((d) => d.path)).toEqual(['/dev/hidraw2']);
  });
});

describe('stable id and label', () => {
  const [info] = filterFidoDevices([yubikey]);

  it('derives the id from vid:pid + serial when there is a serial (independent of the path)', () => {
    const a = { ...info, serialNumber: '12345678' };
    const b = { ...a, path: '/dev/hidraw7' };
    expect(fidoDeviceId(a)).toBe('hid:1050:0407:sn:12345678');
    expect(fidoDeviceId(b)).toBe(fidoDeviceId(a));
    expect(fidoDeviceId({ ...a, serialNumber: 'a b/c:d' })).toBe('hid:1050:0407:sn:a_b_c_d');
  });

  it('derives the id from vid:pid + path without a serial (stable for the same path, distinct otherwise)', () => {
    const id = fidoDeviceId(info);
    expect(id).toMatch(/^hid:1050:0407:path:[0-9a-f]{16}$/);
    expect(fidoDeviceId({ ...info })).toBe(id);
    expect(fidoDeviceId({ ...info, path: '/dev/hidraw3' })).not.toBe(id);
  });

  it('labels as "<product> (serial …)" with fallbacks', () => {
    expect(fidoDeviceLabel({ ...info, product: 'YubiKey 5 NFC', serialNumber: '123' })).toBe('YubiKey 5 NFC (serial 123)');
    expect(fidoDeviceLabel(info)).toBe('YubiKey OTP+FIDO+CCID');
    expect(fidoDeviceLabel({ ...info, product: '' })).toBe('Yubico FIDO key');
    expect(fidoDeviceLabel({ ...info, product: '', manufacturer: '' })).toBe('FIDO key 1050:0407');
    expect(vidPid({ vendorId: 0x20a0, productId: 0x42b2 })).toBe('20a0:42b2');
  });
});
