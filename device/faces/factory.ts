/**
 * The one face factory: starts the face a `--hid` spec names for one virtual device. `keytunnel soft` starts
 * one device (slot 0); `keytunnel gateway` one per exported authenticator, each in the lowest free slot.
 *
 * - loopback:HOST:PORT — the device in slot N listens on PORT + N (PORT 0: every device gets a free port);
 * - uhid — one /dev/uhid device, named after the authenticator's label;
 * - usbip:HOST:PORT — one USB/IP server on PORT + N, bus id 1-1.
 * A uhid or usbip device carries the serial number `serial(slot)` when the caller gives one (the gateway marks
 * its devices so an agent on the same machine does not re-export them); none otherwise.
 *
 * Every handle describes where the host finds its device, in one format for both commands:
 * `loopback:127.0.0.1:8900`, `uhid "<label>"`, `usbip:127.0.0.1:3240 busid 1-1`.
 */
import type { AuthenticatorDescriptor } from '../../protocol/authenticator.ts';
import type { ReportDevice } from '../host-link.ts';
import type { Logger } from '../../protocol/logger.ts';
import { startLoopbackFace } from './loopback.ts';
import { formatHidSpec, type HidSpec } from './spec.ts';
import { startUhidFace } from './uhid/uhid.ts';
import { startUsbipFace } from './usbip/usbip.ts';

/** A face serving one virtual device (loopback server, uhid device, usbip server). */
export interface FaceHandle {
  /** Where the host finds it, for logs (e.g. "loopback:127.0.0.1:8900", `uhid "name"`, "usbip:127.0.0.1:3240 busid 1-1"). */
  readonly description: string;
  /** The bound address of a socket face (loopback, usbip). */
  readonly address?: { readonly host: string; readonly port: number };
  close(): Promise<void> | void;
}

export interface FaceRequest {
  /** The authenticator the device serves: its label names the uhid device and the USB product. */
  readonly descriptor: AuthenticatorDescriptor;
  /** Device slot (0, 1, ...): a socket face listens on PORT + slot. */
  readonly slot: number;
}

export type FaceFactory = (device: ReportDevice, request: FaceRequest) => Promise<FaceHandle>;

export interface FaceFactoryOptions {
  /** The serial number of the device in a slot (uhid HID_UNIQ, USB iSerialNumber); default none. */
  readonly serial?: (slot: number) => string;
}

/** The port of the device in `slot`: PORT + slot, or 0 (any free port) when PORT is 0. */
function portFor(base: number, slot: number): number {
  if (base === 0) return 0;
  const port = base + slot;
  if (port > 65535) throw new RangeError(`no port left for device slot ${slot} (base port ${base})`);
  return port;
}

/** The face factory for a `--hid` spec. */
export function faceFactoryFor(spec: HidSpec, log: Logger, options: FaceFactoryOptions = {}): FaceFactory {
  const serial = options.serial;
  switch (spec.kind) {
    case 'loopback':
      return async (device, { slot }) => {
        const face = await startLoopbackFace(device, { host: spec.host, port: portFor(spec.port, slot) });
        return {
          description: formatHidSpec({ kind: 'loopback', ...face.address }),
          address: face.address,
          close: () => face.close(),
        };
      };
    case 'uhid':
      return async (device, { descriptor, slot }) => {
        const face = startUhidFace(device, { name: descriptor.label, uniq: serial?.(slot), log });
        return { description: `uhid "${face.name}"`, close: () => face.close() };
      };
    case 'usbip':
      return async (device, { descriptor, slot }) => {
        const face = await startUsbipFace(device, {
          host: spec.host,
          port: portFor(spec.port, slot),
          name: descriptor.label,
          serial: serial?.(slot),
          log,
        });
        return {
          description: `${formatHidSpec({ kind: 'usbip', ...face.address })} busid ${face.busid}`,
          address: face.address,
          close: () => face.close(),
        };
      };
  }
}
