/**
 * `keytunnel install-service`: the plan (files, modes, baked-in paths, commands), dry-run vs. a real write into a
 * staging prefix (settings never overwritten), and the rendered units checked by systemd's own tools
 * (`systemd-analyze verify`, `systemd-sysusers --root`) on this machine.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  applyPlan,
  checkUnitPath,
  defaultSources,
  firstUnreadableByOthers,
  INSTALL_PATHS,
  InstallError,
  planInstall,
  renderTemplate,
  systemInstallIo,
  type InstallIo,
} from '../../cli/commands/install-service.ts';
import { KEYTUNNEL_HID_ID } from '../../cli/doctor/hidraw.ts';
import { DEFAULT_PRODUCT_ID, DEFAULT_VENDOR_ID } from '../../device/faces/usb-descriptors.ts';
import { REPO_ROOT } from '../vm/harness.ts';

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'kt-install-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const sources = defaultSources();

/** An InstallIo that records instead of touching anything. */
function recordingIo(existing: string[] = [], exitCode = 0) {
  const lines: string[] = [];
  const writes: string[] = [];
  const runs: string[] = [];
  const io: InstallIo = {
    out: (l) => lines.push(l),
    exists: async (p) => existing.includes(p),
    write: async (p) => void writes.push(p),
    run: async (argv) => {
      runs.push(argv.join(' '));
      return exitCode;
    },
  };
  return { io, lines, writes, runs };
}

describe('planInstall', () => {
  it('--gateway: udev rule, sysusers, modules-load, the unit and its settings file under the prefix; no commands', async () => {
    const prefix = tmp();
    const plan = await planInstall({ targets: ['gateway'], prefix }, sources);
    expect(plan.files.map((f) => f.target)).toEqual([
      INSTALL_PATHS.udevRule,
      INSTALL_PATHS.sysusers,
      INSTALL_PATHS.modulesLoad,
      INSTALL_PATHS.gatewayUnit,
      INSTALL_PATHS.gatewayEnv,
    ]);
    for (const f of plan.files) {
      expect(f.path).toBe(join(prefix, f.target));
      expect(f.content).not.toMatch(/@[A-Z]+@/);
    }
    expect(plan.commands).toEqual([]);
    const env = plan.files.find((f) => f.target === INSTALL_PATHS.gatewayEnv)!;
    expect(env.keepExisting).toBe(true);
    expect(env.mode).toBe(0o600);
    const unit = plan.files.find((f) => f.target === INSTALL_PATHS.gatewayUnit)!.content;
    expect(unit).toContain(`ExecStart=${process.execPath} ${join(REPO_ROOT, 'bin', 'keytunnel.js')} gateway --hid uhid --connect \${KEYTUNNEL_CONNECT} --trust \${KEYTUNNEL_TRUST}`);
    for (const line of ['User=keytunnel', 'SupplementaryGroups=keytunnel', 'NoNewPrivileges=yes', 'ProtectSystem=strict', 'StateDirectory=keytunnel', 'DeviceAllow=/dev/uhid rw', 'Restart=on-failure', 'EnvironmentFile=/etc/keytunnel/gateway.env']) {
      expect(unit.split('\n')).toContain(line);
    }
    expect(plan.nextSteps.join('\n')).toContain('systemctl enable --now keytunnel-gateway');
  });

  it('--soft-user: the user unit runs --approve always, and the plan warns that this is for test machines', async () => {
    const plan = await planInstall({ targets: ['soft-user'], prefix: tmp() }, sources);
    const unit = plan.files.find((f) => f.target === INSTALL_PATHS.softUserUnit)!.content;
    expect(unit).toContain(`ExecStart=${process.execPath} ${join(REPO_ROOT, 'bin', 'keytunnel.js')} soft --hid uhid --approve always`);
    expect(unit).toContain('FOR TEST MACHINES ONLY');
    expect(plan.files.some((f) => f.target === INSTALL_PATHS.gatewayUnit)).toBe(false);
    expect(plan.warnings.join('\n')).toContain('Test machines only');
  });

  it('prefix "/" plans the reload commands (nothing that enables, starts or removes)', async () => {
    const plan = await planInstall({ targets: ['gateway', 'soft-user'], prefix: '/' }, sources);
    expect(plan.files.map((f) => f.path)).toContain('/etc/systemd/system/keytunnel-gateway.service');
    expect(plan.commands.map((c) => c.argv.join(' '))).toEqual([
      'systemd-sysusers /usr/lib/sysusers.d/keytunnel.conf',
      'modprobe uhid',
      'udevadm control --reload',
      'udevadm trigger --action=change --subsystem-match=hidraw',
      'systemctl daemon-reload',
    ]);
    for (const c of plan.commands) expect(c.argv.join(' ')).not.toMatch(/enable|start|rm |remove|-r /);
  });

  it('refuses no target, and paths that cannot go into a unit unquoted', async () => {
    await expect(planInstall({ targets: [], prefix: tmp() }, sources)).rejects.toThrow(InstallError);
    await expect(planInstall({ targets: ['gateway'], prefix: tmp() }, { ...sources, keytunnel: '/home/me/my keytunnel/bin/keytunnel.js' })).rejects.toThrow(
      /without spaces/,
    );
    for (const bad of ['relative/bin', '/a%b', '/a$b', '/a"b', '/a\\b', '/a\nb']) expect(() => checkUnitPath(bad, 'x')).toThrow(InstallError);
    expect(checkUnitPath('/opt/keytunnel-1.0/bin/keytunnel.js', 'x')).toBe('/opt/keytunnel-1.0/bin/keytunnel.js');
  });

  it('renderTemplate fills every placeholder and refuses an unknown one', () => {
    expect(renderTemplate('a @NODE@ b @NODE@', { NODE: '/n' }, 't')).toBe('a /n b /n');
    expect(() => renderTemplate('@NOPE@', {}, 't')).toThrow(/no value for @NOPE@/);
  });

  it("warns when the service user could not read the checkout", async () => {
    const dir = tmp();
    chmodSync(dir, 0o755); // mkdtemp makes it 0700
    mkdirSync(join(dir, 'private'));
    writeFileSync(join(dir, 'private', 'keytunnel.js'), '');
    chmodSync(join(dir, 'private'), 0o700);
    expect(await firstUnreadableByOthers(join(dir, 'private', 'keytunnel.js'))).toBe(join(dir, 'private'));
    const plan = await planInstall({ targets: ['gateway'], prefix: tmp() }, { ...sources, keytunnel: join(dir, 'private', 'keytunnel.js') });
    expect(plan.warnings.join('\n')).toContain('not readable by other users');
    chmodSync(join(dir, 'private'), 0o755);
  });
});

