/**
 * The USB/IP wire protocol (Linux Documentation/usb/usbip_protocol.rst, version 1.1.1 = 0x0111, which usbip-win2
 * also requires): the OP_* messages of the handshake and the 48-byte URB headers of USBIP_CMD_SUBMIT /
 * USBIP_RET_SUBMIT / USBIP_CMD_UNLINK / USBIP_RET_UNLINK. All fields are big endian. Pure codecs; no I/O.
 */

export const USBIP_VERSION = 0x0111;

// Handshake command / reply codes.
export const OP_REQ_DEVLIST = 0x8005;
export const OP_REP_DEVLIST = 0x0005;
export const OP_REQ_IMPORT = 0x8003;
export const OP_REP_IMPORT = 0x0003;
export const OP_HEADER_SIZE = 8;
export const BUSID_SIZE = 32;
export const PATH_SIZE = 256;

// OP reply status (tools/usb/usbip/libsrc/usbip_common.h: ST_OK, ST_NA, ST_DEV_BUSY, ST_DEV_ERR, ST_NODEV, ST_ERROR).
export const ST_OK = 0x00;
export const ST_NA = 0x01;
export const ST_DEV_BUSY = 0x02;
export const ST_DEV_ERR = 0x03;
export const ST_NODEV = 0x04;
export const ST_ERROR = 0x05;

// URB phase.
export const USBIP_CMD_SUBMIT = 0x0001;
export const USBIP_CMD_UNLINK = 0x0002;
export const USBIP_RET_SUBMIT = 0x0003;
export const USBIP_RET_UNLINK = 0x0004;
export const USBIP_HEADER_SIZE = 48;
export const USBIP_DIR_OUT = 0;
export const USBIP_DIR_IN = 1;
/** number_of_packets of a non-isochronous transfer. */
export const NON_ISO_PACKETS = 0xffffffff;

/** include/linux/usb/ch9.h enum usb_device_speed. */
export const USB_SPEED_FULL = 2;

// Linux errno values carried (negated) in URB status fields.
export const ENOMEM = 12;
export const ENODEV = 19;
export const EPIPE = 32;
export const ECONNRESET = 104;
export const ESHUTDOWN = 108;

/** What OP_REP_DEVLIST and OP_REP_IMPORT say about a device (struct usbip_usb_device). */
export interface UsbipDeviceInfo {
  readonly path: string;
  readonly busid: string;
  readonly busnum: number;
  readonly devnum: number;
  readonly speed: number;
  readonly idVendor: number;
  readonly idProduct: number;
  readonly bcdDevice: number;
  readonly bDeviceClass: number;
  readonly bDeviceSubClass: number;
  readonly bDeviceProtocol: number;
  readonly bConfigurationValue: number;
  readonly bNumConfigurations: number;
  readonly interfaces: readonly { readonly bInterfaceClass: number; readonly bInterfaceSubClass: number; readonly bInterfaceProtocol: number }[];
}

/** struct usbip_usb_device is 312 bytes; each interface adds 4 in OP_REP_DEVLIST. */
export const USBIP_DEVICE_SIZE = 312;

export interface OpHeader {
  readonly version: number;
  readonly code: number;
  readonly status: number;
}

export function decodeOpHeader(b: Uint8Array): OpHeader {
  const v = view(b);
  return { version: v.getUint16(0), code: v.getUint16(2), status: v.getUint32(4) };
}

export function encodeOpHeader(code: number, status: number): Uint8Array {
  const out = new Uint8Array(OP_HEADER_SIZE);
  const v = view(out);
  v.setUint16(0, USBIP_VERSION);
  v.setUint16(2, code);
  v.setUint32(4, status);
  return out;
}

/** A NUL-terminated, zero-padded ASCII field; returns undefined when not terminated within `size` or not printable. */
export function decodeCString(b: Uint8Array): string | undefined {
  const end = b.indexOf(0);
  if (end < 0) return undefined;
  let s = '';
  for (let i = 0; i < end; i++) {
    if (b[i] < 0x20 || b[i] > 0x7e) return undefined;
    s += String.fromCharCode(b[i]);
  }
  return s;
}

function putCString(out: Uint8Array, offset: number, size: number, s: string): void {
  const n = Math.min(s.length, size - 1);
  for (let i = 0; i < n; i++) out[offset + i] = s.charCodeAt(i) & 0x7f;
}

/** struct usbip_usb_device (without the interface list). */
export function encodeDeviceInfo(d: UsbipDeviceInfo): Uint8Array {
  const out = new Uint8Array(USBIP_DEVICE_SIZE);
  const v = view(out);
  putCString(out, 0, PATH_SIZE, d.path);
  putCString(out, PATH_SIZE, BUSID_SIZE, d.busid);
  v.setUint32(0x120, d.busnum);
  v.setUint32(0x124, d.devnum);
  v.setUint32(0x128, d.speed);
  v.setUint16(0x12c, d.idVendor);
  v.setUint16(0x12e, d.idProduct);
  v.setUint16(0x130, d.bcdDevice);
  out[0x132] = d.bDeviceClass;
  out[0x133] = d.bDeviceSubClass;
  out[0x134] = d.bDeviceProtocol;
  out[0x135] = d.bConfigurationValue;
  out[0x136] = d.bNumConfigurations;
  out[0x137] = d.interfaces.length;
  return out;
}

