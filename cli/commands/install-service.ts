/**
 * `keytunnel install-service --agent-user [agent flags] [--dry-run] [--remove]`: start `keytunnel agent` at login
 * as the user (systemd user unit, LaunchAgent or Scheduled Task), see cli/agent-service/plan.ts.
 *
 * `keytunnel install-service [--gateway] [--soft-user] [--dry-run] [--prefix DIR]`: install keytunnel like a
 * system tool on Linux — the udev rule (packaging/70-keytunnel.rules), the keytunnel user and group
 * (sysusers.d), uhid at boot (modules-load.d), the gateway's system unit and its settings file, and/or the soft
 * authenticator's user unit — with this checkout's absolute `bin/keytunnel.js` and the running node baked in.
 * Then `systemd-sysusers`, `modprobe uhid`, `udevadm control --reload` and `systemctl daemon-reload`.
 *
 * Never destructive: the settings file (/etc/keytunnel/gateway.env) is written only when it does not exist, no
 * service is enabled or started (the next steps are printed), nothing is removed. `--dry-run` prints every file
 * and command instead. With `--prefix` other than "/" the files go under that directory and no command runs (a
 * staging tree for packagers and tests).
 *
 * `planInstall` (pure: templates in, files + commands out) and `applyPlan` (I/O injected) are the API; the yargs
 * handler only wires them to the real file system and process runner.
 */
import { spawn } from 'node:child_process';
import { constants as fsConstants, readFileSync } from 'node:fs';
import { access, mkdir, readFile, stat, writeFile, chmod } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';

export type InstallTarget = 'gateway' | 'soft-user';

/** Where the templates live and which absolute paths get baked into the units. */
export interface InstallSources {
  /** The packaging/ directory of this checkout. */
  readonly packagingDir: string;
  /** Absolute path of the node binary the units run. */
  readonly node: string;
  /** Absolute path of this checkout's bin/keytunnel.js. */
  readonly keytunnel: string;
}

export interface InstallOptions {
  readonly targets: readonly InstallTarget[];
  /** Root of the installation ("/" for a real install). */
  readonly prefix: string;
}

export interface PlannedFile {
  /** Absolute path on the target system (without the prefix). */
  readonly target: string;
  /** Where it is written (the prefix joined with target). */
  readonly path: string;
  readonly content: string;
  readonly mode: number;
  /** A settings file the user edits: written only when absent. */
  readonly keepExisting: boolean;
  readonly what: string;
}

export interface PlannedCommand {
  readonly argv: readonly string[];
  readonly why: string;
}

export interface InstallPlan {
  readonly prefix: string;
  readonly files: readonly PlannedFile[];
  /** Commands to run after the files are written; empty when the prefix is not "/". */
  readonly commands: readonly PlannedCommand[];
  /** What the user does next (edit settings, enable units). */
  readonly nextSteps: readonly string[];
  /** Cautions (e.g. the checkout is not readable by the service user). */
  readonly warnings: readonly string[];
}

export class InstallError extends Error {
  override readonly name = 'InstallError';
}

/** Installed locations (FHS + systemd conventions: admin-owned files in /etc, vendor sysusers in /usr/lib). */
export const INSTALL_PATHS = {
  udevRule: '/etc/udev/rules.d/70-keytunnel.rules',
  sysusers: '/usr/lib/sysusers.d/keytunnel.conf',
  modulesLoad: '/etc/modules-load.d/keytunnel.conf',
  gatewayUnit: '/etc/systemd/system/keytunnel-gateway.service',
  gatewayEnv: '/etc/keytunnel/gateway.env',
  softUserUnit: '/etc/systemd/user/keytunnel-soft.service',
} as const;

/**
 * The checkout this code runs from: the nearest directory above this module holding keytunnel's package.json.
 * Found by walking up rather than a fixed `../..`, because the module runs both from `cli/commands/` (tsx) and
 * from a chunk in `dist/` (the prebuilt bundle).
 */
function findRepoRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: unknown };
      if (pkg.name === 'keytunnel') return dir;
    } catch {
      // no (readable) package.json here: keep walking up
    }
    if (dirname(dir) === dir) throw new InstallError(`cannot find keytunnel's package.json above ${from}`);
  }
}

let cachedRepoRoot: string | undefined;
function repoRoot(): string {
  cachedRepoRoot ??= findRepoRoot(dirname(fileURLToPath(import.meta.url)));
  return cachedRepoRoot;
}

/** This checkout's templates, bin/keytunnel.js and the node running now. */
export function defaultSources(): InstallSources {
  return { packagingDir: join(repoRoot(), 'packaging'), node: process.execPath, keytunnel: join(repoRoot(), 'bin', 'keytunnel.js') };
}

