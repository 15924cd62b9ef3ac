/**
 * USB hot-plug notifications for discovery: "something was plugged in or out, enumerate again".
 *
 * Uses the `usb` package (3.x, napi-rs) through its native `Emitter` (addAttach/addDetach) rather than its
 * WebUSB `usb.addEventListener('connect')` wrapper, because the wrapper turns native failures into uncaught
 * exceptions (it rethrows them from a timer) — fatal for the agent on a machine without usable USB (seen
 * here: "getDevices error: /sys/bus/usb/devices/ not found"). Loading the package, probing the USB stack and
 * registering the callbacks are all caught; any failure answers `false` so discovery falls back to polling.
 */
import { createRequire } from 'node:module';

/** A source of "the set of USB devices changed" events. */
export interface HotplugSource {
  /** Start delivering changes to `onChange`; resolves false (never rejects) when hot-plug is unavailable. */
  start(onChange: () => void): Promise<boolean>;
  /** Stop delivering changes; never rejects. */
  close(): Promise<void>;
}

/** The slice of the `usb` package's native binding used here. */
export interface UsbNativeBinding {
  nativeGetDevices(): Promise<unknown[]>;
  Emitter: new () => UsbNativeEmitter;
}

export interface UsbNativeEmitter {
  addAttach(callback: (device: unknown) => void): Promise<void>;
  removeAttach(): Promise<void>;
  addDetach(callback: (handle: string) => void): Promise<void>;
  removeDetach(): Promise<void>;
}

function loadUsbNative(): UsbNativeBinding {
  const require = createRequire(import.meta.url);
  return require('usb/index.js') as UsbNativeBinding;
}

/** Hot-plug through the `usb` package; `load` is injectable for tests. */
export class UsbHotplug implements HotplugSource {
  private readonly load: () => UsbNativeBinding;
  private emitter: UsbNativeEmitter | null = null;
  /** Why hot-plug is unavailable, after a `start` that answered false. */
  unavailableReason: string | null = null;

  constructor(options: { load?: () => UsbNativeBinding } = {}) {
    this.load = options.load ?? loadUsbNative;
  }

  async start(onChange: () => void): Promise<boolean> {
    if (this.emitter) return true;
    let emitter: UsbNativeEmitter | null = null;
    try {
      const native = this.load();
      // Probe the USB stack first: the emitter registers happily even where it can never fire.
      await native.nativeGetDevices();
      emitter = new native.Emitter();
      await emitter.addAttach(() => onChange());
      await emitter.addDetach(() => onChange());
    } catch (err) {
      this.unavailableReason = err instanceof Error ? err.message : String(err);
      if (emitter) await emitter.removeAttach().catch(() => undefined);
      return false;
    }
    this.emitter = emitter;
    return true;
  }

  async close(): Promise<void> {
    const emitter = this.emitter;
    this.emitter = null;
    if (!emitter) return;
    await emitter.removeAttach().catch(() => undefined);
    await emitter.removeDetach().catch(() => undefined);
  }
}