export function encodeDevlistReply(devices: readonly UsbipDeviceInfo[]): Uint8Array {
  const parts: Uint8Array[] = [encodeOpHeader(OP_REP_DEVLIST, ST_OK)];
  const count = new Uint8Array(4);
  view(count).setUint32(0, devices.length);
  parts.push(count);
  for (const d of devices) {
    parts.push(encodeDeviceInfo(d));
    for (const i of d.interfaces) parts.push(Uint8Array.of(i.bInterfaceClass, i.bInterfaceSubClass, i.bInterfaceProtocol, 0));
  }
  return concat(parts);
}

export function encodeImportReply(status: number, device?: UsbipDeviceInfo): Uint8Array {
  const header = encodeOpHeader(OP_REP_IMPORT, status);
  return status === ST_OK && device ? concat([header, encodeDeviceInfo(device)]) : header;
}

/** The 20-byte usbip_header_basic plus the command-specific part, decoded from 48 bytes. */
export type UrbCommand =
  | {
      readonly command: 'submit';
      readonly seqnum: number;
      readonly devid: number;
      readonly direction: number;
      readonly ep: number;
      readonly transferFlags: number;
      readonly transferBufferLength: number;
      readonly startFrame: number;
      readonly numberOfPackets: number;
      readonly interval: number;
      readonly setup: Uint8Array;
    }
  | { readonly command: 'unlink'; readonly seqnum: number; readonly devid: number; readonly unlinkSeqnum: number }
  | { readonly command: 'unknown'; readonly code: number; readonly seqnum: number };

export function decodeUrbHeader(b: Uint8Array): UrbCommand {
  const v = view(b);
  const code = v.getUint32(0);
  const seqnum = v.getUint32(4);
  const devid = v.getUint32(8);
  if (code === USBIP_CMD_SUBMIT) {
    return {
      command: 'submit',
      seqnum,
      devid,
      direction: v.getUint32(12),
      ep: v.getUint32(16),
      transferFlags: v.getUint32(20),
      transferBufferLength: v.getInt32(24),
      startFrame: v.getInt32(28),
      numberOfPackets: v.getUint32(32),
      interval: v.getInt32(36),
      setup: b.slice(40, 48),
    };
  }
  if (code === USBIP_CMD_UNLINK) return { command: 'unlink', seqnum, devid, unlinkSeqnum: v.getUint32(20) };
  return { command: 'unknown', code, seqnum };
}

/** USBIP_RET_SUBMIT for a non-isochronous transfer; `data` follows the header for IN transfers. */
export function encodeRetSubmit(seqnum: number, status: number, actualLength: number, data?: Uint8Array): Uint8Array {
  const out = new Uint8Array(USBIP_HEADER_SIZE + (data?.length ?? 0));
  const v = view(out);
  v.setUint32(0, USBIP_RET_SUBMIT);
  v.setUint32(4, seqnum);
  // devid, direction, ep: 0 in replies.
  v.setInt32(20, status);
  v.setInt32(24, actualLength);
  v.setInt32(28, 0); // start_frame
  v.setUint32(32, NON_ISO_PACKETS);
  v.setInt32(36, 0); // error_count
  if (data) out.set(data, USBIP_HEADER_SIZE);
  return out;
}

export function encodeRetUnlink(seqnum: number, status: number): Uint8Array {
  const out = new Uint8Array(USBIP_HEADER_SIZE);
  const v = view(out);
  v.setUint32(0, USBIP_RET_UNLINK);
  v.setUint32(4, seqnum);
  v.setInt32(20, status);
  return out;
}

/** USB 2.0 §9.3: the 8-byte SETUP packet of a control transfer (little endian). */
export interface SetupPacket {
  readonly bmRequestType: number;
  readonly bRequest: number;
  readonly wValue: number;
  readonly wIndex: number;
  readonly wLength: number;
}

export function decodeSetup(b: Uint8Array): SetupPacket {
  const v = view(b);
  return { bmRequestType: b[0], bRequest: b[1], wValue: v.getUint16(2, true), wIndex: v.getUint16(4, true), wLength: v.getUint16(6, true) };
}

export function encodeSetup(s: SetupPacket): Uint8Array {
  const out = new Uint8Array(8);
  const v = view(out);
  out[0] = s.bmRequestType;
  out[1] = s.bRequest;
  v.setUint16(2, s.wValue, true);
  v.setUint16(4, s.wIndex, true);
  v.setUint16(6, s.wLength, true);
  return out;
}

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
