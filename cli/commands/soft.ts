/**
 * `keytunnel soft`: run the built-in soft authenticator as a local FIDO HID device.
 *
 *   encrypted store (soft-<profile>.kts)  →  SoftAuthenticator  →  CTAPHID device engine  →  HID face
 *
 * The face is chosen with --hid: the TCP loopback face (tests, python-fido2), /dev/uhid, or a USB/IP server.
 * User presence is a terminal prompt (--approve prompt, the default) or automatic (--approve always, for tests
 * and containers). The store passphrase comes from KEYTUNNEL_PASSPHRASE or a no-echo prompt.
 *
 * `startSoft` is the whole service with its I/O injected, so tests (and the interop suite) run it in-process;
 * the yargs handler only adds logging, signals and the exit code.
 */
import { exists } from '../exists.ts';
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import type { Authenticator } from '../../protocol/authenticator.ts';
import type { Presence } from '../../agent/authenticators/soft/ports.ts';
import { AlwaysPresence } from '../../agent/authenticators/soft/presence-always.ts';
import { createTtyPresence, type KeyInput } from '../../agent/authenticators/soft/presence-tty.ts';
import { SoftAuthenticator } from '../../agent/authenticators/soft/soft-authenticator.ts';
import { DEFAULT_PROFILE, FileStateStore, profileStorePath } from '../../agent/authenticators/soft/store-file.ts';
import { obtainPassphrase, PASSPHRASE_ENV } from '../../agent/passphrase.ts';
import { CtaphidDevice } from '../../device/ctaphid-device.ts';
import { faceFactoryFor } from '../../device/faces/factory.ts';
import { HID_SPEC_SYNTAX, parseHidSpec, type HidSpec } from '../hid-spec.ts';
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
}

export interface SoftIo {
  readonly log: Logger;
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** The terminal for the presence and passphrase prompts (default process.stdin / process.stderr). */
  readonly input?: KeyInput;
  readonly output?: NodeJS.WritableStream;
  /** Skip the passphrase source (tests). */
  readonly passphrase?: string;
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

  // Presence first: `--approve prompt` without a terminal must fail before anything else is asked.
  const presence: Presence =
    options.approve === 'always' ? new AlwaysPresence(log) : createTtyPresence({ input, output });

  const creating = !(await exists(storePath));
  const passphrase =
    io.passphrase ?? (await obtainPassphrase({ creating, what: storePath, env: io.env, input, output }));
  const store = await FileStateStore.open({ path: storePath, passphrase });
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
          'server to `usbip attach` (default 127.0.0.1:3240). Only loopback addresses are accepted.',
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
        default: 'prompt',
        describe:
          'User presence: prompt = ask on this terminal (Enter approves, Esc/n denies, 30 s timeout); ' +
          'always = approve every request without asking (tests and containers only)',
      })
      .options(logLevelOption)
      .epilogue(
        `The state is encrypted with a passphrase (scrypt + AES-256-GCM): taken from ${PASSPHRASE_ENV}, else asked ` +
          'on the terminal (twice when the store is created). Stop with Ctrl-C or SIGTERM.',
      ),
  handler: (argv: ArgumentsCamelCase) =>
    runService(
      'soft',
      argv['logLevel'] as string | undefined,
      (log) =>
        startSoft(
          {
            hid: parseHidSpec(String(argv['hid'])),
            stateDir: resolveStateDir(argv['stateDir'] as string | undefined),
            profile: String(argv['profile'] ?? DEFAULT_PROFILE),
            approve: parseApprove(argv['approve']),
          },
          { log },
        ),
      (service, log) =>
        log.info(
          { hid: service.where, store: service.storePath, authenticator: service.authenticator.descriptor.label },
          `keytunnel soft: listening on ${service.where}`,
        ),
    ),
};

export default softCommand;
