/**
 * `keytunnel install-service --agent-user [--dry-run] [--remove]`: start `keytunnel agent` at login, as the user,
 * with the user's chosen agent flags and `--approve dialog` (no terminal: approvals are desktop dialogs).
 *
 *   Linux   a systemd user unit, ~/.config/systemd/user/keytunnel-agent.service, bound to graphical-session.target;
 *           `systemctl --user daemon-reload` and `systemctl --user enable --now keytunnel-agent.service`.
 *   macOS   a LaunchAgent, ~/Library/LaunchAgents/keytunnel.agent.plist (Aqua sessions only);
 *           `launchctl bootstrap gui/<uid> <plist>`.
 *   Windows a Scheduled Task "at logon" from XML (%LOCALAPPDATA%\keytunnel\keytunnel-agent.task.xml, UTF-16 as
 *           schtasks writes them); `schtasks /Create /TN keytunnel-agent /XML <file> /F`, then `/Run`. With
 *           --hardware the task runs with highest privileges (RunLevel HighestAvailable, what `/RL HIGHEST` sets:
 *           /XML takes no /RL), because Windows 10 1903+ lets only administrators open FIDO keys; registering such
 *           a task needs an elevated prompt.
 *
 * `planAgentService` is pure (templates and the user's flags in, ordered steps out); `applyAgentServicePlan` runs
 * the steps with injected I/O, or prints them with --dry-run. `--remove` plans the reverse (stop, unregister,
 * delete the file).
 */
