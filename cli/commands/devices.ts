/**
 * `keytunnel devices`: list the FIDO keys on this machine (node-hid, usage page 0xF1D0) — path, vid:pid,
 * product, serial — as a table on stdout, or JSON with `--json`. No keys is not an error: the message goes to
 * stderr and the exit code stays 0 (`--json` prints just `[]`, for scripts). Nothing is opened, so this works without the
 * permissions a key's node needs.
 */
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { type FidoDeviceInfo, fidoDeviceId, listFidoDevices, vidPid } from '../../agent/authenticators/hardware/device-info.ts';
import { loadNodeHid } from '../../agent/authenticators/hardware/node-hid-transport.ts';

/** The machine-readable form of one key (`--json`). */
export interface DeviceListing {
  readonly id: string;
  readonly path: string;
  readonly vidPid: string;
  readonly vendorId: number;
  readonly productId: number;
  readonly product: string;
  readonly manufacturer: string;
  readonly serialNumber: string;
}

export function toListing(info: FidoDeviceInfo): DeviceListing {
  return {
    id: fidoDeviceId(info),
    path: info.path,
    vidPid: vidPid(info),
    vendorId: info.vendorId,
    productId: info.productId,
    product: info.product,
    manufacturer: info.manufacturer,
    serialNumber: info.serialNumber,
  };
}

/** A plain aligned text table with a header row. */
export function formatDeviceTable(devices: readonly FidoDeviceInfo[]): string {
  const header = ['PATH', 'VID:PID', 'PRODUCT', 'SERIAL'];
  const rows = devices.map((d) => [d.path, vidPid(d), d.product || '-', d.serialNumber || '-']);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

export interface DevicesIo {
  readonly list: () => Promise<FidoDeviceInfo[]>;
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
}

/** The command's behaviour, with its I/O injected (tests call this directly). Returns the exit code. */
export async function runDevices(args: { json: boolean }, io: DevicesIo): Promise<number> {
  let devices: FidoDeviceInfo[];
  try {
    devices = await io.list();
  } catch (err) {
    io.stderr(`keytunnel devices: cannot enumerate HID devices: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
  if (args.json) {
    io.stdout(JSON.stringify(devices.map(toListing), null, 2) + '\n');
    return 0;
  }
  if (devices.length === 0) {
    io.stderr('no FIDO keys found\n');
    return 0;
  }
  io.stdout(formatDeviceTable(devices));
  return 0;
}

export const devicesCommand: CommandModule = {
  command: 'devices',
  describe: 'List the FIDO security keys connected to this machine',
  builder: (yargs: Argv) =>
    yargs.option('json', { type: 'boolean', default: false, describe: 'Print a JSON array (for scripts)' }),
  handler: async (argv: ArgumentsCamelCase) => {
    const code = await runDevices(
      { json: argv['json'] === true },
      {
        list: () => listFidoDevices(loadNodeHid()),
        stdout: (t) => process.stdout.write(t),
        stderr: (t) => process.stderr.write(t),
      },
    );
    if (code !== 0) process.exitCode = code;
  },
};

export default devicesCommand;
