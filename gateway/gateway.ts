/**
 * The gateway (runs in the VM): for every authenticator the agent exports, one virtual FIDO device — a CTAPHID
 * device engine (device/ctaphid-device.ts) serving a RemoteAuthenticator, shown to the VM through a face
 * (loopback, uhid, usbip) made by an injected factory (device/faces/factory.ts outside tests).
 *
 * Lifecycle of a device:
 * - created when an AUTHENTICATORS frame first names the authenticator (the getInfo cache comes with it);
 * - refreshed in place by later AUTHENTICATORS frames (getInfo cache updated; a changed label, ctap1 or wink flag
 *   recreates it, since the face's name and the INIT capabilities are fixed at creation);
 * - when the agent stops announcing it, or the tunnel drops, requests to it fail at once (the VM client gets
 *   CTAPHID_ERROR ERR_OTHER, never a hang) and it is removed after a grace period (default 5 s) unless the agent
 *   announces it again — so a brief reconnect does not unplug the key from the browser.
 *
 * Devices are keyed by (agent fingerprint, authenticator id), so a listening gateway may serve several agents.
 * Each device gets a slot number, the lowest free one; the loopback face uses it to pick the port (PORT + slot).
 *
 * `GatewayCore` is transport-agnostic (`attachAgent` takes an authenticated connection after HELLO); `startGateway`
 * adds the tunnel: dial the agent with auto-reconnect (tunnel/reconnect.ts), or listen for agents.
 */
import { EventEmitter } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../protocol/logger.ts';
import type { AuthenticatorDescriptor } from '../protocol/authenticator.ts';
import { ERR_PROTOCOL, type ExportedAuthenticator, type Frame } from '../protocol/tunnel.ts';
import { systemClock, type Clock } from '../protocol/clock.ts';
import { CtaphidDevice, type CtaphidDeviceOptions } from '../device/ctaphid-device.ts';
import type { FaceFactory, FaceHandle } from '../device/faces/factory.ts';
import { RemoteAuthenticator, RemoteRequests } from './remote-authenticator.ts';
import { startSide, type PeerHandlers, type PeerLink, type SideOptions } from '../tunnel/endpoint.ts';

/** What the gateway needs from one authenticated agent connection, and what it hands back. */
export type AgentConnection = PeerLink;
export type AgentConnectionHandlers = PeerHandlers;

export interface GatewayCoreOptions {
  readonly face: FaceFactory;
  readonly logger: Logger;
  /** How long a vanished authenticator's device survives (ms, default 5000). */
  readonly graceMs?: number;
  /** Options for every device engine (its clock among them). */
  readonly device?: CtaphidDeviceOptions;
  /** Timers for the grace period (default the system clock; tests inject the fake one). */
  readonly clock?: Clock;
}

export interface DeviceInfo {
  readonly agentFingerprint: string;
  readonly authenticatorId: string;
  readonly label: string;
  readonly slot: number;
  readonly description: string;
  /** The bound address of a socket face (loopback, usbip). */
  readonly address?: { readonly host: string; readonly port: number };
}

interface DeviceEntry {
  readonly key: string;
  readonly agent: AgentState;
  readonly remote: RemoteAuthenticator;
  readonly device: CtaphidDevice;
  readonly face: FaceHandle;
  readonly slot: number;
  removeTimer: unknown;
}

interface AgentState {
  readonly fingerprint: string;
  readonly requests: RemoteRequests;
  connection: AgentConnection | null;
  name: string;
}

export const DEFAULT_GRACE_MS = 5000;

type GatewayEvents = {
  'device-added': [DeviceInfo];
  'device-removed': [DeviceInfo];
  'agent-connected': [{ fingerprint: string; name: string }];
  'agent-disconnected': [{ fingerprint: string; name: string }];
};

/** Devices and agent connections; no sockets of its own. */
export class GatewayCore extends EventEmitter<GatewayEvents> {
  private readonly agents = new Map<string, AgentState>();
  private readonly devices = new Map<string, DeviceEntry>();
  private readonly usedSlots = new Set<number>();
  private readonly graceMs: number;
  private readonly clock: Clock;
  private readonly log: Logger;
  /** Device creation and removal run one at a time, in order (face setup is async). */
  private ops: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(private readonly options: GatewayCoreOptions) {
    super();
    this.graceMs = options.graceMs ?? DEFAULT_GRACE_MS;
    this.clock = options.clock ?? systemClock;
    this.log = options.logger;
  }

  /** The virtual devices that exist now. */
  list(): DeviceInfo[] {
    return [...this.devices.values()].map(info);
  }

