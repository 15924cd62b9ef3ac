import { describe, expect, it } from 'vitest';
import type { AuthenticatorDescriptor } from '../../../../protocol/authenticator.ts';
import type { FidoDeviceInfo } from '../../../../agent/authenticators/hardware/device-info.ts';
import { type DiscoveredKey, HidDiscovery } from '../../../../agent/authenticators/hardware/discovery.ts';
import { HidAccessDeniedError, HidDeviceRemovedError } from '../../../../agent/authenticators/hardware/errors.ts';
import type { HotplugSource } from '../../../../agent/authenticators/hardware/hotplug.ts';
import { FakeClock, settle } from '../../../support/fake-clock.ts';

class FakeKey implements DiscoveredKey {
  readonly descriptor: AuthenticatorDescriptor;
  gone = false;
  removedCalls = 0;
  closeCalls = 0;
  constructor(readonly info: FidoDeviceInfo) {
    this.descriptor = { id: `hid:${info.path}`, label: info.product, transport: 'hid', ctap1: true, wink: false };
  }
  markRemoved(): void {
    this.removedCalls++;
    this.gone = true;
  }
  async close(): Promise<void> {
    this.closeCalls++;
  }
}

function dev(n: number): FidoDeviceInfo {
  return { path: `/dev/hidraw${n}`, vendorId: 0x1050, productId: 0x0407, product: `Key ${n}`, manufacturer: 'Yubico', serialNumber: '' };
}

class FakeHotplug implements HotplugSource {
  onChange: (() => void) | null = null;
  stopped = 0;
  constructor(private readonly available: boolean) {}
  async start(onChange: () => void): Promise<boolean> {
    if (!this.available) return false;
    this.onChange = onChange;
    return true;
  }
  async close(): Promise<void> {
    this.stopped++;
    this.onChange = null;
  }
  fire(): void {
    this.onChange?.();
  }
}

function setup(options: { hotplug?: FakeHotplug | null; failOpen?: (info: FidoDeviceInfo) => Error | null } = {}) {
  const clock = new FakeClock();
  let present: FidoDeviceInfo[] = [];
  let enumerations = 0;
  let enumerateError: Error | null = null;
  const opened: FakeKey[] = [];
  const events: string[] = [];
  const warnings: Error[] = [];
  const discovery = new HidDiscovery<FakeKey>({
    enumerate: async () => {
      enumerations++;
      if (enumerateError) throw enumerateError;
      return present;
    },
    open: async (info) => {
      const err = options.failOpen?.(info) ?? null;
      if (err) throw err;
      const key = new FakeKey(info);
      opened.push(key);
      return key;
    },
    hotplug: options.hotplug ?? null,
    clock,
  });
  discovery.on('added', (k) => events.push(`added ${k.info.path}`));
  discovery.on('removed', (k) => events.push(`removed ${k.info.path}`));
  discovery.on('warning', (e, info) => {
    warnings.push(e);
    events.push(`warning ${info?.path ?? '-'}`);
  });
  return {
    clock,
    discovery,
    opened,
    events,
    warnings,
    setPresent: (d: FidoDeviceInfo[]) => (present = d),
    failEnumeration: (e: Error | null) => (enumerateError = e),
    get enumerations() {
      return enumerations;
    },
  };
}

describe('HidDiscovery (polling)', () => {
  it('announces the keys present at start, then adds and removes as re-enumeration (every 2 s) sees changes', async () => {
    const t = setup();
    t.setPresent([dev(0), dev(1)]);
    await t.discovery.start();
    expect(t.discovery.usingHotplug).toBe(false);
    expect(t.events).toEqual(['added /dev/hidraw0', 'added /dev/hidraw1']);

    t.setPresent([dev(1), dev(2)]);
    await t.clock.advanceAsync(1999);
    expect(t.events).toHaveLength(2); // not yet
    await t.clock.advanceAsync(1);
    expect(t.events.slice(2)).toEqual(['removed /dev/hidraw0', 'added /dev/hidraw2']);
    expect(t.opened[0].removedCalls).toBe(1);
    expect(t.discovery.current.map((k) => k.info.path)).toEqual(['/dev/hidraw1', '/dev/hidraw2']);

    // Unchanged enumeration: no events, no re-open.
    await t.clock.advanceAsync(2000);
    expect(t.events).toHaveLength(4);
    expect(t.opened).toHaveLength(3);
    await t.discovery.close();
  });

  it('a key that died is replaced even if the same path is listed again (re-plugged between scans)', async () => {
    const t = setup();
    t.setPresent([dev(0)]);
    await t.discovery.start();
    t.opened[0].gone = true;
    await t.clock.advanceAsync(2000);
    expect(t.events).toEqual(['added /dev/hidraw0', 'removed /dev/hidraw0', 'added /dev/hidraw0']);
    expect(t.opened).toHaveLength(2);
    expect(t.discovery.current).toEqual([t.opened[1]]);
    await t.discovery.close();
  });

  it('warns once per path when a key cannot be opened, retries, and adds it once it opens', async () => {
    let deny = true;
    const t = setup({ failOpen: () => (deny ? new HidAccessDeniedError('\\\\?\\hid#x', 'win32') : null) });
    t.setPresent([dev(0)]);
    await t.discovery.start();
    await t.clock.advanceAsync(2000);
    await t.clock.advanceAsync(2000);
    expect(t.events).toEqual(['warning /dev/hidraw0']);
    expect(t.warnings[0]).toBeInstanceOf(HidAccessDeniedError);
    expect(t.warnings[0].message).toContain('Administrator');
    deny = false;
    await t.clock.advanceAsync(2000);
    expect(t.events).toEqual(['warning /dev/hidraw0', 'added /dev/hidraw0']);
    await t.discovery.close();
  });

  it('a key that vanished between enumeration and open is skipped silently', async () => {
    const t = setup({ failOpen: (i) => (i.path === '/dev/hidraw7' ? new HidDeviceRemovedError(i.path) : null) });
    t.setPresent([dev(7), dev(8)]);
    await t.discovery.start();
    expect(t.events).toEqual(['added /dev/hidraw8']);
    await t.discovery.close();
  });

  it('a failed enumeration is a warning, not a crash, and the next poll recovers', async () => {
    const t = setup();
    t.failEnumeration(new Error('hidapi exploded'));
    await t.discovery.start();
    expect(t.events).toEqual(['warning -']);
    t.failEnumeration(null);
    t.setPresent([dev(3)]);
    await t.clock.advanceAsync(2000);
    expect(t.events).toEqual(['warning -', 'added /dev/hidraw3']);
    await t.discovery.close();
  });

  it('stop closes every key, cancels timers, and emits nothing more', async () => {
    const t = setup();
    t.setPresent([dev(0), dev(1)]);
    await t.discovery.start();
    await t.discovery.close();
    expect(t.opened.map((k) => k.closeCalls)).toEqual([1, 1]);
    expect(t.clock.pending).toBe(0);
    const before = t.enumerations;
    t.setPresent([]);
    await t.clock.advanceAsync(10_000);
    expect(t.enumerations).toBe(before);
    expect(t.events).toEqual(['added /dev/hidraw0', 'added /dev/hidraw1']);
    expect(t.discovery.current).toEqual([]);
  });
});

