/**
 * The agent's `--hardware` source, wired: discovery over node-hid enumeration, each key opened as a
 * HidAuthenticator (node-hid + CTAPHID client), USB hot-plug from the `usb` package with polling as fallback.
 *
 * Typical use in the agent:
 *
 *   const hw = createHardwareDiscovery();
 *   hw.on('added', (key) => void core.add(key, key.getInfo.length > 0 ? key.getInfo : undefined));
 *   hw.on('removed', (key) => core.remove(key.descriptor.id));
 *   hw.on('warning', (err) => log.warn({ err: err.message }, 'FIDO key'));
 *   await hw.start();            // resolves once the keys present now are announced
 *   ...
 *   await hw.close();
 */
import { nodeHidSessionOpener, type SessionOptions } from './ctaphid-session.ts';
import { listFidoDevices, type FidoDeviceInfo } from './device-info.ts';
import type { Clock } from '../../../protocol/clock.ts';
import { HidDiscovery } from './discovery.ts';
import { HidAuthenticator } from './hid-authenticator.ts';
import { type HotplugSource, UsbHotplug } from './hotplug.ts';
import { loadNodeHid, type NodeHidApi } from './node-hid-transport.ts';

export interface HardwareDiscoveryOptions {
  /** node-hid or a fake of it (default: the real module). */
  readonly hid?: NodeHidApi;
  readonly platform?: NodeJS.Platform;
  /** Hot-plug source (default: the `usb` package); null = polling only. */
  readonly hotplug?: HotplugSource | null;
  readonly session?: SessionOptions;
  readonly pollIntervalMs?: number;
  readonly clock?: Clock;
  /** Bound on requests waiting per key (default 32). */
  readonly queueLimit?: number;
  /** Devices to leave alone (e.g. a keytunnel gateway's own virtual devices on the same machine). */
  readonly skip?: (info: FidoDeviceInfo) => boolean;
}

export function createHardwareDiscovery(options: HardwareDiscoveryOptions = {}): HidDiscovery<HidAuthenticator> {
  const hid = options.hid ?? loadNodeHid();
  const openSession = nodeHidSessionOpener({ ...options.session, hid, platform: options.platform });
  return new HidDiscovery<HidAuthenticator>({
    enumerate: async () => {
      const devices = await listFidoDevices(hid);
      return options.skip ? devices.filter((info) => !options.skip!(info)) : devices;
    },
    open: (info) => HidAuthenticator.open(info, { openSession, queueLimit: options.queueLimit }),
    hotplug: options.hotplug === undefined ? new UsbHotplug() : options.hotplug,
    pollIntervalMs: options.pollIntervalMs,
    clock: options.clock,
  });
}