/**
 * Paths baked into unit files must survive systemd's command-line parsing unquoted: no whitespace, quotes,
 * backslashes, `%` (specifiers) or `$` (variable expansion). A checkout in such a path is refused, not escaped.
 */
const SAFE_UNIT_PATH = /^\/[A-Za-z0-9._+\-@/:,=]*$/;

export function checkUnitPath(path: string, what: string): string {
  if (!SAFE_UNIT_PATH.test(path) || path.length > 4096) {
    throw new InstallError(
      `${what} ${JSON.stringify(path.slice(0, 200))} cannot go into a systemd unit as is: use an absolute path without ` +
        'spaces, quotes, % or $ (move the checkout, or symlink it from such a path)',
    );
  }
  return path;
}

/** Replace `@NAME@` placeholders; every placeholder in the template must have a value. */
export function renderTemplate(template: string, vars: Readonly<Record<string, string>>, name: string): string {
  return template.replace(/@([A-Z]+)@/g, (whole, key: string) => {
    const value = vars[key];
    if (value === undefined) throw new InstallError(`template ${name}: no value for ${whole}`);
    return value;
  });
}

async function template(sources: InstallSources, file: string, vars: Readonly<Record<string, string>>): Promise<string> {
  const text = await readFile(join(sources.packagingDir, file), 'utf8');
  return renderTemplate(text, vars, file);
}

export function normalizePrefix(prefix: string): string {
  if (prefix === '') throw new InstallError('--prefix must not be empty');
  const abs = resolve(prefix);
  return abs;
}

/** What `install-service` would write and run, from the templates in `sources.packagingDir`. */
export async function planInstall(options: InstallOptions, sources: InstallSources): Promise<InstallPlan> {
  if (options.targets.length === 0) throw new InstallError('name what to install: --gateway, --soft-user, or both');
  const prefix = normalizePrefix(options.prefix);
  const vars = {
    NODE: checkUnitPath(sources.node, 'node'),
    KEYTUNNEL: checkUnitPath(sources.keytunnel, 'bin/keytunnel.js'),
    PACKAGING: checkUnitPath(sources.packagingDir, 'packaging/'),
  };
  const file = (target: string, content: string, mode: number, what: string, keepExisting = false): PlannedFile => ({
    target,
    path: prefix === '/' ? target : join(prefix, target),
    content,
    mode,
    keepExisting,
    what,
  });
  const files: PlannedFile[] = [
    file(INSTALL_PATHS.udevRule, await template(sources, '70-keytunnel.rules', vars), 0o644, 'udev rule: /dev/uhid and the virtual keys for the keytunnel group'),
    file(INSTALL_PATHS.sysusers, await template(sources, 'keytunnel.sysusers', vars), 0o644, 'the keytunnel user and group'),
    file(INSTALL_PATHS.modulesLoad, await template(sources, 'modules-load.conf', vars), 0o644, 'load uhid at boot'),
  ];
  const wantGateway = options.targets.includes('gateway');
  const wantSoft = options.targets.includes('soft-user');
  if (wantGateway) {
    files.push(file(INSTALL_PATHS.gatewayUnit, await template(sources, 'keytunnel-gateway.service', vars), 0o644, 'gateway system unit'));
    // Holds the agent's fingerprint and address (not secrets, but nobody else needs them): root-only, 0600.
    files.push(file(INSTALL_PATHS.gatewayEnv, await template(sources, 'gateway.env', vars), 0o600, 'gateway settings (edit me)', true));
  }
  if (wantSoft) {
    files.push(file(INSTALL_PATHS.softUserUnit, await template(sources, 'keytunnel-soft.service', vars), 0o644, 'soft authenticator user unit (test machines)'));
  }

  const commands: PlannedCommand[] =
    prefix !== '/'
      ? []
      : [
          { argv: ['systemd-sysusers', INSTALL_PATHS.sysusers], why: 'create the keytunnel user and group' },
          { argv: ['modprobe', 'uhid'], why: 'load uhid now (modules-load.d loads it at boot)' },
          { argv: ['udevadm', 'control', '--reload'], why: 'load the udev rule' },
          { argv: ['udevadm', 'trigger', '--action=change', '--subsystem-match=hidraw'], why: 'apply it to virtual keys already present' },
          { argv: ['systemctl', 'daemon-reload'], why: 'load the unit files' },
        ];

  const nextSteps: string[] = [];
  if (wantGateway) {
    nextSteps.push(
      `edit ${INSTALL_PATHS.gatewayEnv}: KEYTUNNEL_CONNECT (the agent's HOST:PORT) and KEYTUNNEL_TRUST (its fingerprint, \`keytunnel id\` on the agent)`,
      `sudo systemctl enable --now keytunnel-gateway`,
      `print the gateway's fingerprint for the agent: sudo -u keytunnel ${vars.NODE} ${vars.KEYTUNNEL} id --state-dir /var/lib/keytunnel`,
      'check the setup: keytunnel doctor --state-dir /var/lib/keytunnel --connect <agent HOST:PORT>',
    );
  }
  if (wantSoft) {
    nextSteps.push(
      'add yourself to the keytunnel group (sudo usermod -aG keytunnel $USER) and log in again',
      'put KEYTUNNEL_PASSPHRASE=... in ~/.config/keytunnel/soft.env (chmod 600)',
      'as your user: systemctl --user enable --now keytunnel-soft',
    );
  }
  const warnings: string[] = [];
  if (wantSoft) {
    warnings.push(
      'the soft user unit runs with --approve always (a user service has no terminal to ask on): every local ' +
        'process that can open the device gets signatures without a touch. Test machines only.',
    );
  }
  if (wantGateway) {
    const unreadable = await firstUnreadableByOthers(sources.keytunnel);
    if (unreadable !== undefined) {
      warnings.push(
        `${unreadable} is not readable by other users, so the keytunnel service user cannot run ${sources.keytunnel}: ` +
          'put the checkout somewhere world-readable (e.g. /opt/keytunnel)',
      );
    }
  }
  return { prefix, files, commands, nextSteps, warnings };
}

