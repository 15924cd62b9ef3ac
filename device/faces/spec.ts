/**
 * Which face shows a device to its host, and where: the parsed form of `--hid` (cli/hid-spec.ts parses and
 * validates the flag; only loopback addresses get this far).
 *
 *   loopback:HOST:PORT   a TCP socket carrying raw 64-byte reports (loopback.ts)
 *   uhid                 a Linux /dev/uhid device (uhid/uhid.ts)
 *   usbip:HOST:PORT      a USB/IP server (usbip/usbip.ts)
 */
export type HidSpec =
  | { readonly kind: 'loopback'; readonly host: string; readonly port: number }
  | { readonly kind: 'uhid' }
  | { readonly kind: 'usbip'; readonly host: string; readonly port: number };

/** The `--hid` text of a spec ("loopback:127.0.0.1:8900", "uhid", "usbip:[::1]:3240"). */
export function formatHidSpec(spec: HidSpec): string {
  if (spec.kind === 'uhid') return 'uhid';
  const host = spec.host.includes(':') ? `[${spec.host}]` : spec.host;
  return `${spec.kind}:${host}:${spec.port}`;
}
