/**
 * The agent's real node-hid path with node-hid itself faked at its API (HIDAsync.open / write 65 bytes /
 * read(timeout) / close / devicesAsync), backed by the CTAPHID device engine: discovery -> HidAuthenticator ->
 * CTAPHID client -> NodeHidTransport -> "node-hid" -> engine -> scripted authenticator. Proves report-id
 * handling, enumeration filtering, and that unplugging fails pending and queued requests fast.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Authenticator, AuthenticatorDescriptor, RequestContext, RequestKind } from '../../../../protocol/authenticator.ts';
import { CTAP2_GET_INFO } from '../../../../protocol/ctap2.ts';
import { CtaphidDevice } from '../../../../device/ctaphid-device.ts';
import type { HostLink } from '../../../../device/host-link.ts';
import { listFidoDevices, type FidoDeviceInfo } from '../../../../agent/authenticators/hardware/device-info.ts';
import { HidDiscovery } from '../../../../agent/authenticators/hardware/discovery.ts';
import { HidAccessDeniedError, HidDeviceRemovedError } from '../../../../agent/authenticators/hardware/errors.ts';
import { HidAuthenticator } from '../../../../agent/authenticators/hardware/hid-authenticator.ts';
import { nodeHidSessionOpener } from '../../../../agent/authenticators/hardware/ctaphid-session.ts';
import type { NodeHidApi, NodeHidDevice, NodeHidDeviceInfo } from '../../../../agent/authenticators/hardware/node-hid-transport.ts';
import { FakeClock } from '../../../support/fake-clock.ts';
import { createHardwareDiscovery } from '../../../../agent/authenticators/hardware/hardware.ts';

const GET_INFO = Uint8Array.of(0x00, 0xa1, 0x01, 0x81, 0x68, ...Buffer.from('FIDO_2_1'));

/** Answers getInfo; anything else hangs until aborted (a key waiting for a touch that never comes). */
class HangingAuthenticator implements Authenticator {
  readonly descriptor: AuthenticatorDescriptor = { id: 'x', label: 'x', transport: 'soft', ctap1: false, wink: false };
  hanging = 0;
  async request(_kind: RequestKind, payload: Uint8Array, ctx: RequestContext): Promise<Uint8Array> {
    if (payload[0] === CTAP2_GET_INFO) return GET_INFO;
    this.hanging++;
    return new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true }));
  }
}

const DISCONNECTED = 'could not read from HID device: hid_read_timeout: unexpected poll error (device disconnected)';

/** node-hid, faked: one FIDO device per path, each backed by its own CTAPHID engine. */
class FakeNodeHid implements NodeHidApi {
  readonly records: NodeHidDeviceInfo[] = [];
  readonly engines = new Map<string, CtaphidDevice>();
  readonly writes: Buffer[] = [];
  readonly openDevices = new Set<FakeHidDevice>();
  deny = new Set<string>();

  plug(path: string, auth: Authenticator, serial = ''): void {
    this.engines.set(path, new CtaphidDevice(auth));
    this.records.push({ vendorId: 0x1050, productId: 0x0407, path, serialNumber: serial, product: 'Fake Key', manufacturer: 'Test', release: 1, interface: 0, usagePage: 0xf1d0, usage: 1 });
    // A keyboard beside it must never be picked up.
    this.records.push({ vendorId: 0x046d, productId: 0xc31c, path: `${path}-kbd`, product: 'Keyboard', release: 1, interface: 0, usagePage: 1, usage: 6 });
  }

  unplug(path: string): void {
    this.engines.get(path)?.close();
    this.engines.delete(path);
    for (let i = this.records.length - 1; i >= 0; i--) if (this.records[i].path?.startsWith(path)) this.records.splice(i, 1);
    for (const d of this.openDevices) if (d.path === path) d.unplug();
  }

  async devicesAsync(): Promise<NodeHidDeviceInfo[]> {
    return this.records.map((r) => ({ ...r }));
  }

  readonly HIDAsync = {
    open: async (path: string): Promise<NodeHidDevice> => {
      if (this.deny.has(path)) throw new TypeError(`cannot open device with path ${path}: Failed to open a device with path '${path}': Permission denied`);
      const engine = this.engines.get(path);
      if (!engine) throw new TypeError(`cannot open device with path ${path}: Failed to open a device with path '${path}': No such file or directory`);
      const dev = new FakeHidDevice(path, engine, this);
      this.openDevices.add(dev);
      return dev;
    },
  };
}

class FakeHidDevice implements NodeHidDevice {
  private readonly input: Buffer[] = [];
  private waiter: ((b: Buffer | undefined) => void) | null = null;
  private readonly link: HostLink;
  private gone = false;
  private failWaiter: ((e: Error) => void) | null = null;

  constructor(readonly path: string, engine: CtaphidDevice, private readonly hid: FakeNodeHid) {
    this.link = engine.attach((report) => {
      const buf = Buffer.from(report);
      if (this.waiter) {
        const w = this.waiter;
        this.waiter = null;
        this.failWaiter = null;
        w(buf);
      } else this.input.push(buf);
    });
  }

  async write(values: number[] | Buffer): Promise<number> {
    if (this.gone) throw new TypeError('Cannot write to hid device: No such device');
    const buf = Buffer.from(values);
    this.hid.writes.push(buf);
    // hidapi semantics: first byte is the report id (0 = none), stripped before it reaches the device.
    if (buf[0] !== 0 || buf.length !== 65) throw new TypeError('bad report framing');
    this.link.receive(new Uint8Array(buf.subarray(1)));
    return buf.length;
  }