  /** The RemoteAuthenticator behind a device (diagnostics and tests). */
  authenticatorFor(agentFingerprint: string, authenticatorId: string): RemoteAuthenticator | undefined {
    return this.devices.get(deviceKey(agentFingerprint, authenticatorId))?.remote;
  }

  /** REQUEST frames sent to all agents so far (each is one tunnel round trip). */
  get requestsSent(): number {
    let n = 0;
    for (const a of this.agents.values()) n += a.requests.requestsSent;
    return n;
  }

  /** Resolves once every device creation/removal queued so far has finished. */
  settled(): Promise<void> {
    return this.ops;
  }

  /** An authenticated agent connection is up (HELLO done). A newer connection from the same agent replaces it. */
  attachAgent(connection: AgentConnection): AgentConnectionHandlers {
    if (this.closed) {
      connection.close('gateway shutting down');
      return { frame: () => {}, closed: () => {} };
    }
    let agent = this.agents.get(connection.fingerprint);
    if (agent === undefined) {
      agent = { fingerprint: connection.fingerprint, requests: new RemoteRequests(), connection: null, name: connection.name };
      this.agents.set(connection.fingerprint, agent);
    }
    const state = agent;
    const previous = state.connection;
    if (previous !== null && previous !== connection) {
      state.requests.unbind(previous);
      previous.close('replaced by a newer connection from the same agent');
    }
    state.connection = connection;
    state.name = connection.name;
    state.requests.bind(connection);
    this.log.info({ agent: connection.fingerprint, name: connection.name }, 'agent connected');
    this.emit('agent-connected', { fingerprint: connection.fingerprint, name: connection.name });
    let gone = false;
    return {
      frame: (frame) => {
        if (gone || this.closed) return;
        this.handleFrame(state, connection, frame);
      },
      closed: () => {
        if (gone) return;
        gone = true;
        this.detach(state, connection);
      },
    };
  }

