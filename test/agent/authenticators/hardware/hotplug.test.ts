import { describe, expect, it } from 'vitest';
import { type UsbNativeBinding, type UsbNativeEmitter, UsbHotplug } from '../../../../agent/authenticators/hardware/hotplug.ts';

function fakeBinding(options: { getDevicesError?: Error; addDetachError?: Error } = {}) {
  const state = { attach: null as null | ((d: unknown) => void), detach: null as null | ((h: string) => void), removed: [] as string[] };
  class Emitter implements UsbNativeEmitter {
    async addAttach(cb: (d: unknown) => void) {
      state.attach = cb;
    }
    async removeAttach() {
      state.attach = null;
      state.removed.push('attach');
    }
    async addDetach(cb: (h: string) => void) {
      if (options.addDetachError) throw options.addDetachError;
      state.detach = cb;
    }
    async removeDetach() {
      state.detach = null;
      state.removed.push('detach');
    }
  }
  const binding: UsbNativeBinding = {
    nativeGetDevices: async () => {
      if (options.getDevicesError) throw options.getDevicesError;
      return [];
    },
    Emitter,
  };
  return { binding, state };
}

describe('UsbHotplug', () => {
  it('delivers attach and detach as changes, and unregisters on stop', async () => {
    const { binding, state } = fakeBinding();
    const hp = new UsbHotplug({ load: () => binding });
    let changes = 0;
    expect(await hp.start(() => changes++)).toBe(true);
    state.attach?.({});
    state.detach?.('1-2');
    expect(changes).toBe(2);
    await hp.close();
    expect(state.removed).toEqual(['attach', 'detach']);
    expect(state.attach).toBeNull();
  });

  it('answers false (never throws) when the package cannot load', async () => {
    const hp = new UsbHotplug({
      load: () => {
        throw new Error('libusb-1.0.so.0: cannot open shared object file');
      },
    });
    expect(await hp.start(() => undefined)).toBe(false);
    expect(hp.unavailableReason).toContain('libusb');
    await hp.close();
  });

  it('answers false when the USB stack is unusable (no /sys/bus/usb), without registering', async () => {
    const { binding, state } = fakeBinding({ getDevicesError: new Error('getDevices error: /sys/bus/usb/devices/ not found (errno 2)') });
    const hp = new UsbHotplug({ load: () => binding });
    expect(await hp.start(() => undefined)).toBe(false);
    expect(state.attach).toBeNull();
  });

  it('undoes a half registration', async () => {
    const { binding, state } = fakeBinding({ addDetachError: new Error('nope') });
    const hp = new UsbHotplug({ load: () => binding });
    expect(await hp.start(() => undefined)).toBe(false);
    expect(state.attach).toBeNull();
    expect(state.removed).toEqual(['attach']);
  });

  it('loads the real usb package on this machine without crashing the process', async () => {
    const hp = new UsbHotplug();
    const ok = await hp.start(() => undefined);
    expect(typeof ok).toBe('boolean');
    if (!ok) expect(hp.unavailableReason).toBeTruthy();
    await hp.close();
  });
});
