/**
 * Discovery of FIDO keys: enumerate (node-hid, usage page 0xF1D0), open each new key as an authenticator,
 * notice keys that went away, and do it again whenever something changes.
 *
 * "Something changes" is a USB hot-plug event where the `usb` package can deliver them (hotplug.ts), debounced
 * (a plug-in fires several events, and the hidraw node appears a little after the USB device — so a second
 * "settle" scan follows); where hot-plug is unavailable, periodic re-enumeration (every 2 s by default). A slow
 * safety poll (5 s) runs even with hot-plug, for missed events and non-USB HID keys. Scans never overlap; a change during a scan triggers one more scan.
 *
 * Events (typed below): 'added' (key, info) once a new key is open and ready; 'removed' (key, info) when its
 * path disappears from the enumeration or the key itself died (its pending and queued requests have already
 * been failed with HidDeviceRemovedError); 'warning' (error, info?) for a key that could not be opened
 * (reported once per path until it goes away, e.g. the Windows "run elevated" hint) or a failed enumeration.
 * Everything time-related goes through the injected clock (protocol/clock.ts), so tests drive it without sleeping.
 */
import { EventEmitter } from 'node:events';
import type { AuthenticatorDescriptor } from '../../../protocol/authenticator.ts';
import { systemClock, type Clock } from '../../../protocol/clock.ts';
import type { FidoDeviceInfo } from './device-info.ts';
import { MAX_FIDO_DEVICES } from './device-info.ts';
import { isDeviceRemovedError } from './errors.ts';
import type { HotplugSource } from './hotplug.ts';

/** What discovery needs of an opened key (HidAuthenticator implements it). */
export interface DiscoveredKey {
  readonly descriptor: AuthenticatorDescriptor;
  /** True once the key is known dead (removed, or its transport failed for good). */
  readonly gone: boolean;
  /** Fail pending and queued requests fast with HidDeviceRemovedError and release the device. */
  markRemoved(): void;
  /** Release the device (shutdown). */
  close(): Promise<void>;
}

export const DEFAULT_POLL_INTERVAL_MS = 2000;
export const DEFAULT_SAFETY_POLL_MS = 5_000;
export const DEFAULT_DEBOUNCE_MS = 250;
export const DEFAULT_SETTLE_MS = 1000;

export interface HidDiscoveryOptions<K extends DiscoveredKey> {
  /** List the FIDO keys present now (e.g. `() => listFidoDevices(loadNodeHid())`). */
  readonly enumerate: () => Promise<FidoDeviceInfo[]>;
  /** Open one key (e.g. `HidAuthenticator.open`). */
  readonly open: (info: FidoDeviceInfo) => Promise<K>;
  /** Hot-plug source; null = poll only. */
  readonly hotplug?: HotplugSource | null;
  /** Timers (default the system clock; tests inject the fake one). */
  readonly clock?: Clock;
  /** Re-enumeration period without hot-plug (default 2000 ms). */
  readonly pollIntervalMs?: number;
  /**
   * Re-enumeration period with working hot-plug (default 5 s): a safety net for missed events and for FIDO HID
   * devices that are not USB (Bluetooth, uhid), which USB hot-plug never reports.
   */
  readonly safetyPollMs?: number;
  /** Quiet time after the last hot-plug event before scanning (default 250 ms). */
  readonly debounceMs?: number;
  /** Delay of the follow-up scan after a hot-plug scan, for nodes that appear late (default 1000 ms). */
  readonly settleMs?: number;
}

export interface HidDiscoveryEvents<K> {
  added: [key: K, info: FidoDeviceInfo];
  removed: [key: K, info: FidoDeviceInfo];
  warning: [error: Error, info: FidoDeviceInfo | undefined];
}

interface Entry<K> {
  readonly info: FidoDeviceInfo;
  readonly key: K;
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

export class HidDiscovery<K extends DiscoveredKey> extends EventEmitter<HidDiscoveryEvents<K>> {
  private readonly enumerate: () => Promise<FidoDeviceInfo[]>;
  private readonly openKey: (info: FidoDeviceInfo) => Promise<K>;
  private readonly hotplug: HotplugSource | null;
  private readonly clock: Clock;
  private readonly pollIntervalMs: number;
  private readonly safetyPollMs: number;
  private readonly debounceMs: number;
  private readonly settleMs: number;

  private readonly keys = new Map<string, Entry<K>>();
  /** Paths whose open failed, so the warning is given once until the path disappears. */
  private readonly warned = new Set<string>();
  private running = false;
  private hotplugActive = false;
  private pollTimer: unknown = null;
  private debounceTimer: unknown = null;
  private settleTimer: unknown = null;
  private scanning: Promise<void> | null = null;
  private rescanRequested = false;