import { spawn } from 'node:child_process';
import { constants as fsConstants } from 'node:fs';
import { access, chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { profileStorePath } from '../../agent/authenticators/soft/store-file.ts';
import { parseEndpoint } from '../options.ts';
import { QuoteError, systemdCommandLine, windowsArg, windowsCommandLine, xmlText } from './quote.ts';

export const AGENT_UNIT = 'keytunnel-agent.service';
export const LAUNCHD_LABEL = 'keytunnel.agent';
export const TASK_NAME = 'keytunnel-agent';

export type ServicePlatform = 'linux' | 'darwin' | 'win32';

export class AgentServiceError extends Error {
  override readonly name = 'AgentServiceError';
}

/** The agent flags the user chose (what `keytunnel agent` would be given). */
export interface AgentFlags {
  readonly soft: boolean;
  readonly hardware: boolean;
  readonly listen?: string;
  readonly connect?: string;
  readonly trust: readonly string[];
  readonly name?: string;
  readonly profile?: string;
  readonly stateDir?: string;
  readonly notify: boolean;
}

/** Where the templates are and what the service runs. */
export interface AgentServiceSources {
  readonly packagingDir: string;
  /** Absolute path of the node binary. */
  readonly node: string;
  /** Absolute path of bin/keytunnel.js. */
  readonly keytunnel: string;
}

/** The user's session: where per-user files go. */
export interface AgentServiceUser {
  readonly platform: ServicePlatform;
  readonly home: string;
  /** POSIX uid (launchctl's gui/<uid> domain). */
  readonly uid?: number;
  /** Windows: DOMAIN\user, the task's principal and logon trigger. */
  readonly windowsUser?: string;
  /** Windows: %LOCALAPPDATA% (default <home>\AppData\Local). */
  readonly localAppData?: string;
}

export type Step =
  | { readonly kind: 'write'; readonly path: string; readonly content: string; readonly encoding: 'utf8' | 'utf16le-bom'; readonly mode: number; readonly what: string }
  | { readonly kind: 'delete'; readonly path: string; readonly what: string }
  /** `mayFail`: a failure is expected when there is nothing to undo (e.g. stopping a task that is not loaded). */
  | { readonly kind: 'run'; readonly argv: readonly string[]; readonly why: string; readonly mayFail?: boolean };

export interface AgentServicePlan {
  readonly platform: ServicePlatform;
  /** The installed file (unit, plist or task XML). */
  readonly file: string;
  /** The command line the service runs. */
  readonly argv: readonly string[];
  readonly steps: readonly Step[];
  /** Said after the steps (what runs, how to look at it). */
  readonly notes: readonly string[];
  readonly warnings: readonly string[];
}

const TRUST_RE = /^[A-Za-z0-9:]{1,200}$/;

/** `keytunnel agent ...` with the user's flags, validated, and `--approve dialog`. */
export function agentArguments(flags: AgentFlags): string[] {
  if (!flags.soft && !flags.hardware) throw new AgentServiceError('say what the agent exports: --soft, --hardware, or both');
  if ((flags.listen === undefined) === (flags.connect === undefined)) {
    throw new AgentServiceError('give the agent exactly one of --listen HOST:PORT or --connect HOST:PORT');
  }
  const args = ['agent'];
  if (flags.soft) args.push('--soft');
  if (flags.hardware) args.push('--hardware');
  if (flags.listen !== undefined) {
    const e = parseEndpoint(flags.listen, '--listen', false); // a service needs a port its gateways know
    args.push('--listen', formatEndpoint(e));
  }
  if (flags.connect !== undefined) args.push('--connect', formatEndpoint(parseEndpoint(flags.connect, '--connect', false)));
  for (const fp of flags.trust) {
    if (!TRUST_RE.test(fp)) throw new AgentServiceError(`--trust ${JSON.stringify(fp.slice(0, 80))} is not a fingerprint (hex, colons allowed)`);
    args.push('--trust', fp);
  }
  if (flags.name !== undefined) {
    if (flags.name.length === 0 || flags.name.length > 64 || /[\u0000-\u001f\u007f]/.test(flags.name)) {
      throw new AgentServiceError('--name must be 1-64 characters without control characters');
    }
    args.push('--name', flags.name);
  }
  if (flags.profile !== undefined) {
    profileStorePath('/', flags.profile); // throws on a bad profile name
    args.push('--profile', flags.profile);
  }
  if (flags.stateDir !== undefined) args.push('--state-dir', resolve(flags.stateDir));
  if (flags.notify) args.push('--notify');
  args.push('--approve', 'dialog');
  return args;
}

/** A command line to show (and paste): POSIX shell quoting, or the Windows C runtime's. */
export function displayCommand(argv: readonly string[], platform: ServicePlatform): string {
  if (platform === 'win32') return windowsCommandLine(argv);
  return argv.map((a) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

function formatEndpoint(e: { host: string; port: number }): string {
  return e.host.includes(':') ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`;
}

/** Replace `@NAME@` placeholders; every placeholder must have a value (values are not re-scanned). */
export function fillTemplate(template: string, vars: Readonly<Record<string, string>>, name: string): string {
  return template.replace(/@([A-Z]+)@/g, (whole, key: string) => {
    const value = vars[key];
    if (value === undefined) throw new AgentServiceError(`template ${name}: no value for ${whole}`);
    return value;
  });
}

export function installedFile(user: AgentServiceUser): string {
  switch (user.platform) {
    case 'linux':
      return join(user.home, '.config', 'systemd', 'user', AGENT_UNIT);
    case 'darwin':
      return join(user.home, 'Library', 'LaunchAgents', `${LAUNCHD_LABEL}.plist`);
    case 'win32':
      return join(user.localAppData ?? join(user.home, 'AppData', 'Local'), 'keytunnel', `${TASK_NAME}.task.xml`);
  }
}

export interface PlanOptions {
  readonly remove: boolean;
  /** --soft: whether the store passphrase is in the keychain ('remembered'), not ('missing'), or unknown (a reason). */
  readonly softPassphrase?: 'remembered' | 'missing' | { readonly unknown: string };
}

export async function planAgentService(
  flags: AgentFlags | undefined,
  sources: AgentServiceSources,
  user: AgentServiceUser,
  options: PlanOptions,
): Promise<AgentServicePlan> {
  const file = installedFile(user);
  if (options.remove) return planRemove(user, file);
  if (flags === undefined) throw new AgentServiceError('no agent flags');
  const argv = [sources.node, sources.keytunnel, ...agentArguments(flags)];
  const template = async (name: string): Promise<string> => readFile(join(sources.packagingDir, name), 'utf8');
  const warnings: string[] = [];
  const notes: string[] = [];
  if (flags.soft) {
    const s = options.softPassphrase;
    if (s === 'missing' || typeof s === 'object') {
      const remember = ['keytunnel', ...agentArguments(flags).slice(0, -2), '--remember-passphrase'];
      warnings.push(
        `the soft authenticator's passphrase ${typeof s === 'object' ? `may not be in the keychain (${s.unknown})` : 'is not in the keychain'}: ` +
          'until it is, the agent asks for it in a dialog (pinentry) or fails to start. Remember it once in a ' +
          `terminal: ${displayCommand(remember, user.platform)}`,
      );
    }
  }
  let steps: Step[];
  try {
    steps = await platformSteps(user, file, argv, flags, sources, template, notes, warnings);
  } catch (err) {
    if (err instanceof QuoteError) throw new AgentServiceError(err.message);
    throw err;
  }
  return { platform: user.platform, file, argv, steps, notes, warnings };
}

