/**
 * Checks for the uhid face (Linux): /dev/uhid exists (the uhid module) and this user may open it (the udev rule
 * and the keytunnel group), and the udev rule itself is installed.
 */
import { fail, notApplicable, ok, warn, type Finding } from './finding.ts';
import type { DoctorPorts } from './ports.ts';

export const UHID_PATH = '/dev/uhid';
/** Where `keytunnel install-service` puts the rule, and where a distribution package would. */
export const UDEV_RULE_PATHS = [
  '/etc/udev/rules.d/70-keytunnel.rules',
  '/usr/lib/udev/rules.d/70-keytunnel.rules',
  '/lib/udev/rules.d/70-keytunnel.rules',
] as const;

const GROUP_FIX =
  'sudo keytunnel install-service --gateway (udev rule: /dev/uhid for group keytunnel), then ' +
  'sudo usermod -aG keytunnel $USER and log in again';

export async function checkUhid(ports: DoctorPorts): Promise<Finding> {
  if (ports.platform !== 'linux') {
    return notApplicable('uhid', `/dev/uhid is Linux only (this is ${ports.platform}); use --hid usbip here`);
  }
  if (!(await ports.exists(UHID_PATH))) {
    return fail(
      'uhid',
      `${UHID_PATH} is missing: the uhid kernel module is not loaded`,
      'sudo modprobe uhid (at every boot: sudo keytunnel install-service --gateway adds /etc/modules-load.d/keytunnel.conf)',
    );
  }
  if (!(await ports.canReadWrite(UHID_PATH))) {
    return fail('uhid', `${UHID_PATH} is not readable and writable by this user`, GROUP_FIX);
  }
  return ok('uhid', `${UHID_PATH} is usable`);
}

export async function checkUdevRule(ports: DoctorPorts): Promise<Finding> {
  if (ports.platform !== 'linux') return notApplicable('udev', `udev rules are Linux only (this is ${ports.platform})`);
  for (const path of UDEV_RULE_PATHS) {
    if (await ports.exists(path)) return ok('udev', `udev rule installed (${path})`);
  }
  return warn(
    'udev',
    'the keytunnel udev rule is not installed: only root can use /dev/uhid, browsers may not open the virtual keys',
    'sudo keytunnel install-service --gateway',
  );
}