  constructor(options: HidDiscoveryOptions<K>) {
    super();
    this.enumerate = options.enumerate;
    this.openKey = options.open;
    this.hotplug = options.hotplug ?? null;
    this.clock = options.clock ?? systemClock;
    this.pollIntervalMs = options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS;
    this.safetyPollMs = options.safetyPollMs ?? DEFAULT_SAFETY_POLL_MS;
    this.debounceMs = options.debounceMs ?? DEFAULT_DEBOUNCE_MS;
    this.settleMs = options.settleMs ?? DEFAULT_SETTLE_MS;
  }

  /** The keys currently open, in discovery order. */
  get current(): K[] {
    return [...this.keys.values()].map((e) => e.key);
  }

  /** Whether hot-plug events drive discovery (false = polling). */
  get usingHotplug(): boolean {
    return this.hotplugActive;
  }

  /** First scan (resolves once the keys present now are open and announced), then keep watching. */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    if (this.hotplug) {
      // A HotplugSource should answer false rather than reject; an injected one that rejects means "no hot-plug".
      this.hotplugActive = await this.hotplug.start(() => this.onHotplug()).catch(() => false);
    }
    if (!this.running) return;
    await this.rescan();
    this.schedulePoll();
  }

  /** Stop watching and close every key (no 'removed' events: the owner is shutting down). */
  async close(): Promise<void> {
    this.running = false;
    for (const t of [this.pollTimer, this.debounceTimer, this.settleTimer]) if (t !== null) this.clock.clearTimeout(t);
    this.pollTimer = this.debounceTimer = this.settleTimer = null;
    if (this.hotplugActive && this.hotplug) await this.hotplug.close();
    this.hotplugActive = false;
    if (this.scanning) await this.scanning;
    const entries = [...this.keys.values()];
    this.keys.clear();
    this.warned.clear();
    await Promise.all(entries.map((e) => e.key.close().catch(() => undefined)));
  }

  /** Enumerate now (coalesced with a scan in progress: resolves after a scan that started after this call). */
  rescan(): Promise<void> {
    if (this.scanning) {
      this.rescanRequested = true;
      return this.scanning;
    }
    this.scanning = (async () => {
      try {
        do {
          this.rescanRequested = false;
          await this.scanOnce();
        } while (this.rescanRequested && this.running);
      } finally {
        this.scanning = null;
      }
    })();
    return this.scanning;
  }

  private onHotplug(): void {
    if (!this.running) return;
    if (this.debounceTimer !== null) this.clock.clearTimeout(this.debounceTimer);
    this.debounceTimer = this.clock.setTimeout(() => {
      this.debounceTimer = null;
      void this.rescan();
      if (this.settleTimer !== null) this.clock.clearTimeout(this.settleTimer);
      this.settleTimer = this.clock.setTimeout(() => {
        this.settleTimer = null;
        if (this.running) void this.rescan();
      }, this.settleMs);
    }, this.debounceMs);
  }

  private schedulePoll(): void {
    if (!this.running) return;
    const period = this.hotplugActive ? this.safetyPollMs : this.pollIntervalMs;
    this.pollTimer = this.clock.setTimeout(() => {
      this.pollTimer = null;
      void this.rescan().finally(() => this.schedulePoll());
    }, period);
  }

  private async scanOnce(): Promise<void> {
    let present: FidoDeviceInfo[];
    try {
      present = (await this.enumerate()).slice(0, MAX_FIDO_DEVICES);
    } catch (err) {
      this.emit('warning', asError(err), undefined);
      return;
    }
    if (!this.running) return;
    const presentPaths = new Set(present.map((d) => d.path));

    // Gone: path no longer listed, or the key died (e.g. re-plugged into the same hidraw number meanwhile).
    for (const [path, entry] of [...this.keys]) {
      if (presentPaths.has(path) && !entry.key.gone) continue;
      this.keys.delete(path);
      entry.key.markRemoved();
      this.emit('removed', entry.key, entry.info);
    }
    for (const path of [...this.warned]) if (!presentPaths.has(path)) this.warned.delete(path);

    // New: open concurrently, announce in enumeration order.
    const fresh = present.filter((d) => !this.keys.has(d.path));
    const opened = await Promise.allSettled(fresh.map((info) => this.openKey(info)));
    for (let i = 0; i < fresh.length; i++) {
      const info = fresh[i];
      const result = opened[i];
      if (result.status === 'rejected') {
        // A key unplugged between enumeration and open is not worth a warning: the next scan settles it.
        if (isDeviceRemovedError(result.reason)) continue;
        if (!this.warned.has(info.path)) {
          this.warned.add(info.path);
          this.emit('warning', asError(result.reason), info);
        }
        continue;
      }
      const key = result.value;
      if (!this.running) {
        await key.close().catch(() => undefined);
        continue;
      }
      this.warned.delete(info.path);
      this.keys.set(info.path, { info, key });
      this.emit('added', key, info);
    }
  }
}
