/**
 * The one module of keytunnel/testing that reaches the device side: the CTAPHID device engine and its loopback
 * face (TCP, 64 raw bytes per HID report). Everything else in testing/ goes through `startLoopbackDevice`.
 */
import type { Authenticator } from '../protocol/authenticator.ts';
import { CtaphidDevice } from '../device/ctaphid-device.ts';
import { startLoopbackFace } from '../device/faces/loopback.ts';

export interface LoopbackDevice {
  readonly address: { readonly host: string; readonly port: number };
  close(): Promise<void>;
}

/** Shows `authenticator` as a CTAPHID device on a loopback face at host:port (port 0 picks a free one). */
export async function startLoopbackDevice(authenticator: Authenticator, host: string, port: number): Promise<LoopbackDevice> {
  const device = new CtaphidDevice(authenticator);
  try {
    const face = await startLoopbackFace(device, { host, port });
    return {
      address: face.address,
      async close() {
        await face.close();
        device.close();
      },
    };
  } catch (err) {
    device.close();
    throw err;
  }
}