/** The first path component (the file, or a directory above it) that "other" users cannot read/traverse. */
export async function firstUnreadableByOthers(file: string): Promise<string | undefined> {
  const chain: string[] = [];
  for (let p = resolve(file); ; p = dirname(p)) {
    chain.unshift(p);
    if (dirname(p) === p) break;
  }
  for (const p of chain) {
    let mode: number;
    try {
      mode = (await stat(p)).mode;
    } catch {
      return p;
    }
    const need = p === resolve(file) ? 0o004 : 0o001; // the file readable, directories traversable
    if ((mode & need) === 0) return p;
  }
  return undefined;
}

/** The I/O `applyPlan` needs. */
export interface InstallIo {
  out(line: string): void;
  exists(path: string): Promise<boolean>;
  write(path: string, content: string, mode: number): Promise<void>;
  /** Run a command; resolves with its exit status (127 when it cannot be started). */
  run(argv: readonly string[]): Promise<number>;
}

export interface InstallResult {
  readonly written: readonly string[];
  readonly kept: readonly string[];
  readonly failedCommands: readonly string[];
}

/** Write the files and run the commands of `plan` (or, with dryRun, print them). */
export async function applyPlan(plan: InstallPlan, io: InstallIo, dryRun: boolean): Promise<InstallResult> {
  const written: string[] = [];
  const kept: string[] = [];
  const failedCommands: string[] = [];
  const verb = dryRun ? 'would write' : 'wrote';
  for (const f of plan.files) {
    if (f.keepExisting && (await io.exists(f.path))) {
      kept.push(f.path);
      io.out(`kept ${f.path} (already there; your settings are not touched)`);
      continue;
    }
    if (dryRun) {
      io.out(`${verb} ${f.path} (mode ${f.mode.toString(8)}, ${f.what}):`);
      for (const line of f.content.trimEnd().split('\n')) io.out(`    ${line}`);
    } else {
      await io.write(f.path, f.content, f.mode);
      io.out(`${verb} ${f.path} (${f.what})`);
    }
    written.push(f.path);
  }
  if (plan.commands.length === 0) {
    io.out(`no commands run: --prefix ${plan.prefix} is not the live system`);
  }
  for (const c of plan.commands) {
    const shown = c.argv.join(' ');
    if (dryRun) {
      io.out(`would run: ${shown}   # ${c.why}`);
      continue;
    }
    const code = await io.run(c.argv);
    if (code === 0) io.out(`ran: ${shown}`);
    else {
      failedCommands.push(shown);
      io.out(`FAILED (exit ${code}): ${shown}   # ${c.why}; run it by hand`);
    }
  }
  for (const w of plan.warnings) io.out(`warning: ${w}`);
  if (plan.nextSteps.length > 0) {
    io.out('next:');
    plan.nextSteps.forEach((s, i) => io.out(`  ${i + 1}. ${s}`));
  }
  return { written, kept, failedCommands };
}

