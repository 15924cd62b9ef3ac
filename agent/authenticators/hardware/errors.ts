/**
 * Typed errors of the agent's hardware-key path, and the mapping from node-hid's untyped failures to them.
 *
 * node-hid (hidapi underneath) reports every failure as a plain `Error` whose message is hidapi's text, e.g.
 *   linux:  "cannot open device with path /dev/hidraw3: Failed to open a device with path '/dev/hidraw3': Permission denied"
 *   win32:  "cannot open device with path \\?\hid#…: open_device: (0x00000005) Access is denied."
 *           "Cannot write to hid device: WriteFile: (0x00000005) Access is denied."
 * so the mapping works on message patterns (plus `code` when a caller's fake or a future node-hid sets one).
 *
 * Why access-denied matters: since Windows 10 1903 only elevated processes may open HID devices with the FIDO
 * usage page 0xF1D0 (node-hid#312, python-fido2#55); hidapi then retries the open without read/write access,
 * which can succeed, so the denial may surface on the first write instead of on open. On Linux a /dev/hidrawN
 * node without a uaccess/group rule is EACCES for ordinary users. Both get a message that says how to fix it.
 */

import { KeytunnelError } from '../../../protocol/errors.ts';

export type HidErrorCode = 'ACCESS_DENIED' | 'DEVICE_REMOVED' | 'IO' | 'CLOSED' | 'QUEUE_FULL' | 'BAD_REQUEST';

