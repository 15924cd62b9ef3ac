/**
 * `keytunnel soft`: run the built-in soft authenticator as a local FIDO HID device.
 *
 *   encrypted store (soft-<profile>.kts)  →  SoftAuthenticator  →  CTAPHID device engine  →  HID face
 *
 * The face is chosen with --hid: the TCP loopback face (tests, python-fido2), /dev/uhid, or a USB/IP server.
 * User presence is a terminal prompt (--approve prompt, the default on a terminal), a desktop dialog (--approve
 * dialog, the default otherwise) or automatic (--approve always, for tests and containers). The store
 * passphrase comes from KEYTUNNEL_PASSPHRASE, the OS keychain or a no-echo prompt (cli/soft-store.ts).
 *
 * `startSoft` is the whole service with its I/O injected, so tests (and the interop suite) run it in-process;
 * the yargs handler only adds logging, signals and the exit code.
 */
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import type { Authenticator } from '../../protocol/authenticator.ts';
import type { Presence } from '../../agent/presence/port.ts';
import type { KeyInput } from '../../agent/presence/tty.ts';
import { PINENTRY_ENV } from '../../agent/presence/dialogs/choose.ts';
import { presenceFor } from '../presence.ts';
import { SoftAuthenticator } from '../../agent/authenticators/soft/soft-authenticator.ts';
import { DEFAULT_PROFILE, profileStorePath } from '../../agent/authenticators/soft/store-file.ts';
import { PASSPHRASE_ENV } from '../../agent/passphrase.ts';
import type { RememberMode } from '../../agent/store-unlock.ts';
import { openCommandStore, rememberMode, rememberPassphraseOption, type SoftStoreIo } from '../soft-store.ts';
import { CtaphidDevice } from '../../device/ctaphid-device.ts';
import { faceFactoryFor } from '../../device/faces/factory.ts';
import { formatHidSpec, HID_SPEC_SYNTAX, isLoopbackAddress, parseHidSpec, type HidSpec } from '../hid-spec.ts';
import { logLevelOption, type Logger } from '../log.ts';
import { runService } from '../run-service.ts';
import { APPROVE_MODES, parseApprove, type ApproveMode } from '../options.ts';
import { resolveStateDir, stateDirOption } from '../state-dir.ts';
import { KeytunnelError } from '../../protocol/errors.ts';


export interface SoftOptions {
  readonly hid: HidSpec;
  readonly stateDir: string;
  readonly profile: string;
  readonly approve: ApproveMode;
  /** --remember-passphrase (yes), --no-remember-passphrase (no), neither (ask on a terminal). Default ask. */
  readonly rememberPassphrase?: RememberMode;
}

/** The store's I/O (env, passphrase sources, keychain; cli/soft-store.ts) plus the command's own. */
export interface SoftIo extends SoftStoreIo {
  readonly log: Logger;
  /** The terminal for the presence and passphrase prompts (default process.stdin / process.stderr). */
  readonly input?: KeyInput;
}

/** A running `keytunnel soft`. */
export interface SoftService {
  /** Where the device is: "loopback:127.0.0.1:40123", `uhid "<name>"`, "usbip:127.0.0.1:3240 busid 1-1". */
  readonly where: string;
  /** The bound address of a socket face (loopback, usbip). */
  readonly address?: { readonly host: string; readonly port: number };
  readonly storePath: string;
  readonly authenticator: Authenticator;
  /** Removes the device, waits for pending saves and releases the store. Idempotent. */
  close(): Promise<void>;
}

/** A configuration problem the user must fix (shown without a stack trace). */
export class SoftSetupError extends KeytunnelError {
  override readonly name = 'SoftSetupError';
  readonly code = 'SOFT_SETUP';
  constructor(message: string) {
    super(message);
  }
}

