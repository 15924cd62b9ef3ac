/**
 * Command-line pieces shared by `agent`, `gateway`, `soft`, `doctor` and `demo`: the tunnel flags
 * (--listen/--connect/--trust/--state-dir/--name), endpoint parsing, --approve, and the serial marker of gateway
 * devices. Kept apart from the commands so that loading one command does not load another.
 */
import { isIP, type AddressInfo } from 'node:net';
import type { Argv } from 'yargs';
import { RDP_CHANNEL_NAME, type DialTarget } from '../tunnel/dial-target.ts';
import type { Endpoint } from '../tunnel/tls.ts';
import { logLevelOption, type Logger } from './log.ts';
import { stateDirOption } from './state-dir.ts';
import { KeytunnelError } from '../protocol/errors.ts';

export type ApproveMode = 'prompt' | 'dialog' | 'always';
export const APPROVE_MODES: readonly ApproveMode[] = ['prompt', 'dialog', 'always'];

/** A configuration problem the user must fix (shown as one line, no stack trace). */
export class RelaySetupError extends KeytunnelError {
  override readonly name = 'RelaySetupError';
  readonly code = 'RELAY_SETUP';
}

/**
 * Serial number (HID_UNIQ / USB iSerialNumber) prefix of the virtual devices a gateway creates. The agent's
 * --hardware discovery skips them: were agent and gateway ever on the same machine, the agent would otherwise
 * re-export the gateway's own devices to it, without end.
 */
export const GATEWAY_DEVICE_SERIAL = 'keytunnel-gateway';

export function isGatewayDevice(info: { readonly serialNumber: string }): boolean {
  return info.serialNumber.startsWith(GATEWAY_DEVICE_SERIAL);
}

/** Parse `HOST:PORT` (IPv6 as `[::1]:PORT`) for --listen / --connect. Port 0 only when listening. */
export function parseEndpoint(text: string, flag: string, allowPortZero: boolean): Endpoint {
  const spec = text.trim();
  const bracketed = /^\[([^\]]+)\]:(\d{1,5})$/.exec(spec);
  const plain = /^([^:[\]\s]+):(\d{1,5})$/.exec(spec);
  const m = bracketed ?? plain;
  if (m === null) throw new RelaySetupError(`${flag} ${JSON.stringify(spec.slice(0, 80))}: expected HOST:PORT (IPv6 as [::1]:PORT)`);
  const host = m[1];
  const port = Number(m[2]);
  if (bracketed !== null && isIP(host) !== 6) throw new RelaySetupError(`${flag}: ${host} is not an IPv6 address`);
  if (port > 65535 || (port === 0 && !allowPortZero)) {
    throw new RelaySetupError(`${flag}: PORT must be 1..65535${allowPortZero ? ' (or 0 for any free port)' : ''}`);
  }
  return { host, port };
}

/** --listen / --connect from parsed arguments (exactly one is checked later, by the service). */
export function tunnelEndpoints(argv: Readonly<Record<string, unknown>>): { listen?: Endpoint; connect?: Endpoint } {
  const listen = argv['listen'] as string | undefined;
  const connect = argv['connect'] as string | undefined;
  return {
    listen: listen === undefined ? undefined : parseEndpoint(listen, '--listen', true),
    connect: connect === undefined ? undefined : parseEndpoint(connect, '--connect', false),
  };
}

/**
 * The gateway's --connect: comma-separated targets tried in order, each `rdp:CHANNEL` (the dynamic virtual channel
 * of the RDP session the gateway runs in), `tcp:HOST:PORT` or a bare `HOST:PORT` (TCP). E.g.
 * `rdp:keytunnel,tcp:10.0.2.2:7531`: the RDP channel, else TCP.
 */
export function parseConnectTargets(text: string, flag = '--connect'): DialTarget[] {
  const parts = text.split(',').map((p) => p.trim());
  if (parts.length > 4) throw new RelaySetupError(`${flag}: at most 4 targets`);
  const targets = parts.map((part): DialTarget => {
    if (part.startsWith('rdp:') || part === 'rdp') {
      const channel = part === 'rdp' ? RDP_CHANNEL_NAME : part.slice(4);
      if (!/^[A-Za-z0-9_.-]{1,64}$/.test(channel)) {
        throw new RelaySetupError(`${flag} ${JSON.stringify(part.slice(0, 80))}: expected rdp:CHANNEL (letters, digits, _ . -)`);
      }
      return { kind: 'rdp', channel };
    }
    const endpoint = parseEndpoint(part.startsWith('tcp:') ? part.slice(4) : part, flag, false);
    return { kind: 'tcp', ...endpoint };
  });
  if (new Set(targets.map((t) => JSON.stringify(t))).size !== targets.length) {
    throw new RelaySetupError(`${flag}: a target is named twice`);
  }
  return targets;
}

