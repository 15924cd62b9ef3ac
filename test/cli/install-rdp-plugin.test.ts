/**
 * `keytunnel install-rdp-plugin`: finds FreeRDP 2's plugin directory through pkg-config, --dry-run changes
 * nothing, and a real build (gcc + freerdp2-dev, installed by scripts/provision.sh) installs a shared library
 * exporting DVCPluginEntry, FreeRDP 2's entry point for a dynamic virtual channel plugin.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { freerdpPluginDir, installRdpPlugin, PLUGIN_FILE, planRdpPlugin } from '../../cli/commands/install-rdp-plugin.ts';

const BIN = fileURLToPath(new URL('../../bin/keytunnel.js', import.meta.url));
const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('keytunnel install-rdp-plugin', () => {
  it("installs into <libdir>/freerdp2, FreeRDP 2's plugin directory, as libkeytunnel-client.so", async () => {
    const libdir = spawnSync('pkg-config', ['--variable=libdir', 'freerdp2'], { encoding: 'utf8' }).stdout.trim();
    expect(await freerdpPluginDir()).toBe(join(libdir, 'freerdp2'));
    const plan = await planRdpPlugin();
    expect(plan.target).toBe(join(libdir, 'freerdp2', 'libkeytunnel-client.so'));
    expect(existsSync(join(plan.sourceDir, 'keytunnel-dvc.c'))).toBe(true);
  });

  it('--dry-run prints the plan and writes nothing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kt-rdp-plugin-dry-'));
    dirs.push(dir);
    const target = join(dir, 'plugins');
    const r = spawnSync(process.execPath, [BIN, 'install-rdp-plugin', '--dry-run', '--plugin-dir', target], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain(`would install it as ${join(target, PLUGIN_FILE)}`);
    expect(existsSync(target)).toBe(false);
  }, 60_000);

  it('builds and installs a plugin exporting DVCPluginEntry', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kt-rdp-plugin-'));
    dirs.push(dir);
    const plan = await planRdpPlugin(join(dir, 'freerdp2'));
    await installRdpPlugin(plan);
    expect(statSync(plan.target).mode & 0o777).toBe(0o644);
    const symbols = spawnSync('nm', ['-D', '--defined-only', plan.target], { encoding: 'utf8' }).stdout;
    expect(symbols).toMatch(/ T DVCPluginEntry$/m);
  }, 60_000);
});