export async function startSoft(options: SoftOptions, io: SoftIo): Promise<SoftService> {
  const log = io.log;
  const input = io.input ?? process.stdin;
  const output = io.output ?? process.stderr;
  const storePath = profileStorePath(options.stateDir, options.profile);

  // Presence first: `--approve prompt` without a terminal (or `dialog` without a dialog program) must fail
  // before anything else is asked.
  const presence: Presence = presenceFor(options.approve, { input, output, env: io.env ?? process.env, log });

  const { store, creating } = await openCommandStore(storePath, options, { ...io, input, output }, log);
  let device: CtaphidDevice | undefined;
  try {
    const authenticator = await SoftAuthenticator.open({ store, presence });
    if (creating) log.info({ store: storePath }, 'created a new soft authenticator');
    device = new CtaphidDevice(authenticator);
    // One device, so slot 0; no serial: `keytunnel agent --hardware` may serve it like a real key.
    const face = await faceFactoryFor(options.hid, log)(device, { descriptor: authenticator.descriptor, slot: 0 });
    let stopping: Promise<void> | undefined;
    const dev = device;
    return {
      where: face.description,
      address: face.address,
      storePath,
      authenticator,
      close() {
        stopping ??= (async () => {
          await face.close();
          dev.close();
          await store.close();
        })();
        return stopping;
      },
    };
  } catch (err) {
    device?.close();
    await store.close();
    throw err;
  }
}

export const softCommand: CommandModule = {
  command: 'soft',
  describe: 'Run the built-in soft authenticator as a local FIDO HID device',
  builder: (yargs: Argv) =>
    yargs
      .option('hid', {
        type: 'string',
        demandOption: true,
        describe:
          `Where the device appears: ${HID_SPEC_SYNTAX}. loopback = TCP, 64 raw bytes per HID report (tests, ` +
          'python-fido2; port 0 picks a free one); uhid = a kernel HID device via /dev/uhid; usbip = a USB/IP ' +
          'server to `usbip attach` (default 127.0.0.1:3240). Only loopback addresses are accepted, unless ' +
          '--allow-unauthenticated-remote-access.',
      })
      .option('allow-unauthenticated-remote-access', {
        type: 'boolean',
        default: false,
        describe:
          'Let --hid listen on a non-loopback address (e.g. loopback:0.0.0.0:8090 in a container whose port is ' +
          'published). The face has no authentication: anyone who reaches the port uses this authenticator. For ' +
          'test containers only.',
      })
      .options(stateDirOption)
      .option('profile', {
        type: 'string',
        default: DEFAULT_PROFILE,
        describe: 'Name of the soft authenticator; its credentials live in <state-dir>/soft-<profile>.kts',
      })
      .option('approve', {
        type: 'string',
        choices: APPROVE_MODES,
        describe:
          'User presence: prompt = ask on this terminal (Enter approves, Esc/n denies, 30 s timeout); dialog = a ' +
          `desktop dialog (pinentry, zenity, kdialog, macOS or Windows dialog; ${PINENTRY_ENV} picks a pinentry); ` +
          'always = approve every request without asking (tests and containers only). Default: prompt on a ' +
          'terminal, else dialog',
      })
      .options(rememberPassphraseOption)
      .options(logLevelOption)
      .epilogue(
        `The state is encrypted with a passphrase (scrypt + AES-256-GCM): taken from ${PASSPHRASE_ENV}, else the OS ` +
          'keychain (once remembered), else asked on the terminal (twice when the store is created). Stop with ' +
          'Ctrl-C or SIGTERM.',
      ),
  handler: (argv: ArgumentsCamelCase) =>
    runService(
      'soft',
      argv['logLevel'] as string | undefined,
      (log) =>
        startSoft(
          {
            hid: parseHidSpec(String(argv['hid']), { anyAddress: argv['allowUnauthenticatedRemoteAccess'] === true }),
            stateDir: resolveStateDir(argv['stateDir'] as string | undefined),
            profile: String(argv['profile'] ?? DEFAULT_PROFILE),
            approve: parseApprove(argv['approve']),
            rememberPassphrase: rememberMode(argv['rememberPassphrase']),
          },
          { log },
        ),
      (service, log) => {
        if (argv['allowUnauthenticatedRemoteAccess'] === true && service.address !== undefined && !isLoopbackAddress(service.address.host)) {
          log.warn({ hid: service.where }, 'the device accepts anyone who reaches this address, with no authentication (--allow-unauthenticated-remote-access)');
        }
        log.info(
          { hid: service.where, store: service.storePath, authenticator: service.authenticator.descriptor.label },
          `keytunnel soft: listening on ${service.where}`,
        );
      },
    ),
};

export default softCommand;
