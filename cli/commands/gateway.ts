/**
 * `keytunnel gateway` (runs inside the VM): one virtual FIDO HID device per authenticator the agent exports.
 *
 *   agent ⇄ TLS 1.3 mTLS tunnel (--connect with auto-reconnect, or --listen) → GatewayCore
 *     → per authenticator: RemoteAuthenticator → CTAPHID device engine → face (--hid)
 *
 * Faces and several authenticators (each device gets the lowest free slot 0, 1, 2, ...; device/faces/factory.ts):
 * - `loopback:HOST:PORT` — device in slot N listens on PORT + N (PORT 0: every device gets a free port; the log
 *   line says which);
 * - `uhid` — one /dev/uhid device per authenticator, named after its label;
 * - `usbip[:HOST:PORT]` — one USB/IP server per authenticator on PORT + N, bus id 1-1 on each.
 * --connect rdp:keytunnel dials the agent over the RDP connection itself (a dynamic virtual channel; the laptop's
 * FreeRDP runs the keytunnel plugin, `keytunnel install-rdp-plugin`); `rdp:keytunnel,tcp:HOST:PORT` falls back to TCP.
 * uhid and usbip devices carry the serial number `keytunnel-gateway-N`, which `keytunnel agent --hardware` skips.
 * A device whose authenticator disappears, or whose tunnel stays down, is removed after --grace-ms (default 5 s),
 * so a brief reconnect does not unplug the key from the browser.
 *
 * `startGatewayService` is the whole service with its I/O injected (tests run it in-process).
 */
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { faceFactoryFor, type FaceFactory } from '../../device/faces/factory.ts';
import { DEFAULT_GRACE_MS, startGateway, type GatewayCore, type GatewayCoreOptions } from '../../gateway/gateway.ts';
import { dialTargets, formatDialTarget, type ConnectSpec, type DialTarget } from '../../tunnel/dial-target.ts';
import { loadOrCreateIdentity } from '../../tunnel/identity.ts';
import { resolveStateDir } from '../state-dir.ts';
import type { BackoffPolicy } from '../../tunnel/reconnect.ts';
import type { Endpoint, TunnelOptions } from '../../tunnel/tls.ts';
import { chansrvSocketPath, NotInRdpSessionError, type XrdpChannelOptions } from '../../tunnel/transports/xrdp-channel.ts';
import { loadTrust } from '../../tunnel/trust.ts';
import { HID_SPEC_SYNTAX, parseHidSpec, type HidSpec } from '../hid-spec.ts';
import type { Logger } from '../log.ts';
import { runService } from '../run-service.ts';
import {
  GATEWAY_DEVICE_SERIAL,
  RelaySetupError,
  gatewayEndpoints,
  logTunnelServiceStarted,
  requireOneEndpoint,
  serviceAddress,
  trustList,
  tunnelOptionsBuilder,
} from '../options.ts';

export interface GatewayServiceOptions {
  readonly hid: HidSpec;
  readonly listen?: Endpoint;
  /** A TCP endpoint, or targets in order (rdp:CHANNEL, tcp:HOST:PORT). */
  readonly connect?: ConnectSpec;
  readonly trust: readonly string[];
  readonly stateDir: string;
  readonly name?: string;
  readonly graceMs?: number;
}

export interface GatewayServiceIo {
  readonly log: Logger;
  /** Replace the face factory (tests). */
  readonly face?: FaceFactory;
  readonly connection?: TunnelOptions['connection'];
  readonly backoff?: Partial<BackoffPolicy>;
  readonly device?: GatewayCoreOptions['device'];
  /** Where RDP channels are opened (tests). */
  readonly rdp?: XrdpChannelOptions;
}

export interface GatewayService {
  readonly fingerprint: string;
  readonly core: GatewayCore;
  /** The tunnel listener's address (with --listen). */
  readonly address: { readonly host: string; readonly port: number } | undefined;
  /** Closes the tunnel and removes every virtual device. Idempotent. */
  close(): Promise<void>;
}

