/**
 * Check the hidraw nodes of keytunnel's virtual keys (Linux): every one present must be readable and writable by
 * this user, or a browser running as this user cannot see the key. Our devices are found through sysfs: the HID
 * device's uevent carries `HID_ID=<bus>:<vendor>:<product>` (8 hex digits each), which for a keytunnel device is
 * bus USB (0003), vendor 0x1209, product 0x0001 — device/faces/usb-descriptors.ts.
 */
import { DEFAULT_PRODUCT_ID, DEFAULT_VENDOR_ID } from '../../device/faces/usb-descriptors.ts';
import { BUS_USB } from '../../device/faces/uhid/uhid-protocol.ts';
import { fail, notApplicable, ok, type Finding } from './finding.ts';
import type { DoctorPorts } from './ports.ts';

export const SYS_CLASS_HIDRAW = '/sys/class/hidraw';
/** A uevent file is a few hundred bytes; read no more than this. */
const MAX_UEVENT_BYTES = 4096;
/** Bound the scan: a machine with more hidraw nodes than this is not one we can reason about line by line. */
const MAX_HIDRAW_NODES = 256;

const hex8 = (n: number): string => n.toString(16).toUpperCase().padStart(8, '0');
export const KEYTUNNEL_HID_ID = `${hex8(BUS_USB)}:${hex8(DEFAULT_VENDOR_ID)}:${hex8(DEFAULT_PRODUCT_ID)}`;

export interface HidrawDevice {
  /** e.g. "hidraw3" */
  readonly node: string;
  readonly name: string;
}

/** Parse a HID device's uevent text (KEY=value lines). */
export function parseUevent(text: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) map.set(line.slice(0, eq), line.slice(eq + 1));
  }
  return map;
}

/** The hidraw nodes whose HID device is a keytunnel virtual key. */
export async function findKeytunnelHidraw(ports: DoctorPorts): Promise<HidrawDevice[]> {
  const nodes = (await ports.listDir(SYS_CLASS_HIDRAW)).filter((n) => /^hidraw\d{1,5}$/.test(n)).slice(0, MAX_HIDRAW_NODES);
  const found: HidrawDevice[] = [];
  for (const node of nodes) {
    const text = await ports.readText(`${SYS_CLASS_HIDRAW}/${node}/device/uevent`, MAX_UEVENT_BYTES);
    if (text === undefined) continue;
    const uevent = parseUevent(text);
    if ((uevent.get('HID_ID') ?? '').toUpperCase() === KEYTUNNEL_HID_ID) {
      found.push({ node, name: (uevent.get('HID_NAME') ?? '').slice(0, 128) });
    }
  }
  return found;
}

export async function checkHidraw(ports: DoctorPorts): Promise<Finding[]> {
  if (ports.platform !== 'linux') return [notApplicable('hidraw', `hidraw is Linux only (this is ${ports.platform})`)];
  const devices = await findKeytunnelHidraw(ports);
  if (devices.length === 0) {
    return [notApplicable('hidraw', 'no keytunnel virtual key is present right now (start the gateway, then run doctor again)')];
  }
  const findings: Finding[] = [];
  for (const d of devices) {
    const path = `/dev/${d.node}`;
    const label = `${path} ("${d.name}")`;
    findings.push(
      (await ports.canReadWrite(path))
        ? ok('hidraw', `${label} is usable by this user`)
        : fail(
            'hidraw',
            `${label} is not readable and writable by this user: browsers running as you cannot use the key`,
            'sudo keytunnel install-service --gateway (udev rule: uaccess + group keytunnel), then unplug/replug ' +
              '(restart the gateway) or sudo udevadm trigger --subsystem-match=hidraw',
          ),
    );
  }
  return findings;
}
