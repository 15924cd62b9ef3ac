/**
 * The `--hid` flag: which face shows a CTAPHID device to the host.
 *
 *   loopback:HOST:PORT   a TCP socket carrying raw 64-byte reports (tests, python-fido2 interop); PORT 0 = any
 *   uhid                 a Linux /dev/uhid device (the kernel sees a real FIDO HID device)
 *   usbip[:HOST:PORT]    a USB/IP server the local kernel attaches with `usbip attach` (default 127.0.0.1:3240)
 *
 * Both socket faces carry an authenticator with no authentication of their own, so they only listen on a
 * loopback address: anything else is refused here, with a message saying why, unless the caller opts in
 * (`anyAddress`, which `keytunnel soft --allow-unauthenticated-remote-access` sets for a container).
 */
import { isIP } from 'node:net';
import type { HidSpec } from '../device/faces/spec.ts';
import { KeytunnelError } from '../protocol/errors.ts';

export { formatHidSpec, type HidSpec } from '../device/faces/spec.ts';

/** IANA-registered USB/IP port. */
export const USBIP_DEFAULT_PORT = 3240;
export const DEFAULT_LOOPBACK_HOST = '127.0.0.1';
export const HID_SPEC_SYNTAX = 'loopback:HOST:PORT, uhid, or usbip[:HOST:PORT]';

export class HidSpecError extends KeytunnelError {
  override readonly name = 'HidSpecError';
  readonly code = 'HID_SPEC';
  constructor(message: string) {
    super(message);
  }
}

export interface HidSpecOptions {
  /**
   * Accept any IP address, not only loopback (`keytunnel soft --allow-unauthenticated-remote-access`, for a
   * container whose port is published): whoever reaches the port uses the authenticator, unauthenticated.
   */
  readonly anyAddress?: boolean;
}

/** Whether an IP literal is a loopback address (127.0.0.0/8 or ::1). */
export function isLoopbackAddress(host: string): boolean {
  const version = isIP(host);
  return (version === 4 && host.split('.')[0] === '127') || (version === 6 && (host === '::1' || host === '0:0:0:0:0:0:0:1'));
}

/** Whether a host literal is a loopback address (127.0.0.0/8 or ::1); "localhost" is accepted as 127.0.0.1. */
function loopbackHost(host: string, spec: string, options: HidSpecOptions): string {
  if (host === 'localhost') return DEFAULT_LOOPBACK_HOST;
  const version = isIP(host);
  if (version === 4 && host.split('.')[0] === '127') return host;
  if (version === 6 && (host === '::1' || host === '0:0:0:0:0:0:0:1')) return '::1';
  if (version === 0) {
    throw new HidSpecError(`--hid ${JSON.stringify(spec)}: HOST must be a loopback IP address (e.g. 127.0.0.1 or [::1])`);
  }
  if (options.anyAddress === true) return host;
  throw new HidSpecError(
    `--hid ${JSON.stringify(spec)}: refusing to listen on ${host}: the device has no authentication of its own, ` +
      'so it only listens on a loopback address (127.0.0.1 or [::1])',
  );
}

function parsePort(text: string, spec: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65535) {
    throw new HidSpecError(`--hid ${JSON.stringify(spec)}: PORT must be a number from 0 to 65535, got ${JSON.stringify(text)}`);
  }
  return Number(text);
}

/** Splits "HOST:PORT" or "[V6]:PORT". */
function splitHostPort(rest: string, spec: string, options: HidSpecOptions): { host: string; port: number } {
  const bracketed = /^\[([^\]]+)\]:([^:]*)$/.exec(rest);
  if (bracketed) return { host: loopbackHost(bracketed[1], spec, options), port: parsePort(bracketed[2], spec) };
  const colon = rest.lastIndexOf(':');
  if (colon <= 0 || rest.indexOf(':') !== colon) {
    throw new HidSpecError(`--hid ${JSON.stringify(spec)}: expected HOST:PORT (IPv6 as [::1]:PORT)`);
  }
  return { host: loopbackHost(rest.slice(0, colon), spec, options), port: parsePort(rest.slice(colon + 1), spec) };
}

export function parseHidSpec(text: string, options: HidSpecOptions = {}): HidSpec {
  const spec = text.trim();
  const sep = spec.indexOf(':');
  const kind = (sep < 0 ? spec : spec.slice(0, sep)).toLowerCase();
  const rest = sep < 0 ? undefined : spec.slice(sep + 1);
  switch (kind) {
    case 'loopback':
      if (rest === undefined || rest === '') {
        throw new HidSpecError(`--hid loopback needs an address: loopback:HOST:PORT (e.g. loopback:127.0.0.1:0 for any free port)`);
      }
      return { kind: 'loopback', ...splitHostPort(rest, spec, options) };
    case 'uhid':
      if (rest !== undefined) throw new HidSpecError(`--hid ${JSON.stringify(spec)}: uhid takes no address`);
      return { kind: 'uhid' };
    case 'usbip':
      if (rest === undefined || rest === '') return { kind: 'usbip', host: DEFAULT_LOOPBACK_HOST, port: USBIP_DEFAULT_PORT };
      return { kind: 'usbip', ...splitHostPort(rest, spec, options) };
    default:
      throw new HidSpecError(`--hid ${JSON.stringify(spec.slice(0, 80))}: expected ${HID_SPEC_SYNTAX}`);
  }
}