/** The gateway's --listen / --connect (--connect may name an RDP channel: parseConnectTargets). */
export function gatewayEndpoints(argv: Readonly<Record<string, unknown>>): { listen?: Endpoint; connect?: DialTarget[] } {
  const listen = argv['listen'] as string | undefined;
  const connect = argv['connect'] as string | undefined;
  return {
    listen: listen === undefined ? undefined : parseEndpoint(listen, '--listen', true),
    connect: connect === undefined ? undefined : parseConnectTargets(connect),
  };
}

/** The --trust values as a list (yargs gives a string or an array). */
export function trustList(value: unknown): string[] {
  if (value === undefined) return [];
  const list = Array.isArray(value) ? value : [value];
  return list.map((v) => String(v));
}

/** `agent` and `gateway` take exactly one of --listen and --connect; said before anything is created. */
export function requireOneEndpoint(options: { readonly listen?: unknown; readonly connect?: unknown }): void {
  if ((options.listen === undefined) === (options.connect === undefined)) {
    throw new RelaySetupError('give exactly one of --listen HOST:PORT or --connect HOST:PORT');
  }
}

/** A tunnel service's listener address as the services report it (undefined when dialing). */
export function serviceAddress(address: AddressInfo | undefined): { readonly host: string; readonly port: number } | undefined {
  return address === undefined ? undefined : { host: address.address, port: address.port };
}

/** The line `agent` and `gateway` log once they run: where, and the fingerprint to give the peer. */
export function logTunnelServiceStarted(
  role: 'agent' | 'gateway',
  service: { readonly fingerprint: string; readonly address: { readonly host: string; readonly port: number } | undefined },
  log: Logger,
  fields: object = {},
): void {
  const where = service.address ? `listening on ${service.address.host}:${service.address.port}` : `dialing the ${role === 'agent' ? 'gateway' : 'agent'}`;
  log.info({ fingerprint: service.fingerprint, ...fields }, `keytunnel ${role}: ${where}; this ${role}'s fingerprint is ${service.fingerprint}`);
}

/** Shared options of `agent` and `gateway`. */
export function tunnelOptionsBuilder(yargs: Argv, peer: 'gateway' | 'agent'): Argv {
  return yargs
    .option('listen', {
      type: 'string',
      describe: `Wait for ${peer}s on HOST:PORT (TLS 1.3, mutual authentication; port 0 = any free port)`,
      conflicts: 'connect',
    })
    .option('connect', {
      type: 'string',
      describe:
        peer === 'agent'
          ? 'Dial the agent, and redial with backoff whenever the tunnel drops: HOST:PORT, or rdp:keytunnel (the RDP ' +
            'connection this session runs over; the laptop runs FreeRDP with the keytunnel plugin), or a list tried in ' +
            'order, e.g. rdp:keytunnel,tcp:HOST:PORT'
          : `Dial the ${peer} at HOST:PORT, and redial with backoff whenever the tunnel drops`,
      conflicts: 'listen',
    })
    .option('trust', {
      type: 'string',
      array: true,
      describe: `Fingerprint of a ${peer} to accept (repeatable; \`keytunnel id\` prints it there); the trust file ` +
        'in the state dir (`keytunnel trust add`) is read too',
    })
    .options(stateDirOption)
    .option('name', {
      type: 'string',
      describe: `Display name announced to the ${peer} (default: this host's name)`,
    })
    .options(logLevelOption);
}

/**
 * --approve as given; without it, `prompt` when stdin is a terminal (someone is there to press Enter) and
 * `dialog` otherwise (started from a desktop menu, a login item or a service: issue 15).
 */
export function parseApprove(value: unknown, stdinIsTty: boolean = process.stdin.isTTY === true): ApproveMode {
  if (value === undefined) return stdinIsTty ? 'prompt' : 'dialog';
  if (value === 'prompt' || value === 'dialog' || value === 'always') return value;
  throw new RelaySetupError(`--approve must be one of ${APPROVE_MODES.join(', ')}`);
}