  /** Remove every device and forget every agent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const a of this.agents.values()) {
      if (a.connection !== null) {
        const c = a.connection;
        a.requests.unbind(c);
        a.connection = null;
        c.close('gateway shutting down');
      }
    }
    await this.enqueue(async () => {
      for (const entry of [...this.devices.values()]) await this.removeNow(entry);
    }, true);
  }

  private handleFrame(agent: AgentState, connection: AgentConnection, frame: Frame): void {
    switch (frame.type) {
      case 'authenticators':
        this.reconcile(agent, frame.authenticators);
        return;
      case 'keepalive':
      case 'response':
        agent.requests.handle(frame);
        return;
      case 'error':
        if (frame.requestId === null) {
          this.log.warn({ agent: agent.fingerprint, code: frame.code, message: frame.message }, 'agent reported an error');
        } else {
          agent.requests.handle(frame);
        }
        return;
      case 'hello':
      case 'ping':
      case 'pong':
        return;
      default: {
        const message = `an agent must not send ${frame.type} frames`;
        this.log.warn({ agent: agent.fingerprint }, `protocol error: ${message}; closing the connection`);
        try {
          connection.send({ type: 'error', requestId: null, code: ERR_PROTOCOL, message });
        } catch {
          /* closing anyway */
        }
        connection.close(message);
        this.detach(agent, connection);
      }
    }
  }

  private detach(agent: AgentState, connection: AgentConnection): void {
    agent.requests.unbind(connection);
    if (agent.connection !== connection) return; // an old connection, already replaced
    agent.connection = null;
    this.log.info({ agent: agent.fingerprint, graceMs: this.graceMs }, 'agent disconnected; its devices stay for the grace period');
    this.emit('agent-disconnected', { fingerprint: agent.fingerprint, name: agent.name });
    for (const entry of this.devices.values()) {
      if (entry.agent === agent) this.scheduleRemoval(entry);
    }
  }

  private reconcile(agent: AgentState, announced: readonly ExportedAuthenticator[]): void {
    const wanted = new Map(announced.map((a) => [deviceKey(agent.fingerprint, a.id), a]));
    // Vanished ones: fail fast now, remove after the grace period.
    for (const entry of this.devices.values()) {
      if (entry.agent === agent && !wanted.has(entry.key)) {
        entry.remote.markAbsent();
        this.scheduleRemoval(entry);
      }
    }
    for (const [key, a] of wanted) {
      const entry = this.devices.get(key);
      if (entry !== undefined && sameShape(entry.remote.descriptor, a)) {
        entry.remote.update(a);
        this.cancelRemoval(entry);
        continue;
      }
      void this.enqueue(async () => {
        const current = this.devices.get(key);
        if (current !== undefined) {
          if (sameShape(current.remote.descriptor, a)) {
            current.remote.update(a);
            this.cancelRemoval(current);
            return;
          }
          await this.removeNow(current);
        }
        await this.create(agent, key, a);
      });
    }
  }

  private async create(agent: AgentState, key: string, a: ExportedAuthenticator): Promise<void> {
    const remote = new RemoteAuthenticator(a, agent.requests);
    const device = new CtaphidDevice(remote, this.options.device ?? {});
    let slot = 0;
    while (this.usedSlots.has(slot)) slot++;
    this.usedSlots.add(slot);
    let face: FaceHandle;
    try {
      face = await this.options.face(device, { descriptor: remote.descriptor, slot });
    } catch (err) {
      this.usedSlots.delete(slot);
      device.close();
      this.log.error({ authenticator: a.id, err: String(err) }, `could not create the virtual device for "${a.label}"`);
      return;
    }
    const entry: DeviceEntry = { key, agent, remote, device, face, slot, removeTimer: undefined };
    this.devices.set(key, entry);
    this.log.info({ authenticator: a.id, face: face.description }, `virtual device for "${a.label}" ready`);
    this.emit('device-added', info(entry));
    // Announced while the tunnel was already down again: the normal grace rules apply.
    if (agent.connection === null) this.scheduleRemoval(entry);
  }

  private scheduleRemoval(entry: DeviceEntry): void {
    if (entry.removeTimer !== undefined || this.closed) return;
    entry.removeTimer = this.clock.setTimeout(() => {
      entry.removeTimer = undefined;
      void this.enqueue(async () => {
        if (this.devices.get(entry.key) === entry) await this.removeNow(entry);
      });
    }, this.graceMs);
  }

  private cancelRemoval(entry: DeviceEntry): void {
    if (entry.removeTimer === undefined) return;
    this.clock.clearTimeout(entry.removeTimer);
    entry.removeTimer = undefined;
  }

  private async removeNow(entry: DeviceEntry): Promise<void> {
    this.cancelRemoval(entry);
    this.devices.delete(entry.key);
    entry.remote.markAbsent();
    entry.device.close();
    try {
      await entry.face.close();
    } catch (err) {
      this.log.warn({ err: String(err) }, 'closing a face failed');
    }
    this.usedSlots.delete(entry.slot);
    this.log.info({ authenticator: entry.remote.descriptor.id }, `virtual device for "${entry.remote.descriptor.label}" removed`);
    this.emit('device-removed', info(entry));
  }

  private enqueue(op: () => Promise<void>, evenWhenClosed = false): Promise<void> {
    const run = async (): Promise<void> => {
      if (this.closed && !evenWhenClosed) return;
      try {
        await op();
      } catch (err) {
        this.log.error({ err: String(err) }, 'gateway device operation failed');
      }
    };
    this.ops = this.ops.then(run);
    return this.ops;
  }
}

function deviceKey(agentFingerprint: string, authenticatorId: string): string {
  return `${agentFingerprint}/${authenticatorId}`;
}

function sameShape(d: AuthenticatorDescriptor, a: ExportedAuthenticator): boolean {
  return d.label === a.label && d.ctap1 === a.ctap1 && d.wink === a.wink;
}

function info(entry: DeviceEntry): DeviceInfo {
  return {
    agentFingerprint: entry.agent.fingerprint,
    authenticatorId: entry.remote.descriptor.id,
    label: entry.remote.descriptor.label,
    slot: entry.slot,
    description: entry.face.description,
    ...(entry.face.address !== undefined ? { address: entry.face.address } : {}),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Tunnel wiring: dial the agent with auto-reconnect, or listen for agents.

/** Exactly one of listen / connect (SideOptions: a TCP endpoint, or an RDP virtual channel then TCP), and the core's. */
export interface GatewayOptions extends Omit<GatewayCoreOptions, 'logger'>, SideOptions {}

export interface RunningGateway {
  readonly core: GatewayCore;
  /** The tunnel listener's bound address (when listening). */
  readonly address: AddressInfo | undefined;
  /** Stop listening/dialing, close every connection, remove every virtual device. */
  close(): Promise<void>;
}

export async function startGateway(options: GatewayOptions): Promise<RunningGateway> {
  const core = new GatewayCore(options);
  const endpoint = await startSide('gateway', options, (peer) => core.attachAgent(peer));
  return {
    core,
    address: endpoint.address,
    close: async () => {
      await endpoint.close();
      await core.close();
    },
  };
}
