/**
 * Files a single executable (Node SEA, scripts/build-exe.mjs) carries as SEA assets and needs on disk: the
 * native addons (node-hid, usb) — `process.dlopen` loads only files — and the uhid reader thread's script (a
 * worker runs a file). Each is written once per build into a cache directory of its own
 * (`<cache>/keytunnel/exe-<version>-<build id>/`) and reused by later runs: Windows cannot replace a loaded
 * `.node`, so there is one fixed path per build, never a temporary copy per run. An existing file is used only
 * when its bytes equal the asset's; otherwise it is rewritten (temp file + rename).
 *
 * Only imported by cli/sea/entry.ts, i.e. only inside the executable.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import sea from 'node:sea';

/** The cache root: %LOCALAPPDATA% on Windows, $XDG_CACHE_HOME or ~/.cache elsewhere. */
export function cacheRoot(env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform): string {
  if (platform === 'win32') return env['LOCALAPPDATA'] || join(homedir(), 'AppData', 'Local');
  return env['XDG_CACHE_HOME'] || join(homedir(), '.cache');
}

export class AssetDir {
  constructor(readonly dir: string) {}

  static forBuild(version: string, buildId: string): AssetDir {
    return new AssetDir(join(cacheRoot(), 'keytunnel', `exe-${version}-${buildId}`));
  }

  /** The asset `key` as a file in this directory (written if missing or different); returns its path. */
  materialize(key: string, fileName = key): string {
    const bytes = Buffer.from(sea.getAsset(key));
    const path = join(this.dir, fileName);
    let existing: Buffer | null = null;
    try {
      existing = readFileSync(path);
    } catch {
      // not there yet
    }
    if (existing === null || !existing.equals(bytes)) {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      const temp = `${path}.${process.pid}.tmp`;
      writeFileSync(temp, bytes, { mode: 0o700 });
      renameSync(temp, path);
    }
    return path;
  }

  /** Write a small text file (not an asset) if missing or different. */
  ensureText(fileName: string, text: string): string {
    const path = join(this.dir, fileName);
    let existing: string | null = null;
    try {
      existing = readFileSync(path, 'utf8');
    } catch {
      // not there yet
    }
    if (existing !== text) {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      const temp = `${path}.${process.pid}.tmp`;
      writeFileSync(temp, text, { mode: 0o600 });
      renameSync(temp, path);
    }
    return path;
  }
}

/** Thrown when a native addon cannot be loaded from the executable; the message says what that disables. */
export class AddonUnavailableError extends Error {
  override readonly name = 'AddonUnavailableError';
  readonly code = 'ADDON_UNAVAILABLE';
}

/**
 * Load the native addon shipped as asset `addons/<name>.node` (e.g. "HID_hidraw", "HID", "usb", "keyring"). Failures —
 * not shipped for this platform, cache not writable, dlopen failing (missing libudev, ...) — become one
 * AddonUnavailableError naming the addon and what it disables (hardware keys, hot-plug); the rest of keytunnel
 * never loads an addon.
 */
/** What a missing addon turns off (the rest of keytunnel works without it). */
function disabledBy(name: string): string {
  return name === 'keyring'
    ? 'the OS keychain (--remember-passphrase) is disabled'
    : 'hardware keys (--hardware) and USB hot-plug are disabled';
}

export function loadAddon(dir: AssetDir, name: string): unknown {
  const key = `addons/${name}.node`;
  try {
    if (!sea.isSea()) throw new Error('not running as a single executable');
    const path = dir.materialize(key, `${name}.node`);
    const module = { exports: {} as unknown };
    process.dlopen(module, path);
    return module.exports;
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new AddonUnavailableError(
      `native addon ${name} unavailable in this executable (${reason.split('\n')[0]}): ${disabledBy(name)}; ` +
        'everything else works',
      { cause: err },
    );
  }
}

/** Set by scripts/build-exe.mjs (esbuild define): the package version and a hash of the executable's inputs. */
declare const KEYTUNNEL_EXE_ID: { version: string; buildId: string } | undefined;

let exeDir: AssetDir | undefined;

/** This executable's asset directory. */
export function exeAssetDir(): AssetDir {
  if (typeof KEYTUNNEL_EXE_ID === 'undefined') throw new Error('not built as a single executable');
  exeDir ??= AssetDir.forBuild(KEYTUNNEL_EXE_ID.version, KEYTUNNEL_EXE_ID.buildId);
  return exeDir;
}

/** What node-hid's and usb's binding loaders are replaced with inside the executable (scripts/build-exe.mjs). */
export function loadExeAddon(name: string): unknown {
  let dir: AssetDir;
  try {
    dir = exeAssetDir();
  } catch (err) {
    throw new AddonUnavailableError(`native addon ${name} unavailable: ${(err as Error).message}`, { cause: err });
  }
  return loadAddon(dir, name);
}