describe('applyPlan', () => {
  it('--dry-run writes nothing and runs nothing, but prints every file and command', async () => {
    const plan = await planInstall({ targets: ['gateway'], prefix: '/' }, sources);
    const { io, lines, writes, runs } = recordingIo();
    const result = await applyPlan(plan, io, true);
    expect(writes).toEqual([]);
    expect(runs).toEqual([]);
    const text = lines.join('\n');
    expect(text).toContain('would write /etc/udev/rules.d/70-keytunnel.rules (mode 644');
    expect(text).toContain('would write /etc/keytunnel/gateway.env (mode 600');
    expect(text).toContain('    KERNEL=="uhid", GROUP="keytunnel", MODE="0660"');
    expect(text).toContain('would run: systemctl daemon-reload');
    expect(result.written).toHaveLength(5);
  });

  it('runs the commands of a live install and reports the ones that fail', async () => {
    const plan = await planInstall({ targets: ['gateway'], prefix: '/' }, sources);
    const { io, runs, lines } = recordingIo([], 1);
    const result = await applyPlan(plan, io, false);
    expect(runs).toHaveLength(5);
    expect(result.failedCommands).toHaveLength(5);
    expect(lines.join('\n')).toContain('FAILED (exit 1): udevadm control --reload');
  });

  it('writes into a staging prefix with the planned modes; a second run keeps the edited settings file', async () => {
    const prefix = tmp();
    const plan = await planInstall({ targets: ['gateway', 'soft-user'], prefix }, sources);
    const lines: string[] = [];
    const first = await applyPlan(plan, systemInstallIo((l) => lines.push(l)), false);
    expect(first.written).toHaveLength(6);
    expect(lines).toContain(`no commands run: --prefix ${prefix} is not the live system`);
    const env = join(prefix, INSTALL_PATHS.gatewayEnv);
    expect(statSync(env).mode & 0o777).toBe(0o600);
    expect(statSync(join(prefix, INSTALL_PATHS.udevRule)).mode & 0o777).toBe(0o644);
    writeFileSync(env, 'KEYTUNNEL_CONNECT=10.0.0.1:7000\n');
    writeFileSync(join(prefix, INSTALL_PATHS.gatewayUnit), 'stale');
    const second = await applyPlan(plan, systemInstallIo(() => {}), false);
    expect(second.kept).toEqual([env]);
    expect(readFileSync(env, 'utf8')).toBe('KEYTUNNEL_CONNECT=10.0.0.1:7000\n');
    expect(readFileSync(join(prefix, INSTALL_PATHS.gatewayUnit), 'utf8')).toContain('[Service]');
  });
});

