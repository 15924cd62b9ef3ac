import { describe, expect, it } from 'vitest';
import {
  HidAccessDeniedError,
  HidDeviceRemovedError,
  HidError,
  HidIoError,
  isAccessDenied,
  mapNodeHidError,
} from '../../../../agent/authenticators/hardware/errors.ts';

// Messages exactly as node-hid 3.4 / hidapi 0.15 build them (src/HIDAsync.cc + hidapi/{linux,windows}/hid.c).
const WIN_PATH = '\\\\?\\hid#vid_1050&pid_0407&mi_01#7&2a2b3c&0&0000#{4d1e55b2-f16f-11cf-88cb-001111000030}';
const WIN_OPEN_DENIED = `cannot open device with path ${WIN_PATH}: open_device: (0x00000005) Access is denied.`;
const WIN_OPEN_BARE = `cannot open device with path ${WIN_PATH}`;
const WIN_WRITE_DENIED = 'Cannot write to hid device: WriteFile: (0x00000005) Access is denied.';
const WIN_GONE = 'could not read from HID device: ReadFile: (0x0000048F) The device is not connected.';
const LINUX_OPEN_DENIED =
  "cannot open device with path /dev/hidraw3: Failed to open a device with path '/dev/hidraw3': Permission denied";
const LINUX_OPEN_GONE =
  "cannot open device with path /dev/hidraw3: Failed to open a device with path '/dev/hidraw3': No such file or directory";
const LINUX_READ_GONE = 'could not read from HID device: hid_read_timeout: unexpected poll error (device disconnected)';
const LINUX_NOT_HIDRAW =
  "cannot open device with path /etc/passwd: ioctl(GRDESCSIZE) error for '/etc/passwd', not a HIDRAW device?: Inappropriate ioctl for device";

describe('mapNodeHidError', () => {
  it('maps the Windows 1903+ FIDO open denial to an access-denied error that says how to fix it', () => {
    const err = mapNodeHidError(new TypeError(WIN_OPEN_DENIED), 'open', WIN_PATH, 'win32');
    expect(err).toBeInstanceOf(HidAccessDeniedError);
    expect(err.code).toBe('ACCESS_DENIED');
    expect(err.message).toContain('elevated (Administrator) prompt');
    expect(err.message).toContain('--soft');
    expect((err as HidAccessDeniedError).platform).toBe('win32');
    expect(err.cause).toBeInstanceOf(TypeError);
  });

  it('treats a bare Windows "cannot open device" (no reason given) as the FIDO access denial', () => {
    expect(mapNodeHidError(new Error(WIN_OPEN_BARE), 'open', WIN_PATH, 'win32')).toBeInstanceOf(HidAccessDeniedError);
    // …but only on Windows: elsewhere a bare failure is just I/O.
    expect(mapNodeHidError(new Error('cannot open device with path /dev/hidraw0'), 'open', '/dev/hidraw0', 'linux')).toBeInstanceOf(
      HidIoError,
    );
  });

  it('maps a Windows write denied (open succeeded without read/write access) to access denied', () => {
    const err = mapNodeHidError(new Error(WIN_WRITE_DENIED), 'write', WIN_PATH, 'win32');
    expect(err).toBeInstanceOf(HidAccessDeniedError);
    expect(err.message).toContain('Administrator');
  });

  it('recognises EACCES given as a code', () => {
    const fake = Object.assign(new Error('open failed'), { code: 'EACCES' });
    expect(isAccessDenied(fake, 'open', 'win32')).toBe(true);
    expect(mapNodeHidError(fake, 'open', '/dev/hidraw1', 'linux')).toBeInstanceOf(HidAccessDeniedError);
  });

  it('maps Linux EACCES on /dev/hidrawN to a message naming the udev uaccess rule', () => {
    const err = mapNodeHidError(new Error(LINUX_OPEN_DENIED), 'open', '/dev/hidraw3', 'linux');
    expect(err).toBeInstanceOf(HidAccessDeniedError);
    expect(err.message).toContain('/dev/hidraw3');
    expect(err.message).toContain('TAG+="uaccess"');
    expect(err.message).toContain('GROUP=');
    expect(err.message).not.toContain('Administrator');
  });

  it('maps vanished devices to DEVICE_REMOVED on both platforms', () => {
    for (const [msg, op, platform] of [
      [LINUX_OPEN_GONE, 'open', 'linux'],
      [LINUX_READ_GONE, 'read', 'linux'],
      ['Cannot write to hid device: No such device', 'write', 'linux'],
      [WIN_GONE, 'read', 'win32'],
    ] as const) {
      const err = mapNodeHidError(new Error(msg), op, '/dev/x', platform);
      expect(err, msg).toBeInstanceOf(HidDeviceRemovedError);
      expect(err.code).toBe('DEVICE_REMOVED');
    }
  });

  it('maps anything else to a HidIoError keeping hidapi\'s text', () => {
    const err = mapNodeHidError(new Error(LINUX_NOT_HIDRAW), 'open', '/etc/passwd', 'linux');
    expect(err).toBeInstanceOf(HidIoError);
    expect(err.message).toContain('not a HIDRAW device');
    expect(mapNodeHidError('weird', 'read', '/dev/x', 'linux')).toBeInstanceOf(HidIoError);
    expect(mapNodeHidError(undefined, 'read', '/dev/x', 'linux').message).toContain('unknown error');
  });

  it('passes typed errors through unchanged', () => {
    const typed = new HidDeviceRemovedError('/dev/hidraw0');
    expect(mapNodeHidError(typed, 'read', '/dev/hidraw9', 'linux')).toBe(typed);
    expect(typed).toBeInstanceOf(HidError);
  });
});

describe('isDeviceRemovedError', () => {
  it('sees a removal directly or wrapped as a cause', async () => {
    const { isDeviceRemovedError } = await import('../../../../agent/authenticators/hardware/errors.ts');
    const removed = new HidDeviceRemovedError('/dev/hidraw0');
    expect(isDeviceRemovedError(removed)).toBe(true);
    expect(isDeviceRemovedError(new Error('transact failed', { cause: removed }))).toBe(true);
    expect(isDeviceRemovedError(new HidIoError('x'))).toBe(false);
    expect(isDeviceRemovedError('nope')).toBe(false);
  });
});