/** Base of every error this directory raises; `code` is the stable thing to switch on. */
export class HidError extends KeytunnelError {
  override readonly name: string = 'HidError';
  readonly code: HidErrorCode;
  constructor(code: HidErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** The OS refused access to the key's HID node; `message` carries the fix for that platform. */
export class HidAccessDeniedError extends HidError {
  override readonly name = 'HidAccessDeniedError';
  readonly path: string;
  readonly platform: NodeJS.Platform;
  constructor(path: string, platform: NodeJS.Platform, options?: { cause?: unknown }) {
    super('ACCESS_DENIED', accessDeniedMessage(path, platform), options);
    this.path = path;
    this.platform = platform;
  }
}

/** The key went away (unplugged, or its node vanished); pending and queued requests fail with this. */
export class HidDeviceRemovedError extends HidError {
  override readonly name = 'HidDeviceRemovedError';
  readonly path: string;
  constructor(path: string, options?: { cause?: unknown }) {
    super('DEVICE_REMOVED', `FIDO key ${path} was removed`, options);
    this.path = path;
  }
}

/** Any other transport failure (open, write or read), with hidapi's text kept in the message. */
export class HidIoError extends HidError {
  override readonly name = 'HidIoError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('IO', message, options);
  }
}

/** Use of a transport or authenticator after `close()`. */
export class HidClosedError extends HidError {
  override readonly name = 'HidClosedError';
  constructor(what: string) {
    super('CLOSED', `${what} is closed`);
  }
}

/** Too many requests waiting for one key (bounded so an untrusted gateway cannot pile up work). */
export class HidQueueFullError extends HidError {
  override readonly name = 'HidQueueFullError';
  constructor(limit: number) {
    super('QUEUE_FULL', `too many requests waiting for this key (limit ${limit})`);
  }
}

/** A request that cannot be sent at all (unknown kind, oversize payload). */
export class HidBadRequestError extends HidError {
  override readonly name = 'HidBadRequestError';
  constructor(message: string) {
    super('BAD_REQUEST', message);
  }
}

export type HidOperation = 'open' | 'write' | 'read' | 'close';

function accessDeniedMessage(path: string, platform: NodeJS.Platform): string {
  if (platform === 'win32') {
    return (
      `Windows denied access to the FIDO key ${path}: since Windows 10 1903 only elevated processes may open ` +
      'FIDO security keys directly. Run the agent from an elevated (Administrator) prompt, or use the soft ' +
      'authenticator (--soft).'
    );
  }
  if (platform === 'linux') {
    return (
      `Permission denied opening the FIDO key ${path}. Give your user access to FIDO hidraw nodes with a udev rule, ` +
      'e.g. /etc/udev/rules.d/70-fido.rules containing\n' +
      '  KERNEL=="hidraw*", SUBSYSTEM=="hidraw", ATTRS{idVendor}=="<vid>", TAG+="uaccess"\n' +
      '(or GROUP="plugdev", MODE="0660" with your user in that group), then `udevadm control --reload` and ' +
      're-plug the key; libfido2 and your distribution (package libu2f-udev / fido2 udev rules) ship ready-made rules.'
    );
  }
  return `Access denied opening the FIDO key ${path}: check the permissions of the device, or use the soft authenticator (--soft).`;
}

// hidapi/OS wording for "no permission": strerror(EACCES)/(EPERM), Win32 ERROR_ACCESS_DENIED (5), a node `code`.
const ACCESS_DENIED_PATTERNS: readonly RegExp[] = [
  /Permission denied/i,
  /Access is denied/i,
  /Operation not permitted/i,
  /\(0x00000005\)/,
  /\bEACCES\b/,
  /\bEPERM\b/,
  /kIOReturnNotPrivileged|0xE00002C1/i,
];

// hidapi/OS wording for "the device is gone": ENODEV/ENOENT/EIO from hidraw, hidapi's poll error text,
// Win32 ERROR_DEVICE_NOT_CONNECTED (0x48F) / ERROR_BAD_COMMAND (0x16), macOS kIOReturnNotAttached / NoDevice.
const REMOVED_PATTERNS: readonly RegExp[] = [
  /device disconnected/i,
  /No such device/i,
  /No such file or directory/i,
  /Input\/output error/i,
  /\bENODEV\b/,
  /\bENOENT\b/,
  /\(0x0000048F\)/i,
  /\(0x00000002\)/,
  /device is not connected/i,
  /kIOReturnNotAttached|kIOReturnNoDevice|0xE00002D8|0xE00002C0/i,
];

function describe(err: unknown): { message: string; code: string } {
  if (err instanceof Error) {
    const code = (err as Error & { code?: unknown }).code;
    return { message: err.message, code: typeof code === 'string' ? code : '' };
  }
  return { message: typeof err === 'string' ? err : 'unknown error', code: '' };
}

/** Does this node-hid failure mean "access denied"? Windows also reports it as "cannot open device" with no detail. */
export function isAccessDenied(err: unknown, op: HidOperation, platform: NodeJS.Platform): boolean {
  const { message, code } = describe(err);
  const text = `${code} ${message}`;
  if (ACCESS_DENIED_PATTERNS.some((re) => re.test(text))) return true;
  // Older node-hid/hidapi builds on Windows gave no reason at all for the 0xF1D0 denial: a bare
  // "cannot open device with path \\?\hid#…" (Windows HID paths contain no ':', so no ': ' means no detail).
  if (platform === 'win32' && op === 'open' && /^cannot open device/i.test(message) && !message.includes(': ')) return true;
  return false;
}

/** Does this node-hid failure mean the device is gone? */
export function isDeviceGone(err: unknown): boolean {
  const { message, code } = describe(err);
  return REMOVED_PATTERNS.some((re) => re.test(`${code} ${message}`));
}

/**
 * Map a node-hid failure to a typed error. Idempotent: a HidError passes through unchanged.
 * Access denial is checked before removal (a denied Windows open must not read as "removed").
 */
export function mapNodeHidError(err: unknown, op: HidOperation, path: string, platform: NodeJS.Platform): HidError {
  if (err instanceof HidError) return err;
  if (isAccessDenied(err, op, platform)) return new HidAccessDeniedError(path, platform, { cause: err });
  if (isDeviceGone(err)) return new HidDeviceRemovedError(path, { cause: err });
  const { message } = describe(err);
  return new HidIoError(`${op} failed on FIDO key ${path}: ${message}`, { cause: err });
}

/** Whether `err` (or an error it wraps, via `cause`) says the device was removed. */
export function isDeviceRemovedError(err: unknown): boolean {
  let current: unknown = err;
  for (let depth = 0; depth < 5 && current instanceof Error; depth++) {
    if (current instanceof HidError && current.code === 'DEVICE_REMOVED') return true;
    current = current.cause;
  }
  return false;
}