/** The real file system and process runner. */
export function systemInstallIo(out: (line: string) => void): InstallIo {
  return {
    out,
    async exists(path) {
      try {
        await access(path, fsConstants.F_OK);
        return true;
      } catch {
        return false;
      }
    },
    async write(path, content, mode) {
      await mkdir(dirname(path), { recursive: true, mode: 0o755 });
      await writeFile(path, content, { mode });
      await chmod(path, mode); // writeFile's mode applies only to new files
    },
    run(argv) {
      return new Promise((resolveRun) => {
        const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'inherit', 'inherit'] });
        child.on('error', () => resolveRun(127));
        child.on('close', (code) => resolveRun(code ?? 1));
      });
    },
  };
}

export function targetsFrom(args: { gateway?: boolean; softUser?: boolean }): InstallTarget[] {
  const targets: InstallTarget[] = [];
  if (args.gateway === true) targets.push('gateway');
  if (args.softUser === true) targets.push('soft-user');
  return targets;
}

export const installServiceCommand: CommandModule = {
  command: 'install-service',
  describe: 'Start the agent at login (--agent-user: Linux, macOS, Windows), or install the udev rule and systemd units (Linux)',
  builder: (yargs: Argv) =>
    yargs
      .option('agent-user', {
        type: 'boolean',
        default: false,
        describe:
          'Start `keytunnel agent` at login, as you (Linux: systemd user unit; macOS: LaunchAgent; Windows: Scheduled ' +
          'Task at logon), with the agent flags below and --approve dialog. No root needed.',
      })
      .option('remove', { type: 'boolean', default: false, describe: 'With --agent-user: stop and remove the login service' })
      .option('soft', { type: 'boolean', default: false, describe: 'Agent flag (--agent-user): export the soft authenticator' })
      .option('hardware', { type: 'boolean', default: false, describe: 'Agent flag (--agent-user): export plugged-in FIDO keys' })
      .option('listen', { type: 'string', describe: 'Agent flag (--agent-user): wait for gateways on HOST:PORT' })
      .option('connect', { type: 'string', describe: 'Agent flag (--agent-user): dial the gateway at HOST:PORT' })
      .option('trust', { type: 'string', array: true, describe: 'Agent flag (--agent-user): gateway fingerprint to accept (repeatable)' })
      .option('name', { type: 'string', describe: 'Agent flag (--agent-user): display name announced to gateways' })
      .option('profile', { type: 'string', describe: 'Agent flag (--agent-user): which soft authenticator' })
      .option('state-dir', { type: 'string', describe: 'Agent flag (--agent-user): the agent state directory' })
      .option('notify', { type: 'boolean', default: false, describe: 'Agent flag (--agent-user): also show desktop notifications' })
      .option('gateway', { type: 'boolean', default: false, describe: 'Install keytunnel-gateway.service (inside the VM)' })
      .option('soft-user', {
        type: 'boolean',
        default: false,
        describe: 'Install the keytunnel-soft user unit (runs with --approve always: test machines only)',
      })
      .option('dry-run', { type: 'boolean', default: false, describe: 'Print every file and command; change nothing' })
      .option('prefix', {
        type: 'string',
        default: '/',
        describe: 'Install under this root; anything but "/" writes the files only and runs no command',
      })
      .epilogue(
        'With --gateway/--soft-user: never overwrites /etc/keytunnel/gateway.env, never enables or starts a service, ' +
          'never removes anything; a real install (--prefix /) needs root. With --agent-user: writes one file in your ' +
          'home and enables it (systemctl --user, launchctl, schtasks); --remove undoes it.',
      ),
  handler: async (argv: ArgumentsCamelCase) => {
    const out = (line: string): void => console.log(line);
    if (argv['agentUser'] === true) {
      const { runAgentUserInstall } = await import('../agent-service/command.ts');
      process.exitCode = await runAgentUserInstall(argv, out);
      return;
    }
    try {
      if (argv['remove'] === true) throw new InstallError('--remove undoes --agent-user only (say --agent-user --remove)');
      if (process.platform !== 'linux') throw new InstallError(`install-service is for Linux (this is ${process.platform})`);
      const options: InstallOptions = {
        targets: targetsFrom({ gateway: argv['gateway'] === true, softUser: argv['softUser'] === true }),
        prefix: String(argv['prefix'] ?? '/'),
      };
      const dryRun = argv['dryRun'] === true;
      const plan = await planInstall(options, defaultSources());
      if (plan.prefix === '/' && !dryRun && process.getuid?.() !== 0) {
        throw new InstallError('installing into / needs root: run it with sudo (or try --dry-run first)');
      }
      const result = await applyPlan(plan, systemInstallIo(out), dryRun);
      process.exitCode = result.failedCommands.length > 0 ? 1 : 0;
    } catch (err) {
      console.error(`keytunnel install-service: ${(err as Error).message}`);
      process.exitCode = err instanceof InstallError ? 2 : 1;
    }
  },
};

export default installServiceCommand;