  read(timeOut?: number): Promise<Buffer | undefined> {
    if (this.gone) return Promise.reject(new TypeError(DISCONNECTED));
    const next = this.input.shift();
    if (next) return Promise.resolve(next);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        this.failWaiter = null;
        resolve(Buffer.alloc(0)); // node-hid: empty buffer on timeout
      }, timeOut ?? 0);
      this.waiter = (b) => {
        clearTimeout(timer);
        resolve(b);
      };
      this.failWaiter = (e) => {
        clearTimeout(timer);
        reject(e);
      };
    });
  }

  unplug(): void {
    this.gone = true;
    this.link.close();
    const f = this.failWaiter;
    this.waiter = null;
    this.failWaiter = null;
    f?.(new TypeError(DISCONNECTED));
  }

  async close(): Promise<void> {
    this.hid.openDevices.delete(this);
    this.link.close();
  }
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('real node-hid path (node-hid faked at its API, CTAPHID engine behind it)', () => {
  it('opens a key by path, writes 65-byte reports with report id 0, and gets getInfo', async () => {
    const hid = new FakeNodeHid();
    hid.plug('/dev/hidraw0', new HangingAuthenticator(), 'SN1');
    const [info] = await listFidoDevices(hid);
    expect(info.path).toBe('/dev/hidraw0');
    const key = await HidAuthenticator.open(info, { openSession: nodeHidSessionOpener({ hid, platform: 'linux' }) });
    cleanups.push(() => key.close());
    expect([...key.getInfo]).toEqual([...GET_INFO]);
    expect(key.descriptor).toMatchObject({ id: 'hid:1050:0407:sn:SN1', ctap1: false, wink: false });
    expect(hid.writes.length).toBeGreaterThanOrEqual(2); // INIT + getInfo
    expect(hid.writes.every((w) => w.length === 65 && w[0] === 0)).toBe(true);
  });

  it('unplugging fails the request waiting for a touch and the queued one fast, via the transport error', async () => {
    const hid = new FakeNodeHid();
    const auth = new HangingAuthenticator();
    hid.plug('/dev/hidraw1', auth);
    const [info] = await listFidoDevices(hid);
    const key = await HidAuthenticator.open(info, { openSession: nodeHidSessionOpener({ hid, platform: 'linux' }) });
    cleanups.push(() => key.close());
    const never = new AbortController().signal;
    const first = key.request('cbor', Uint8Array.of(0x01, 0xa0), { signal: never, onStatus: () => undefined });
    const second = key.request('cbor', Uint8Array.of(0x02, 0xa0), { signal: never, onStatus: () => undefined });
    first.catch(() => undefined);
    second.catch(() => undefined);
    while (auth.hanging === 0) await new Promise((r) => setTimeout(r, 5));
    const t0 = Date.now();
    hid.unplug('/dev/hidraw1');
    await expect(first).rejects.toBeInstanceOf(HidDeviceRemovedError);
    await expect(second).rejects.toBeInstanceOf(HidDeviceRemovedError);
    expect(Date.now() - t0).toBeLessThan(1000); // not the 120 s transaction timeout
    expect(key.gone).toBe(true);
  });

  it('discovery finds the key, reports a denied one with the fix, and removes an unplugged one', async () => {
    const hid = new FakeNodeHid();
    hid.plug('/dev/hidraw2', new HangingAuthenticator(), 'A');
    hid.plug('/dev/hidraw3', new HangingAuthenticator(), 'B');
    hid.deny.add('/dev/hidraw3');
    const clock = new FakeClock();
    const discovery = new HidDiscovery<HidAuthenticator>({
      enumerate: () => listFidoDevices(hid),
      open: (i: FidoDeviceInfo) => HidAuthenticator.open(i, { openSession: nodeHidSessionOpener({ hid, platform: 'linux' }) }),
      clock,
    });
    cleanups.push(() => discovery.close());
    const added: string[] = [];
    const removed: string[] = [];
    const warnings: Error[] = [];
    discovery.on('added', (k) => added.push(k.descriptor.label));
    discovery.on('removed', (k) => removed.push(k.descriptor.label));
    discovery.on('warning', (e) => warnings.push(e));
    await discovery.start();
    expect(added).toEqual(['Fake Key (serial A)']);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toBeInstanceOf(HidAccessDeniedError);
    expect(warnings[0].message).toContain('uaccess');

    hid.unplug('/dev/hidraw2');
    await clock.advanceAsync(2000);
    await discovery.rescan();
    expect(removed).toEqual(['Fake Key (serial A)']);
    expect(discovery.current).toEqual([]);
  });

  it('createHardwareDiscovery wires node-hid enumeration, HidAuthenticator and polling together', async () => {
    const hid = new FakeNodeHid();
    hid.plug('/dev/hidraw5', new HangingAuthenticator(), 'W');
    const clock = new FakeClock();
    const hw = createHardwareDiscovery({ hid, platform: 'linux', hotplug: null, clock });
    cleanups.push(() => hw.close());
    const added: HidAuthenticator[] = [];
    hw.on('added', (k) => added.push(k));
    await hw.start();
    expect(hw.usingHotplug).toBe(false);
    expect(added.map((k) => k.descriptor.id)).toEqual(['hid:1050:0407:sn:W']);
    expect([...added[0].getInfo]).toEqual([...GET_INFO]);
    hid.plug('/dev/hidraw6', new HangingAuthenticator(), 'X');
    await clock.advanceAsync(2000);
    await hw.rescan();
    expect(added.map((k) => k.descriptor.id)).toEqual(['hid:1050:0407:sn:W', 'hid:1050:0407:sn:X']);
  });
});