describe('HidDiscovery (hot-plug)', () => {
  it('debounces a burst of hot-plug events into one scan plus one settle scan, and polls only slowly', async () => {
    const hotplug = new FakeHotplug(true);
    const t = setup({ hotplug });
    await t.discovery.start();
    expect(t.discovery.usingHotplug).toBe(true);
    expect(t.enumerations).toBe(1);

    // A plug-in: several USB events within a few ms; the hidraw node is listed only from the settle scan on.
    t.setPresent([]);
    hotplug.fire();
    await t.clock.advanceAsync(100);
    hotplug.fire();
    hotplug.fire();
    await t.clock.advanceAsync(249);
    expect(t.enumerations).toBe(1);
    await t.clock.advanceAsync(1);
    expect(t.enumerations).toBe(2);
    t.setPresent([dev(5)]);
    await t.clock.advanceAsync(1000);
    expect(t.enumerations).toBe(3);
    expect(t.events).toEqual(['added /dev/hidraw5']);

    // Unplug.
    t.setPresent([]);
    hotplug.fire();
    await t.clock.advanceAsync(250);
    expect(t.events).toEqual(['added /dev/hidraw5', 'removed /dev/hidraw5']);

    // With hot-plug working, no 2-second polling: only the 5-second safety net (armed at start, t = 0).
    await t.clock.advanceAsync(1000); // settle scan, t = 2600
    const n = t.enumerations;
    await t.clock.advanceAsync(2399); // t = 4999
    expect(t.enumerations).toBe(n);
    await t.clock.advanceAsync(1); // t = 5000
    expect(t.enumerations).toBe(n + 1);
    await t.clock.advanceAsync(4999);
    expect(t.enumerations).toBe(n + 1);
    await t.clock.advanceAsync(1); // t = 10000
    expect(t.enumerations).toBe(n + 2);
    await t.discovery.close();
    expect(hotplug.stopped).toBe(1);
  });

  it('falls back to 2-second polling when hot-plug is unavailable', async () => {
    const hotplug = new FakeHotplug(false);
    const t = setup({ hotplug });
    await t.discovery.start();
    expect(t.discovery.usingHotplug).toBe(false);
    t.setPresent([dev(1)]);
    await t.clock.advanceAsync(2000);
    expect(t.events).toEqual(['added /dev/hidraw1']);
    await t.discovery.close();
    expect(hotplug.stopped).toBe(0);
  });

  it('a hot-plug source that rejects on start means polling, not a failed start', async () => {
    const t = setup({
      hotplug: Object.assign(new FakeHotplug(true), { start: async () => Promise.reject(new Error('boom')) }),
    });
    await t.discovery.start();
    expect(t.discovery.usingHotplug).toBe(false);
    t.setPresent([dev(2)]);
    await t.clock.advanceAsync(2000);
    expect(t.events).toEqual(['added /dev/hidraw2']);
    await t.discovery.close();
  });

  it('scans never overlap: a change during a slow open triggers exactly one more scan', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const clock = new FakeClock();
    let present = [dev(0)];
    let inFlight = 0;
    let maxInFlight = 0;
    let enumerations = 0;
    const discovery = new HidDiscovery<FakeKey>({
      enumerate: async () => {
        enumerations++;
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        inFlight--;
        return present;
      },
      open: async (info) => {
        if (info.path === '/dev/hidraw0') await gate;
        return new FakeKey(info);
      },
      clock,
    });
    const added: string[] = [];
    discovery.on('added', (k) => added.push(k.info.path));
    const started = discovery.start();
    await settle();
    present = [dev(0), dev(1)];
    const r1 = discovery.rescan();
    const r2 = discovery.rescan();
    expect(enumerations).toBe(1);
    release();
    await Promise.all([started, r1, r2]);
    expect(enumerations).toBe(2);
    expect(maxInFlight).toBe(1);
    expect(added).toEqual(['/dev/hidraw0', '/dev/hidraw1']);
    await discovery.close();
  });
});
