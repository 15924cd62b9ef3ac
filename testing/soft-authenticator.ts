/**
 * `startSoftAuthenticator()`: the keytunnel soft authenticator (a complete CTAP 2.1 + U2F authenticator) as a
 * CTAPHID device on a loopback face in this process, for tests. State is in memory unless a `stateDir` is given
 * (then an encrypted store there, kept across runs); user presence is approved unless a `presence` callback
 * decides (so a test can play a user who refuses or never answers); an optional PIN is set at start.
 */
import { isIP } from 'node:net';
import type { StateStore } from '../agent/authenticators/soft/ports.ts';
import type { Presence, PresenceOutcome, PresenceRequest } from '../agent/presence/port.ts';
import { MemoryStateStore } from '../agent/authenticators/soft/memory-store.ts';
import { SoftAuthenticator } from '../agent/authenticators/soft/soft-authenticator.ts';
import { FileStateStore, profileStorePath } from '../agent/authenticators/soft/store-file.ts';
import { getInfo, type CtapCommandPort } from './ctap.ts';
import { setPin } from './pin-uv.ts';
import { startLoopbackDevice } from './soft-device.ts';
import type { DeviceAddress } from './types.ts';

export type { PresenceRequest } from '../agent/presence/port.ts';

/** What the simulated user does: true / 'approved', false / 'denied', or 'timeout' (no answer). */
export type PresenceDecision = boolean | PresenceOutcome;
export type PresenceCallback = (request: PresenceRequest) => PresenceDecision | Promise<PresenceDecision>;

/** The store passphrase used with `stateDir` when none is given. Public: test state only. */
export const TESTING_PASSPHRASE = 'keytunnel-testing';

export interface StartSoftAuthenticatorOptions {
  /** Keep the credentials in <stateDir>/soft-<profile>.kts (encrypted) instead of memory. */
  readonly stateDir?: string;
  readonly profile?: string;
  /** Passphrase of the store in stateDir (default TESTING_PASSPHRASE; at least 8 characters). */
  readonly passphrase?: string;
  /** Decides user presence (default: approve everything). */
  readonly presence?: PresenceCallback;
  /** A PIN to set at start (a fresh authenticator only; at least 4 code points). */
  readonly pin?: string;
  /** Loopback address to listen on (default 127.0.0.1) and port (default 0: a free one). */
  readonly host?: string;
  readonly port?: number;
  /** Attestation when the platform states no preference: "packed" self attestation (default) or "none". */
  readonly attestation?: 'packed' | 'none';
  readonly maxResidentCredentials?: number;
}

export interface SoftAuthenticatorHandle {
  /** Where the device listens: pass it to `new WebAuthnTestClient({ device, origin })`. */
  readonly device: DeviceAddress;
  /** The authenticator itself (CTAP requests without the HID layer). */
  readonly authenticator: SoftAuthenticator;
  /** Stops listening, closes every connection and releases the store. Idempotent. */
  close(): Promise<void>;
}

class CallbackPresence implements Presence {
  constructor(private readonly decide: PresenceCallback) {}

  async confirm(request: PresenceRequest, signal: AbortSignal): Promise<PresenceOutcome> {
    if (signal.aborted) return 'cancelled';
    const decision = await this.decide(request);
    if (decision === true) return 'approved';
    if (decision === false) return 'denied';
    return decision;
  }
}

function loopbackOnly(host: string): string {
  const v = isIP(host);
  if (host === 'localhost') return '127.0.0.1';
  if ((v === 4 && host.startsWith('127.')) || (v === 6 && host === '::1')) return host;
  throw new RangeError(`startSoftAuthenticator: host must be a loopback address, got ${JSON.stringify(host)} (the device has no authentication)`);
}

export async function startSoftAuthenticator(options: StartSoftAuthenticatorOptions = {}): Promise<SoftAuthenticatorHandle> {
  const host = loopbackOnly(options.host ?? '127.0.0.1');
  let store: StateStore;
  let fileStore: FileStateStore | undefined;
  if (options.stateDir !== undefined) {
    fileStore = await FileStateStore.open({
      path: profileStorePath(options.stateDir, options.profile),
      passphrase: options.passphrase ?? TESTING_PASSPHRASE,
    });
    store = fileStore;
  } else {
    store = new MemoryStateStore();
  }
  try {
    const presence: Presence = new CallbackPresence(options.presence ?? (() => true));
    const authenticator = await SoftAuthenticator.open({
      store,
      presence,
      attestation: options.attestation,
      maxResidentCredentials: options.maxResidentCredentials,
    });
    if (options.pin !== undefined) {
      const port: CtapCommandPort = (request) =>
        authenticator.request('cbor', request, { signal: new AbortController().signal, onStatus: () => undefined });
      await setPin(port, await getInfo(port), options.pin);
    }
    const device = await startLoopbackDevice(authenticator, host, options.port ?? 0);
    let closing: Promise<void> | undefined;
    return {
      device: device.address,
      authenticator,
      close() {
        closing ??= (async () => {
          await device.close();
          await fileStore?.close();
        })();
        return closing;
      },
    };
  } catch (err) {
    await fileStore?.close();
    throw err;
  }
}
