/**
 * Checks for the USB/IP face: on Linux the client side is the vhci-hcd kernel module plus the `usbip` tool
 * (`usbip attach -r 127.0.0.1 -b 1-1`); on Windows it is usbip-win2. Both are only needed with `--hid usbip`, so
 * a missing piece is a warning, not a failure.
 */
import { notApplicable, ok, warn, type Finding } from './finding.ts';
import type { DoctorPorts } from './ports.ts';

/** sysfs evidence of vhci-hcd: the module directory, or its platform device. */
export const VHCI_PATHS = ['/sys/module/vhci_hcd', '/sys/devices/platform/vhci_hcd.0'] as const;
export const USBIP_LINUX_PATHS = ['/usr/sbin/usbip', '/usr/bin/usbip', '/sbin/usbip', '/usr/local/sbin/usbip', '/usr/local/bin/usbip'] as const;
/** usbip-win2's default install location. */
export const USBIP_WIN2_PATH = 'C:\\Program Files\\USBip\\usbip.exe';

async function anyExists(ports: DoctorPorts, paths: readonly string[]): Promise<string | undefined> {
  for (const p of paths) if (await ports.exists(p)) return p;
  return undefined;
}

export async function checkUsbip(ports: DoctorPorts): Promise<Finding[]> {
  if (ports.platform === 'linux') {
    const vhci = await anyExists(ports, VHCI_PATHS);
    const tool = await anyExists(ports, USBIP_LINUX_PATHS);
    return [
      vhci !== undefined
        ? ok('usbip', 'vhci-hcd is loaded (USB/IP client side)')
        : warn('usbip', 'vhci-hcd is not loaded (needed only to attach a --hid usbip device on this machine)', 'sudo modprobe vhci-hcd'),
      tool !== undefined
        ? ok('usbip', `usbip tool found (${tool})`)
        : warn('usbip', 'the usbip tool is not installed (needed only for --hid usbip)', 'sudo apt install usbip'),
    ];
  }
  if (ports.platform === 'win32') {
    if (await ports.exists(USBIP_WIN2_PATH)) return [ok('usbip', `usbip-win2 found (${USBIP_WIN2_PATH})`)];
    const onPath = await ports.run('usbip', ['--version'], 5000);
    if (onPath !== undefined) return [ok('usbip', 'usbip (usbip-win2) is on PATH')];
    return [
      warn(
        'usbip',
        'usbip-win2 is not installed (the Windows client for --hid usbip)',
        'install usbip-win2 from https://github.com/vadimgrn/usbip-win2/releases, then: usbip attach -r 127.0.0.1 -b 1-1',
      ),
    ];
  }
  return [notApplicable('usbip', `USB/IP client checks cover Linux and Windows (this is ${ports.platform})`)];
}
