/**
 * The single executables: `npm run build:exe` builds both; the Linux one, copied alone into an empty directory
 * and run with a PATH that holds no node (and an empty HOME), prints its version and commit and runs the demo
 * ceremony; a native addon that cannot be loaded disables only the hardware-key path, with a clear message.
 * (The Windows one is run under Wine by test/windows/; the Linux one in the qemu guest by test/vm/exe.test.ts.)
 */
import { execFileSync, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkoutCommit, REPO_ROOT } from './tree-copy.ts';

const EXE_DIR = join(REPO_ROOT, 'dist', 'exe');
const FUSE_SET = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2:1';
const version = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const work = mkdtempSync(join(tmpdir(), 'keytunnel-exe-'));
const emptyBin = join(work, 'empty-bin');
const home = join(work, 'home');
const exe = join(work, 'alone', 'keytunnel-linux-x64');

function runExe(args: string[], env: Record<string, string> = {}): SpawnSyncReturns<string> {
  return spawnSync(exe, args, {
    cwd: join(work, 'alone'),
    encoding: 'utf8',
    timeout: 60_000,
    env: { PATH: emptyBin, HOME: home, ...env },
  });
}

beforeAll(() => {
  execFileSync(process.execPath, [join(REPO_ROOT, 'scripts', 'build-exe.mjs')], { cwd: REPO_ROOT, stdio: 'ignore', timeout: 600_000 });
  for (const dir of [emptyBin, home, join(work, 'alone')]) mkdirSync(dir, { recursive: true });
  copyFileSync(join(EXE_DIR, 'keytunnel-linux-x64'), exe);
  execFileSync('chmod', ['755', exe]);
}, 620_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('npm run build:exe', () => {
  it('writes both executables with the app injected, and SHA256SUMS that verifies them', () => {
    const linux = readFileSync(join(EXE_DIR, 'keytunnel-linux-x64'));
    const win = readFileSync(join(EXE_DIR, 'keytunnel-win-x64.exe'));
    expect(linux.subarray(0, 4)).toEqual(Buffer.from([0x7f, 0x45, 0x4c, 0x46])); // ELF
    expect(win.subarray(0, 2).toString('latin1')).toBe('MZ'); // PE
    expect(linux.includes(FUSE_SET)).toBe(true);
    expect(win.includes(FUSE_SET)).toBe(true);
    const sums = spawnSync('sha256sum', ['-c', 'SHA256SUMS'], { cwd: EXE_DIR, encoding: 'utf8' });
    expect(sums.status).toBe(0);
    expect(sums.stdout).toContain('keytunnel-linux-x64: OK');
    expect(sums.stdout).toContain('keytunnel-win-x64.exe: OK');
  });
});

describe('the Linux executable, alone in an empty directory, no node on PATH', () => {
  it('has no node on its PATH', () => {
    expect(spawnSync('node', ['--version'], { env: { PATH: emptyBin } }).error).toBeDefined();
  });

  it('prints its version and source commit', () => {
    const r = runExe(['--version']);
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe(`${version} (commit ${checkoutCommit()}, sea)`);
  });

  it('runs the demo ceremony', () => {
    const r = runExe(['demo']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^OK: registered and signed in through the tunnel/m);
  });

  it('a native addon that cannot be written or loaded disables only hardware keys, with a clear message', () => {
    const notADir = join(work, 'cache-is-a-file');
    writeFileSync(notADir, 'not a directory');
    const devices = runExe(['devices'], { XDG_CACHE_HOME: notADir });
    expect(devices.status).not.toBe(0);
    expect(devices.stderr).toMatch(/native addon HID_hidraw unavailable in this executable/);
    expect(devices.stderr).toContain('hardware keys (--hardware) and USB hot-plug are disabled');
    const demo = runExe(['demo'], { XDG_CACHE_HOME: notADir });
    expect(demo.status).toBe(0);
    expect(demo.stdout).toMatch(/^OK: registered and signed in/m);
  });
});
