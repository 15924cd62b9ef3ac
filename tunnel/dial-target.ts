/**
 * Where the dialing side reaches its peer: a TCP endpoint, or the RDP connection the process runs in (a dynamic
 * virtual channel, tunnel/transports/xrdp-channel.ts), or a list of both tried in order —
 * `--connect rdp:keytunnel,tcp:10.0.2.2:7531` uses the RDP channel and falls back to TCP when the channel cannot
 * be opened (not in an RDP session, or the RDP client has no keytunnel plugin). Each (re)connect attempt walks the
 * list again, so a gateway that fell back to TCP returns to the channel once TCP drops and the channel is there.
 */
import type { Logger } from '../protocol/logger.ts';
import type { PeerConnection } from './connection.ts';
import type { Identity } from './identity.ts';
import { dial, type Endpoint, type StreamOpener, type TunnelOptions } from './tls.ts';
import { openXrdpChannel, type XrdpChannelOptions } from './transports/xrdp-channel.ts';
import type { TrustSet } from './trust.ts';

export type DialTarget =
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number }
  | { readonly kind: 'rdp'; readonly channel: string };

/** What --connect names: one TCP endpoint (the historical form) or targets in order of preference. */
export type ConnectSpec = Endpoint | readonly DialTarget[];

/** The default name of keytunnel's dynamic virtual channel (the client plugin listens for it). */
export const RDP_CHANNEL_NAME = 'keytunnel';

export function dialTargets(spec: ConnectSpec): readonly DialTarget[] {
  return Array.isArray(spec) ? (spec as readonly DialTarget[]) : [{ kind: 'tcp', ...(spec as Endpoint) }];
}

export function formatDialTarget(target: DialTarget): string {
  if (target.kind === 'rdp') return `rdp:${target.channel}`;
  return target.host.includes(':') ? `tcp:[${target.host}]:${target.port}` : `tcp:${target.host}:${target.port}`;
}

/** An RDP channel as a StreamOpener for tunnel/tls.ts `dial`. */
export function rdpChannelOpener(channel: string, options: XrdpChannelOptions = {}): StreamOpener {
  return { description: `RDP virtual channel "${channel}"`, open: () => openXrdpChannel(channel, options) };
}

export interface DialTargetsOptions {
  readonly identity: Identity;
  readonly trust: TrustSet;
  readonly tunnel: TunnelOptions;
  readonly log: Logger;
  /** Options for opening RDP channels (tests point them at a stand-in chansrv). */
  readonly rdp?: XrdpChannelOptions;
}

/**
 * One connection attempt over `targets` in order: the first that yields a tunnel connection wins; a failure moves
 * on to the next target (logged); when all fail, the error names each target's failure.
 */
export async function dialFirst(targets: readonly DialTarget[], options: DialTargetsOptions): Promise<PeerConnection> {
  const failures: string[] = [];
  for (const [i, target] of targets.entries()) {
    const via = target.kind === 'rdp' ? rdpChannelOpener(target.channel, options.rdp) : target;
    try {
      return await dial(via, options.identity, options.trust, options.tunnel);
    } catch (err) {
      const message = (err as Error).message;
      if (targets.length === 1) throw err;
      failures.push(`${formatDialTarget(target)}: ${message}`);
      if (i < targets.length - 1) {
        options.log.info({ err: message }, `cannot reach the peer over ${formatDialTarget(target)}; trying ${formatDialTarget(targets[i + 1])}`);
      }
    }
  }
  throw new Error(failures.join('; '));
}