async function platformSteps(
  user: AgentServiceUser,
  file: string,
  argv: readonly string[],
  flags: AgentFlags,
  sources: AgentServiceSources,
  template: (name: string) => Promise<string>,
  notes: string[],
  warnings: string[],
): Promise<Step[]> {
  switch (user.platform) {
    case 'linux': {
      const unit = fillTemplate(await template('keytunnel-agent.service'), { EXEC: systemdCommandLine(argv), PACKAGING: sources.packagingDir }, 'keytunnel-agent.service');
      notes.push(
        'the agent starts with your graphical session (graphical-session.target); logs: journalctl --user -u keytunnel-agent',
        'status: systemctl --user status keytunnel-agent; or keytunnel doctor',
      );
      return [
        { kind: 'write', path: file, content: unit, encoding: 'utf8', mode: 0o644, what: 'systemd user unit' },
        { kind: 'run', argv: ['systemctl', '--user', 'daemon-reload'], why: 'load the unit' },
        { kind: 'run', argv: ['systemctl', '--user', 'enable', '--now', AGENT_UNIT], why: 'start it now and at every login' },
      ];
    }
    case 'darwin': {
      const uid = user.uid ?? 0;
      const log = join(user.home, 'Library', 'Logs', 'keytunnel-agent.log');
      const args = argv.map((a) => `    <string>${xmlText(a)}</string>`).join('\n');
      const plist = fillTemplate(await template('keytunnel.agent.plist'), { LABEL: LAUNCHD_LABEL, ARGS: args, LOG: xmlText(log) }, 'keytunnel.agent.plist');
      notes.push(`the agent starts at every login; logs: ${log}`, `status: launchctl print gui/${uid}/${LAUNCHD_LABEL}; or keytunnel doctor`);
      return [
        { kind: 'write', path: file, content: plist, encoding: 'utf8', mode: 0o644, what: 'LaunchAgent' },
        { kind: 'run', argv: ['launchctl', 'bootout', `gui/${uid}/${LAUNCHD_LABEL}`], why: 'unload an older copy', mayFail: true },
        { kind: 'run', argv: ['launchctl', 'bootstrap', `gui/${uid}`, file], why: 'load it now (and at every login)' },
      ];
    }
    case 'win32': {
      const windowsUser = user.windowsUser;
      if (windowsUser === undefined || windowsUser === '') throw new AgentServiceError('cannot tell the Windows user (USERNAME is not set)');
      const xml = fillTemplate(
        await template('keytunnel-agent.task.xml'),
        {
          TASKNAME: TASK_NAME,
          USERID: xmlText(windowsUser),
          RUNLEVEL: flags.hardware ? 'HighestAvailable' : 'LeastPrivilege',
          COMMAND: xmlText(windowsArg(argv[0]!)),
          ARGUMENTS: xmlText(windowsCommandLine(argv.slice(1))),
        },
        'keytunnel-agent.task.xml',
      );
      if (flags.hardware) {
        warnings.push(
          '--hardware: the task runs with highest privileges (RunLevel HighestAvailable, as schtasks /RL HIGHEST), ' +
            'because Windows 10 1903 and later let only administrators open FIDO security keys directly. Registering ' +
            'it needs this command in an elevated prompt ("Run as administrator"), and you confirm elevation at logon ' +
            'only if your account is not an administrator.',
        );
      }
      notes.push('the agent starts at every logon, in your session; status: schtasks /Query /TN keytunnel-agent /V /FO LIST; or keytunnel doctor');
      return [
        { kind: 'write', path: file, content: xml, encoding: 'utf16le-bom', mode: 0o644, what: 'Scheduled Task definition' },
        { kind: 'run', argv: ['schtasks', '/Create', '/TN', TASK_NAME, '/XML', file, '/F'], why: 'register the task (runs at logon)' },
        { kind: 'run', argv: ['schtasks', '/Run', '/TN', TASK_NAME], why: 'start it now' },
      ];
    }
  }
}

