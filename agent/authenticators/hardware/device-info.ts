/**
 * What the agent knows about a FIDO HID key before opening it: the enumeration record, which of node-hid's
 * records are FIDO keys, and the key's stable id and human label.
 *
 * A FIDO HID interface is recognised by its report descriptor's usage page 0xF1D0 (FIDO Alliance) and usage
 * 0x01 (CTAPHID) — CTAP 2.1 PS 2021-06-15 §11.2.8.2 "HID report descriptor and device discovery". Strings in the
 * record come from the device itself, so they are cleaned (no control characters) and bounded before use.
 */
import { createHash } from 'node:crypto';
import type { NodeHidApi, NodeHidDeviceInfo } from './node-hid-transport.ts';

/** CTAP 2.1 §11.2.8.2 "HID report descriptor and device discovery": FIDO_USAGE_PAGE and FIDO_USAGE_CTAPHID. */
export const FIDO_USAGE_PAGE = 0xf1d0;
export const FIDO_USAGE_CTAPHID = 0x01;

/** Bound on strings taken from a device (product, manufacturer, serial). */
export const MAX_DEVICE_STRING = 64;
/** Bound on how many FIDO interfaces one enumeration may yield (a sane machine has a handful). */
export const MAX_FIDO_DEVICES = 64;

/** One FIDO key as enumerated. */
export interface FidoDeviceInfo {
  /** OS path of the HID node (/dev/hidrawN, \\?\hid#…, IOService:…); what `HIDAsync.open` takes. */
  readonly path: string;
  readonly vendorId: number;
  readonly productId: number;
  /** Empty when the device reports none. */
  readonly product: string;
  readonly manufacturer: string;
  readonly serialNumber: string;
}

/** Drop control characters and surrounding blanks, cap the length. */
export function cleanDeviceString(value: unknown): string {
  if (typeof value !== 'string') return '';
  // eslint-disable-next-line no-control-regex
  return value.replace(/[\u0000-\u001f\u007f-\u009f]/g, '').trim().slice(0, MAX_DEVICE_STRING);
}

function isUint16(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 0xffff;
}

/** The FIDO HID record in node-hid's output, or null for any other device or a malformed record. */
export function toFidoDeviceInfo(dev: NodeHidDeviceInfo): FidoDeviceInfo | null {
  if (dev.usagePage !== FIDO_USAGE_PAGE || dev.usage !== FIDO_USAGE_CTAPHID) return null;
  if (typeof dev.path !== 'string' || dev.path.length === 0 || dev.path.length > 1024) return null;
  if (!isUint16(dev.vendorId) || !isUint16(dev.productId)) return null;
  return {
    path: dev.path,
    vendorId: dev.vendorId,
    productId: dev.productId,
    product: cleanDeviceString(dev.product),
    manufacturer: cleanDeviceString(dev.manufacturer),
    serialNumber: cleanDeviceString(dev.serialNumber),
  };
}

/** Keep only FIDO keys, one record per path, at most MAX_FIDO_DEVICES, in enumeration order. */
export function filterFidoDevices(devices: readonly NodeHidDeviceInfo[]): FidoDeviceInfo[] {
  const seen = new Set<string>();
  const out: FidoDeviceInfo[] = [];
  for (const dev of devices) {
    const info = toFidoDeviceInfo(dev);
    if (!info || seen.has(info.path)) continue;
    seen.add(info.path);
    out.push(info);
    if (out.length >= MAX_FIDO_DEVICES) break;
  }
  return out;
}

/** List the FIDO keys node-hid can see right now. */
export async function listFidoDevices(hid: NodeHidApi): Promise<FidoDeviceInfo[]> {
  return filterFidoDevices(await hid.devicesAsync());
}

function hex4(n: number): string {
  return n.toString(16).padStart(4, '0');
}

/** "1050:0407". */
export function vidPid(info: Pick<FidoDeviceInfo, 'vendorId' | 'productId'>): string {
  return `${hex4(info.vendorId)}:${hex4(info.productId)}`;
}

/**
 * Stable id: from vid:pid + serial number, which survives restarts and re-plugging; when the key reports no
 * serial (many do not over HID), from vid:pid + a hash of the path, stable while it stays in the same port.
 */
export function fidoDeviceId(info: FidoDeviceInfo): string {
  if (info.serialNumber) return `hid:${vidPid(info)}:sn:${info.serialNumber.replace(/[^A-Za-z0-9._-]/g, '_')}`;
  const digest = createHash('sha256').update(info.path, 'utf8').digest('hex').slice(0, 16);
  return `hid:${vidPid(info)}:path:${digest}`;
}

/** "YubiKey 5 NFC (serial 123)"; falls back to the manufacturer, then to "FIDO key 1050:0407". */
export function fidoDeviceLabel(info: FidoDeviceInfo): string {
  const name = info.product || (info.manufacturer ? `${info.manufacturer} FIDO key` : `FIDO key ${vidPid(info)}`);
  return info.serialNumber ? `${name} (serial ${info.serialNumber})` : name;
}