describe('the packaging files, checked by the real tools', () => {
  async function staged(): Promise<string> {
    const prefix = tmp();
    await applyPlan(await planInstall({ targets: ['gateway', 'soft-user'], prefix }, sources), systemInstallIo(() => {}), false);
    return prefix;
  }

  it('systemd-analyze verify accepts the gateway system unit without a warning', async () => {
    const prefix = await staged();
    const r = spawnSync('systemd-analyze', ['verify', join(prefix, INSTALL_PATHS.gatewayUnit)], { encoding: 'utf8' });
    expect(r.error).toBeUndefined();
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
  });

  it('systemd-analyze --user verify accepts the soft user unit without a warning', async () => {
    const prefix = await staged();
    const runtime = tmp();
    const r = spawnSync('systemd-analyze', ['--user', 'verify', join(prefix, INSTALL_PATHS.softUserUnit)], {
      encoding: 'utf8',
      env: { ...process.env, XDG_RUNTIME_DIR: runtime },
    });
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
  });

  it('systemd-analyze verify does flag a misspelt directive (the check above has teeth)', async () => {
    const prefix = await staged();
    const unit = join(prefix, INSTALL_PATHS.gatewayUnit);
    writeFileSync(unit, readFileSync(unit, 'utf8').replace('NoNewPrivileges=', 'NoNewPrivilegs='));
    const r = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8' });
    expect(r.stderr).toContain("Unknown key 'NoNewPrivilegs'");
  });

  it('systemd-sysusers --root creates the keytunnel user and group from the sysusers file', async () => {
    const prefix = await staged();
    const root = tmp();
    mkdirSync(join(root, 'etc'));
    const r = spawnSync('systemd-sysusers', [`--root=${root}`, join(prefix, INSTALL_PATHS.sysusers)], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(readFileSync(join(root, 'etc', 'group'), 'utf8')).toMatch(/^keytunnel:x:\d+:/m);
    expect(readFileSync(join(root, 'etc', 'passwd'), 'utf8')).toMatch(/^keytunnel:x:\d+:\d+:keytunnel gateway:\/var\/lib\/keytunnel:\/usr\/sbin\/nologin$/m);
  });

  it("the udev rule matches the uhid face's vendor/product and grants the keytunnel group /dev/uhid", () => {
    const rules = readFileSync(join(REPO_ROOT, 'packaging', '70-keytunnel.rules'), 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '' && !l.startsWith('#'));
    const hex4 = (n: number) => n.toString(16).toUpperCase().padStart(4, '0');
    const kernels = `0003:${hex4(DEFAULT_VENDOR_ID)}:${hex4(DEFAULT_PRODUCT_ID)}.*`;
    expect(KEYTUNNEL_HID_ID.endsWith(`${hex4(DEFAULT_VENDOR_ID).padStart(8, '0')}:${hex4(DEFAULT_PRODUCT_ID).padStart(8, '0')}`)).toBe(true);
    expect(rules).toEqual([
      `SUBSYSTEM=="hidraw", KERNELS=="${kernels}", TAG+="uaccess", GROUP="keytunnel", MODE="0660"`,
      'KERNEL=="uhid", GROUP="keytunnel", MODE="0660", OPTIONS+="static_node=uhid"',
    ]);
  });
});

describe('keytunnel install-service (the command)', () => {
  const cli = (args: string[]) =>
    spawnSync(process.execPath, [join(REPO_ROOT, 'bin', 'keytunnel.js'), 'install-service', ...args], { encoding: 'utf8', timeout: 30_000 });

  it('--prefix DIR writes the files, runs nothing, exits 0', () => {
    const prefix = tmp();
    const r = cli(['--gateway', '--prefix', prefix]);
    expect(r.status).toBe(0);
    expect(existsSync(join(prefix, INSTALL_PATHS.gatewayUnit))).toBe(true);
    expect(existsSync(join(prefix, INSTALL_PATHS.softUserUnit))).toBe(false);
    expect(r.stdout).toContain('no commands run');
  });

  it('--dry-run --prefix DIR writes nothing', () => {
    const prefix = tmp();
    const r = cli(['--soft-user', '--dry-run', '--prefix', prefix]);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`would write ${join(prefix, INSTALL_PATHS.softUserUnit)}`);
    expect(existsSync(join(prefix, 'etc'))).toBe(false);
  });

  it('without --gateway or --soft-user: exit 2 and says what to name', () => {
    const r = cli(['--prefix', tmp()]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--gateway, --soft-user');
  });
});