function planRemove(user: AgentServiceUser, file: string): AgentServicePlan {
  const steps: Step[] = [];
  switch (user.platform) {
    case 'linux':
      steps.push(
        { kind: 'run', argv: ['systemctl', '--user', 'disable', '--now', AGENT_UNIT], why: 'stop it and drop it from the login', mayFail: true },
        { kind: 'delete', path: file, what: 'systemd user unit' },
        { kind: 'run', argv: ['systemctl', '--user', 'daemon-reload'], why: 'forget the unit' },
      );
      break;
    case 'darwin':
      steps.push(
        { kind: 'run', argv: ['launchctl', 'bootout', `gui/${user.uid ?? 0}/${LAUNCHD_LABEL}`], why: 'stop and unload it', mayFail: true },
        { kind: 'delete', path: file, what: 'LaunchAgent' },
      );
      break;
    case 'win32':
      steps.push(
        { kind: 'run', argv: ['schtasks', '/End', '/TN', TASK_NAME], why: 'stop it', mayFail: true },
        { kind: 'run', argv: ['schtasks', '/Delete', '/TN', TASK_NAME, '/F'], why: 'unregister the task', mayFail: true },
        { kind: 'delete', path: file, what: 'Scheduled Task definition' },
      );
      break;
  }
  return { platform: user.platform, file, argv: [], steps, notes: [], warnings: [] };
}

/** The I/O the steps need. */
export interface AgentServiceIo {
  out(line: string): void;
  write(path: string, data: Uint8Array | string, mode: number): Promise<void>;
  /** True when a file was deleted, false when there was none. */
  delete(path: string): Promise<boolean>;
  /** Exit status (127 when the program cannot be started). */
  run(argv: readonly string[]): Promise<number>;
}

export function encodeFile(step: Extract<Step, { kind: 'write' }>): Uint8Array | string {
  if (step.encoding === 'utf8') return step.content;
  // Task Scheduler's own format: UTF-16LE with a byte-order mark (matches encoding="UTF-16" in the declaration).
  return Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(step.content, 'utf16le')]);
}

/** Runs (or with dryRun prints) the steps; resolves with the commands that failed unexpectedly. */
export async function applyAgentServicePlan(plan: AgentServicePlan, io: AgentServiceIo, dryRun: boolean): Promise<string[]> {
  const failed: string[] = [];
  for (const step of plan.steps) {
    if (step.kind === 'write') {
      if (dryRun) {
        io.out(`would write ${step.path} (${step.what}${step.encoding === 'utf16le-bom' ? ', UTF-16' : ''}):`);
        for (const line of step.content.trimEnd().split('\n')) io.out(`    ${line}`);
      } else {
        await io.write(step.path, encodeFile(step), step.mode);
        io.out(`wrote ${step.path} (${step.what})`);
      }
    } else if (step.kind === 'delete') {
      if (dryRun) io.out(`would delete ${step.path} (${step.what})`);
      else io.out((await io.delete(step.path)) ? `deleted ${step.path}` : `${step.path} was not there`);
    } else {
      const shown = step.argv.join(' ');
      if (dryRun) {
        io.out(`would run: ${shown}   # ${step.why}`);
        continue;
      }
      const code = await io.run(step.argv);
      if (code === 0) io.out(`ran: ${shown}`);
      else if (step.mayFail) io.out(`ran: ${shown} (exit ${code}: nothing to undo)`);
      else {
        failed.push(shown);
        io.out(`FAILED (exit ${code}): ${shown}   # ${step.why}; run it by hand`);
      }
    }
  }
  for (const w of plan.warnings) io.out(`warning: ${w}`);
  if (plan.argv.length > 0) io.out(`the service runs: ${displayCommand(plan.argv, plan.platform)}`);
  for (const n of plan.notes) io.out(n);
  return failed;
}

export function systemAgentServiceIo(out: (line: string) => void): AgentServiceIo {
  return {
    out,
    async write(path, data, mode) {
      await mkdir(dirname(path), { recursive: true, mode: 0o755 });
      await writeFile(path, data, { mode });
      await chmod(path, mode);
    },
    async delete(path) {
      try {
        await access(path, fsConstants.F_OK);
      } catch {
        return false;
      }
      await rm(path, { force: true });
      return true;
    },
    run(argv) {
      return new Promise((resolveRun) => {
        const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'inherit', 'inherit'], windowsHide: true });
        child.on('error', () => resolveRun(127));
        child.on('close', (code) => resolveRun(code ?? 1));
      });
    },
  };
}
