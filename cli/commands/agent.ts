/**
 * `keytunnel agent`: export this machine's authenticators to gateways over the mutually authenticated tunnel.
 *
 *   soft authenticator (--soft) and/or every FIDO key node-hid finds (--hardware, hot-plugged)
 *     → AgentCore (one session per gateway) → TLS 1.3 mTLS tunnel (--listen or --connect) → gateways
 *
 * Only gateways whose certificate fingerprint is trusted (--trust FP, or the trust file in the state dir) are
 * accepted. With --connect the agent redials with backoff whenever the tunnel drops.
 *
 * `startAgentService` is the whole service with its I/O injected (tests run it in-process); the yargs handler only
 * adds logging, signals and the exit code.
 */
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import type { Authenticator } from '../../protocol/authenticator.ts';
import { startAgent, type AgentCore, type RunningAgent } from '../../agent/agent.ts';
import type { AuthenticatorView } from '../../agent/session.ts';
import type { Presence } from '../../agent/presence/port.ts';
import type { KeyInput } from '../../agent/presence/tty.ts';
import { presenceFor, presenceOrNobody } from '../presence.ts';
import { SoftAuthenticator } from '../../agent/authenticators/soft/soft-authenticator.ts';
import { DEFAULT_PROFILE, profileStorePath } from '../../agent/authenticators/soft/store-file.ts';
import type { FidoDeviceInfo } from '../../agent/authenticators/hardware/device-info.ts';
import type { HidDiscovery } from '../../agent/authenticators/hardware/discovery.ts';
import { createHardwareDiscovery } from '../../agent/authenticators/hardware/hardware.ts';
import type { HidAuthenticator } from '../../agent/authenticators/hardware/hid-authenticator.ts';
import { PASSPHRASE_ENV } from '../../agent/passphrase.ts';
import type { RememberMode } from '../../agent/store-unlock.ts';
import { openCommandStore, rememberMode, rememberPassphraseOption, type SoftStoreIo } from '../soft-store.ts';
import { loadOrCreateIdentity } from '../../tunnel/identity.ts';
import { resolveStateDir } from '../state-dir.ts';
import type { BackoffPolicy } from '../../tunnel/reconnect.ts';
import type { Endpoint, TunnelOptions } from '../../tunnel/tls.ts';
import { loadTrust, TrustSet, type TrustEntry } from '../../tunnel/trust.ts';
import { PolicyConfig } from '../../agent/policy/config.ts';
import { loadAgentPolicy } from '../../agent/policy/view.ts';
import { platformNotifier, withDesktopNotification } from '../../agent/presence/notify.ts';
import { PINENTRY_ENV } from '../../agent/presence/dialogs/choose.ts';
import { logLevelOption, type Logger } from '../log.ts';
import { runService } from '../run-service.ts';
import {
  APPROVE_MODES,
  isGatewayDevice,
  logTunnelServiceStarted,
  parseApprove,
  tunnelEndpoints,
  RelaySetupError,
  requireOneEndpoint,
  serviceAddress,
  trustList,
  tunnelOptionsBuilder,
  type ApproveMode,
} from '../options.ts';

/** --hardware: node-hid discovery of FIDO keys (hot-plug where the `usb` package works), minus gateway devices. */
export function hardwareDiscovery(log: Logger): HidDiscovery<HidAuthenticator> {
  const skipped = new Set<string>();
  return createHardwareDiscovery({
    skip: (info) => {
      if (!isGatewayDevice(info)) return false;
      if (!skipped.has(info.path)) {
        skipped.add(info.path);
        log.info({ path: info.path }, 'skipping a keytunnel gateway device (not a real key)');
      }
      return true;
    },
  });
}

export interface AgentServiceOptions {
  readonly soft: boolean;
  readonly hardware: boolean;
  readonly listen?: Endpoint;
  readonly connect?: Endpoint;
  /** Fingerprints from --trust (the trust file in stateDir is read too). */
  readonly trust: readonly string[];
  readonly stateDir: string;
  readonly profile: string;
  readonly approve: ApproveMode;
  /** Display name sent to gateways (default: host name). */
  readonly name?: string;
  /** Also announce presence prompts as desktop notifications. */
  readonly notify?: boolean;
  /** --remember-passphrase (yes), --no-remember-passphrase (no), neither (ask on a terminal). Default ask. */
  readonly rememberPassphrase?: RememberMode;
}

