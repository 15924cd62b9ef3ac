/**
 * `keytunnel install-rdp-plugin [--dry-run] [--plugin-dir DIR]` (on the laptop): build keytunnel's FreeRDP 2 client
 * plugin (packaging/rdp/freerdp2/keytunnel-dvc.c, a dumb pipe from the RDP dynamic virtual channel "keytunnel" to
 * the agent's --listen on 127.0.0.1) and install it where FreeRDP 2 loads plugins from:
 * `<libdir>/freerdp2/libkeytunnel-client.so` (<libdir> from `pkg-config --variable=libdir freerdp2`; root owns it).
 * Then connect with `xfreerdp ... /dvc:keytunnel,PORT` (PORT = the agent's --listen port) and run the gateway in the
 * VM with `--connect rdp:keytunnel`.
 *
 * Needs a C compiler, pkg-config and FreeRDP 2's headers (Debian/Ubuntu: gcc pkg-config freerdp2-dev). `--dry-run`
 * prints what would be built and where it would go, and changes nothing.
 */
import { spawn } from 'node:child_process';
import { constants as fsConstants } from 'node:fs';
import { access, copyFile, chmod, mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { RDP_CHANNEL_NAME } from '../../tunnel/dial-target.ts';
import { defaultSources } from './install-service.ts';
import { KeytunnelError } from '../../protocol/errors.ts';

/** The file name FreeRDP 2 looks for: lib<channel>-client.so (client/common/addin.c). */
export const PLUGIN_FILE = `lib${RDP_CHANNEL_NAME}-client.so`;

export class RdpPluginError extends KeytunnelError {
  override readonly name = 'RdpPluginError';
  readonly code = 'RDP_PLUGIN';
}

export interface RdpPluginPlan {
  /** packaging/rdp/freerdp2 of this checkout. */
  readonly sourceDir: string;
  /** The directory FreeRDP 2 loads plugins from. */
  readonly pluginDir: string;
  /** The installed file. */
  readonly target: string;
}

export interface ProcessResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function run(argv: readonly string[]): Promise<ProcessResult> {
  return new Promise((resolve) => {
    const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.once('error', (err) => resolve({ code: null, stdout, stderr: err.message }));
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** FreeRDP 2's plugin directory: `<libdir>/freerdp2` (its compiled-in FREERDP_ADDIN_PATH under the prefix). */
export async function freerdpPluginDir(): Promise<string> {
  const r = await run(['pkg-config', '--variable=libdir', 'freerdp2']);
  const libdir = r.stdout.trim();
  if (r.code !== 0 || !libdir.startsWith('/')) {
    throw new RdpPluginError(
      'cannot find FreeRDP 2 (pkg-config freerdp2 failed): install its development files (Debian/Ubuntu: ' +
        'apt-get install freerdp2-dev pkg-config gcc), or name the directory with --plugin-dir',
    );
  }
  return join(libdir, 'freerdp2');
}

export async function planRdpPlugin(pluginDir?: string): Promise<RdpPluginPlan> {
  const dir = pluginDir ?? (await freerdpPluginDir());
  return { sourceDir: join(defaultSources().packagingDir, 'rdp', 'freerdp2'), pluginDir: dir, target: join(dir, PLUGIN_FILE) };
}

/** What --dry-run prints. */
export function describePlan(plan: RdpPluginPlan): string {
  return [
    `would build ${join(plan.sourceDir, 'keytunnel-dvc.c')} with ${join(plan.sourceDir, 'build.sh')}`,
    `would install it as ${plan.target} (mode 0644)`,
    '',
  ].join('\n');
}

/** Build the plugin into a temporary directory and install it (atomically: copy beside, then rename). */
export async function installRdpPlugin(plan: RdpPluginPlan): Promise<void> {
  const build = await mkdtemp(join(tmpdir(), 'kt-rdp-plugin-'));
  try {
    const r = await run(['sh', join(plan.sourceDir, 'build.sh'), build]);
    if (r.code !== 0) throw new RdpPluginError(`building the FreeRDP plugin failed:\n${(r.stderr || r.stdout).trim().slice(0, 4000)}`);
    try {
      await mkdir(plan.pluginDir, { recursive: true });
      await access(plan.pluginDir, fsConstants.W_OK);
    } catch {
      throw new RdpPluginError(`${plan.pluginDir} is not writable: run as root (sudo keytunnel install-rdp-plugin)`);
    }
    const staging = join(dirname(plan.target), `.${PLUGIN_FILE}.${process.pid}`);
    await copyFile(join(build, PLUGIN_FILE), staging);
    await chmod(staging, 0o644);
    await rename(staging, plan.target);
  } finally {
    await rm(build, { recursive: true, force: true });
  }
}

export function usageAfterInstall(plan: RdpPluginPlan): string {
  return [
    `installed ${plan.target}`,
    'next:',
    '  on this machine:  keytunnel agent --soft --listen 127.0.0.1:PORT --trust <gateway fingerprint>',
    `  connect with:     xfreerdp /v:HOST ... /dvc:${RDP_CHANNEL_NAME},PORT`,
    `  in the VM:        keytunnel gateway --connect rdp:${RDP_CHANNEL_NAME} --hid uhid --trust <agent fingerprint>`,
    '',
  ].join('\n');
}

export const installRdpPluginCommand: CommandModule = {
  command: 'install-rdp-plugin',
  describe: "On the laptop: build and install the FreeRDP 2 plugin that carries the tunnel over the RDP connection",
  builder: (yargs: Argv) =>
    yargs
      .option('dry-run', { type: 'boolean', default: false, describe: 'Print what would be built and installed; change nothing' })
      .option('plugin-dir', {
        type: 'string',
        describe: "Install into DIR instead of FreeRDP 2's plugin directory (<libdir>/freerdp2)",
      }),
  handler: async (argv: ArgumentsCamelCase) => {
    const plan = await planRdpPlugin(argv['pluginDir'] as string | undefined);
    if (argv['dryRun'] === true) {
      process.stdout.write(describePlan(plan));
      return;
    }
    await installRdpPlugin(plan);
    process.stdout.write(usageAfterInstall(plan));
  },
};

export default installRdpPluginCommand;