export async function startGatewayService(options: GatewayServiceOptions, io: GatewayServiceIo): Promise<GatewayService> {
  const log = io.log;
  requireOneEndpoint(options);
  if (options.connect !== undefined) preflightRdp(dialTargets(options.connect), io.rdp);
  const { identity } = await loadOrCreateIdentity(options.stateDir, log);
  const trust = await loadTrust({ stateDir: options.stateDir, cli: options.trust });
  if (trust.size === 0) {
    log.warn('no trusted agent yet: every agent will be refused; run with --trust <agent fingerprint> (`keytunnel id` on the agent)');
  }
  const running = await startGateway({
    identity,
    trust,
    listen: options.listen,
    connect: options.connect,
    name: options.name,
    logger: log,
    // The serial marks each device as ours, so an agent on the same machine does not re-export it.
    face: io.face ?? faceFactoryFor(options.hid, log, { serial: (slot) => `${GATEWAY_DEVICE_SERIAL}-${slot}` }),
    graceMs: options.graceMs,
    connection: io.connection,
    backoff: io.backoff,
    device: io.device,
    rdp: io.rdp,
  });
  let stopping: Promise<void> | undefined;
  return {
    fingerprint: identity.fingerprint,
    core: running.core,
    address: serviceAddress(running.address),
    close: () => (stopping ??= running.close()),
  };
}

/** `--connect rdp:...` with no fallback outside an RDP session is a setup error, said at once (not retried). */
function preflightRdp(targets: readonly DialTarget[], rdp: XrdpChannelOptions | undefined): void {
  if (!targets.every((t) => t.kind === 'rdp')) return;
  try {
    chansrvSocketPath(rdp);
  } catch (err) {
    if (err instanceof NotInRdpSessionError) {
      throw new RelaySetupError(`--connect ${targets.map(formatDialTarget).join(',')}: ${err.message}; or add a TCP fallback: --connect rdp:keytunnel,tcp:HOST:PORT`);
    }
    throw err;
  }
}

export const gatewayCommand: CommandModule = {
  command: 'gateway',
  describe: 'Inside the VM: show each authenticator the agent exports as a virtual FIDO HID device',
  builder: (yargs: Argv) =>
    tunnelOptionsBuilder(yargs, 'agent')
      .option('hid', {
        type: 'string',
        demandOption: true,
        describe:
          `Where the devices appear: ${HID_SPEC_SYNTAX}. loopback = TCP, 64 raw bytes per report (tests); the device ` +
          'in slot N listens on PORT+N. uhid = one kernel HID device per authenticator, named after it. usbip = one ' +
          'USB/IP server per authenticator on PORT+N (default 127.0.0.1:3240), to `usbip attach`.',
      })
      .option('grace-ms', {
        type: 'number',
        default: DEFAULT_GRACE_MS,
        describe: 'How long a device survives its authenticator vanishing or the tunnel being down (ms)',
      })
      .epilogue('Stop with Ctrl-C or SIGTERM: the virtual devices are destroyed and the tunnel closed.'),
  handler: (argv: ArgumentsCamelCase) =>
    runService(
      'gateway',
      argv['logLevel'] as string | undefined,
      (log) => {
        const graceMs = Number(argv['graceMs'] ?? DEFAULT_GRACE_MS);
        if (!Number.isInteger(graceMs) || graceMs < 0 || graceMs > 3_600_000) {
          throw new RelaySetupError('--grace-ms must be an integer from 0 to 3600000');
        }
        return startGatewayService(
          {
            hid: parseHidSpec(String(argv['hid'])),
            ...gatewayEndpoints(argv),
            trust: trustList(argv['trust']),
            stateDir: resolveStateDir(argv['stateDir'] as string | undefined),
            name: argv['name'] as string | undefined,
            graceMs,
          },
          { log },
        );
      },
      (service, log) => logTunnelServiceStarted('gateway', service, log),
    ),
};

export default gatewayCommand;