/** The store's I/O (env, passphrase sources, keychain; cli/soft-store.ts) plus the agent's own. */
export interface AgentServiceIo extends SoftStoreIo {
  readonly log: Logger;
  /** The terminal for the presence and passphrase prompts (default process.stdin / process.stderr). */
  readonly input?: KeyInput;
  /** Replace the soft authenticator's presence (tests). */
  readonly presence?: Presence;
  /** Extra authenticators to export (tests). */
  readonly extra?: readonly Authenticator[];
  /** The per-gateway policy seam (default: identity). */
  readonly view?: AuthenticatorView;
  readonly connection?: TunnelOptions['connection'];
  readonly backoff?: Partial<BackoffPolicy>;
}

export interface AgentService {
  readonly fingerprint: string;
  readonly core: AgentCore;
  /** The tunnel listener's address (with --listen). */
  readonly address: { readonly host: string; readonly port: number } | undefined;
  readonly soft: SoftAuthenticator | undefined;
  /** Closes the tunnel, stops discovery, releases the keys and the store. Idempotent. */
  close(): Promise<void>;
}

export async function startAgentService(options: AgentServiceOptions, io: AgentServiceIo): Promise<AgentService> {
  const log = io.log;
  if (!options.soft && !options.hardware && (io.extra ?? []).length === 0) {
    throw new RelaySetupError('nothing to export: give --soft, --hardware, or both');
  }
  requireOneEndpoint(options);
  const { identity } = await loadOrCreateIdentity(options.stateDir, log);
  // Gateways named in the policy file (gateways.json) are trusted under their policy name; the policy name wins
  // over a name in the trust file, and any name the agent has wins over what the untrusted VM announces.
  const policyConfig = await PolicyConfig.load(options.stateDir);
  const fromFiles = await loadTrust({ stateDir: options.stateDir, cli: options.trust });
  const trust = new TrustSet([
    ...policyConfig.list().map((p): TrustEntry => ({ fingerprint: p.fingerprint, name: p.name, source: 'policy' })),
    ...fromFiles.entries(),
  ]);
  if (trust.size === 0) {
    log.warn(`no trusted gateway yet: every gateway will be refused; run with --trust <gateway fingerprint> (see \`keytunnel id\` in the VM)`);
  }

  const cleanups: (() => Promise<void>)[] = [];
  const stopAll = async (): Promise<void> => {
    for (const c of cleanups.splice(0).reverse()) {
      try {
        await c();
      } catch (err) {
        log.warn({ err: String(err) }, 'error while stopping');
      }
    }
  };
  try {
    let soft: SoftAuthenticator | undefined;
    const input = io.input ?? process.stdin;
    const output = io.output ?? process.stderr;
    // User presence on this machine: for the soft authenticator, and for gateways whose policy says
    // `approve: agent`. Created first: `--approve prompt` without a terminal (or `--approve dialog` without a
    // dialog program) must fail before the passphrase is asked. A hardware-only agent asks too when it can (a
    // terminal, a dialog): a VM's setPIN/changePIN needs a person's yes (pin-guard.ts); where nobody can be asked
    // those are refused.
    const required = options.soft || policyConfig.list().some((p) => p.approve === 'agent');
    const presenceIo = { input, output, env: io.env ?? process.env, log };
    let presence: Presence =
      io.presence ?? (required ? presenceFor(options.approve, presenceIo) : presenceOrNobody(options.approve, presenceIo));
    const notifier = options.notify ? platformNotifier() : undefined;
    if (options.notify && !notifier) log.warn('--notify: no desktop notifier known for this platform');
    // The notification says "answer in the keytunnel terminal": only for the terminal prompt (a dialog is its own notice).
    if (notifier && options.approve === 'prompt') presence = withDesktopNotification(presence, notifier);
    const policy = await loadAgentPolicy(options.stateDir, presence, policyConfig, log);
    cleanups.push(async () => policy.close());
    if (options.soft) {
      const storePath = profileStorePath(options.stateDir, options.profile);
      const { store, creating } = await openCommandStore(storePath, options, { ...io, input, output }, log);
      cleanups.push(() => store.close());
      soft = await SoftAuthenticator.open({ store, presence });
      if (creating) log.info({ store: storePath }, 'created a new soft authenticator');
    }

    const running: RunningAgent = await startAgent({
      identity,
      trust,
      listen: options.listen,
      connect: options.connect,
      name: options.name,
      logger: log,
      view: io.view ?? policy.view,
      connection: io.connection,
      backoff: io.backoff,
    });
    cleanups.push(() => running.close());
    const core = running.core;
    if (soft !== undefined) await core.add(soft);
    for (const extra of io.extra ?? []) await core.add(extra);

    if (options.hardware) {
      let discovery: HidDiscovery<HidAuthenticator>;
      try {
        discovery = hardwareDiscovery(log);
      } catch (err) {
        throw new RelaySetupError(`--hardware: cannot use node-hid: ${(err as Error).message}`);
      }
      discovery.on('added', (key) => {
        core.add(key, key.getInfo.length > 0 ? key.getInfo : undefined).catch((err: unknown) => {
          log.warn({ key: key.descriptor.id, err: String(err) }, `cannot export "${key.descriptor.label}"`);
        });
      });
      discovery.on('removed', (key) => void core.remove(key.descriptor.id));
      discovery.on('warning', (err) => log.warn({ err: err.message }, 'FIDO key discovery'));
      cleanups.push(() => discovery.close());
      await discovery.start();
      log.info(
        { keys: discovery.current.length, hotplug: discovery.usingHotplug },
        discovery.current.length === 0 ? 'no FIDO key plugged in yet; watching for one' : 'hardware keys exported',
      );
    }

    let stopping: Promise<void> | undefined;
    return {
      fingerprint: identity.fingerprint,
      core,
      address: serviceAddress(running.address),
      soft,
      close: () => (stopping ??= stopAll()),
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

export const agentCommand: CommandModule = {
  command: 'agent',
  describe: "Export this machine's authenticators (soft and/or hardware keys) to gateways over the tunnel",
  builder: (yargs: Argv) =>
    tunnelOptionsBuilder(yargs, 'gateway')
      .option('soft', {
        type: 'boolean',
        default: false,
        describe: 'Export the built-in soft authenticator (passkeys encrypted in <state-dir>/soft-<profile>.kts)',
      })
      .option('hardware', {
        type: 'boolean',
        default: false,
        describe: 'Export every FIDO security key plugged into this machine (hot-plug: keys come and go)',
      })
      .option('profile', {
        type: 'string',
        default: DEFAULT_PROFILE,
        describe: 'Which soft authenticator to export (its state is <state-dir>/soft-<profile>.kts)',
      })
      .option('notify', {
        type: 'boolean',
        default: false,
        describe: 'With --approve prompt, also show each approval request as a desktop notification (notify-send, macOS, Windows); the answer is still given in this terminal',
      })
      .option('approve', {
        type: 'string',
        choices: APPROVE_MODES,
        describe:
          'How a person approves each request (soft authenticator presence, `approve: agent` consent, a VM\'s PIN ' +
          'change): prompt = on this terminal, naming the gateway; dialog = a desktop dialog (pinentry, zenity, ' +
          `kdialog, macOS or Windows dialog; ${PINENTRY_ENV} picks a pinentry); always = approve everything ` +
          'without asking (tests and containers only). Default: prompt on a terminal, else dialog',
      })
      .options(rememberPassphraseOption)
      .epilogue(
        `The soft authenticator's passphrase comes from ${PASSPHRASE_ENV}, else the OS keychain (once remembered), ` +
          'else a terminal prompt. Stop with Ctrl-C ' +
          'or SIGTERM: in-flight requests are aborted and the gateways see the keys go away.',
      ),
  handler: (argv: ArgumentsCamelCase) =>
    runService(
      'agent',
      argv['logLevel'] as string | undefined,
      (log) => {
        return startAgentService(
          {
            soft: argv['soft'] === true,
            hardware: argv['hardware'] === true,
            ...tunnelEndpoints(argv),
            trust: trustList(argv['trust']),
            stateDir: resolveStateDir(argv['stateDir'] as string | undefined),
            profile: String(argv['profile'] ?? DEFAULT_PROFILE),
            approve: parseApprove(argv['approve']),
            name: argv['name'] as string | undefined,
            notify: argv['notify'] === true,
            rememberPassphrase: rememberMode(argv['rememberPassphrase']),
          },
          { log },
        );
      },
      (service, log) => logTunnelServiceStarted('agent', service, log, { exported: service.core.list().map((a) => a.label) }),
    ),
};

export default agentCommand;
