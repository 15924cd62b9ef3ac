/**
 * One side of the tunnel, whichever way round: listen for the peer (`--listen`) or dial it (`--connect`, with
 * auto-reconnect), and hand every authenticated connection to the caller as a `PeerLink`. The agent and the
 * gateway both run exactly this; only what they do with a peer differs.
 */
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import type { Logger } from '../protocol/logger.ts';
import type { Frame, TunnelRole } from '../protocol/tunnel.ts';
import type { PeerConnection } from './connection.ts';
import type { Identity } from './identity.ts';
import { dialFirst, dialTargets, formatDialTarget, type ConnectSpec } from './dial-target.ts';
import { Reconnector, type BackoffPolicy } from './reconnect.ts';
import { listen, type Endpoint, type ListenOptions, type TunnelOptions } from './tls.ts';
import type { XrdpChannelOptions } from './transports/xrdp-channel.ts';
import type { TrustSet } from './trust.ts';

/** An authenticated peer as the agent and gateway cores see it: frames out, a way to hang up. */
export interface PeerLink {
  /** SHA-256 fingerprint of the peer's certificate. */
  readonly fingerprint: string;
  /** The display name the peer announced in HELLO (untrusted). */
  readonly name: string;
  send(frame: Frame): void;
  close(reason: string): void;
}

/** What a core does with the frames of one peer. */
export interface PeerHandlers {
  frame(frame: Frame): void;
  closed(): void;
}

export interface EndpointOptions {
  readonly listen?: Endpoint;
  /** A TCP endpoint, or targets tried in order (an RDP virtual channel, then TCP): tunnel/dial-target.ts. */
  readonly connect?: ConnectSpec;
  /** Where RDP channels are opened (tests use a stand-in channel server). */
  readonly rdp?: XrdpChannelOptions;
  readonly identity: Identity;
  readonly trust: TrustSet;
  /** Tunnel options (the listener limits apply when listening). */
  readonly tunnel: ListenOptions;
  /** Backoff for the dialing side. */
  readonly backoff?: Partial<BackoffPolicy>;
  /** What the other side is, for log lines ("gateway", "agent"). */
  readonly peerRole: string;
}

export interface RunningEndpoint {
  /** The listener's bound address (when listening). */
  readonly address: AddressInfo | undefined;
  /** Stop listening or dialing and close the connections. */
  close(): Promise<void>;
}

/** What the agent and the gateway each say about their side of the tunnel (startSide). */
export interface SideOptions extends Omit<EndpointOptions, 'tunnel' | 'peerRole'> {
  /** Display name sent in HELLO (default: the host name); the peer's prompts, logs and audit lines show it. */
  readonly name?: string;
  readonly logger: Logger;
  /** Heartbeat and buffer settings for each connection (tests shorten them). */
  readonly connection?: TunnelOptions['connection'];
}

/** One side of the tunnel as `role` ('agent' or 'gateway'), the other side being its peer. */
export function startSide(
  role: TunnelRole,
  options: SideOptions,
  attach: (peer: PeerLink) => PeerHandlers,
): Promise<RunningEndpoint> {
  const tunnel = { role, name: options.name ?? hostname().slice(0, 64), log: options.logger, connection: options.connection };
  return startEndpoint({ ...options, tunnel, peerRole: role === 'agent' ? 'gateway' : 'agent' }, attach);
}

/** Backoff when an RDP channel is among the targets: capped at 5 s (no fleet of VMs shares one listener here). */
export const RDP_BACKOFF: Partial<BackoffPolicy> = { initialMs: 250, maxMs: 5000 };

export async function startEndpoint(
  options: EndpointOptions,
  attach: (peer: PeerLink) => PeerHandlers,
): Promise<RunningEndpoint> {
  if ((options.listen === undefined) === (options.connect === undefined)) {
    throw new Error(`the ${options.tunnel.role} needs exactly one of --listen HOST:PORT or --connect HOST:PORT`);
  }
  const onPeer = (conn: PeerConnection): void => {
    const handlers = attach({
      fingerprint: conn.fingerprint,
      name: conn.name,
      send: (frame) => void conn.send(frame),
      close: (reason) => conn.close(reason),
    });
    conn.attach({ frame: (frame) => handlers.frame(frame), closed: () => handlers.closed() });
  };
  if (options.listen !== undefined) {
    const server = await listen(options.listen, options.identity, options.trust, onPeer, options.tunnel);
    return { address: server.address(), close: () => server.close() };
  }
  // A closed RDP channel is a lost connection like any other: the reconnector reopens it (the channel comes back
  // when the RDP client reconnects), and devices survive in between for the gateway's grace period.
  const targets = dialTargets(options.connect!);
  const reconnector = new Reconnector<PeerConnection>({
    connect: () => dialFirst(targets, { identity: options.identity, trust: options.trust, tunnel: options.tunnel, log: options.tunnel.log, rdp: options.rdp }),
    onConnected: onPeer,
    log: options.tunnel.log,
    target:
      targets.length === 1 && targets[0].kind === 'tcp'
        ? `${options.peerRole} at ${targets[0].host}:${targets[0].port}`
        : `${options.peerRole} over ${targets.map(formatDialTarget).join(', then ')}`,
    // Opening an RDP channel is local to the VM and cheap: retry within seconds of the RDP client reconnecting.
    backoff: options.backoff ?? (targets.some((t) => t.kind === 'rdp') ? RDP_BACKOFF : undefined),
  });
  reconnector.start();
  return { address: undefined, close: () => reconnector.close() };
}
