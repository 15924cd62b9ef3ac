/**
 * Test helper for kernel-level tests: boots the qemu guest of scripts/vm/ (a stock Debian kernel with uhid,
 * hidraw and vhci-hcd; the host's root mounted read-only, so the guest runs this repo with the host's node) and
 * runs a shell script in it.
 *
 * Each run gets its own read-write share under the guest cache directory (`$KEYTUNNEL_VM_DIR/runs/`, by default
 * ~/.cache/keytunnel/vm/runs/); the script runs with that share as its cwd, at the same path as on the host, so it
 * can leave files for the test to read. The checkout itself may be anywhere, /tmp included (scripts/vm/init.sh
 * keeps it visible under the guest's own tmpfs). `expectGuestOk` fails a test with the guest's whole console output, so a
 * red CI run says why.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { requireTier } from '../tiers.ts';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const RUN_GUEST = join(REPO_ROOT, 'scripts', 'vm', 'run-guest.sh');
const SETUP = join(REPO_ROOT, 'scripts', 'vm', 'setup.sh');

export interface GuestOptions {
  /**
   * Kill the guest after it has run this long (the result then has code 99). Counted from the moment the guest
   * gets one of the machine's guest slots (scripts/vm/run-guest.sh runs at most one guest per 2 CPUs at once).
   */
  readonly timeoutMs: number;
  /** qemu user-net forwarding, e.g. `hostfwd=tcp:127.0.0.1:P-:P` (host loopback only). */
  readonly hostfwd?: string;
  /** Extra files to put in the share before boot (name -> content). */
  readonly files?: Readonly<Record<string, string>>;
  /** Keep the share after the run (default: removed when the guest succeeded). */
  readonly keepShare?: boolean;
}

export interface GuestResult {
  /** The script's exit status; 99 = the guest never reported (crash, hang, timeout). */
  readonly code: number;
  /** Everything the guest printed on its serial console (kernel messages, init, the script's stdout+stderr). */
  readonly console: string;
  /** The run's read-write share (the script's cwd in the guest). Removed on success unless keepShare. */
  readonly share: string;
}

/** How long a run may wait for a free guest slot before it gives up (code 99). */
export const GUEST_SLOT_WAIT_MS = 20 * 60_000;

/** A vitest hook/test timeout for a runInGuest call: slot wait + the guest's own timeout + margin. */
export function guestHookTimeout(timeoutMs: number): number {
  return GUEST_SLOT_WAIT_MS + timeoutMs + 60_000;
}

let setupDone = false;

/** Make sure the guest kernel and initramfs exist (scripts/vm/setup.sh; a fast no-op when they do). */
export function ensureGuest(): void {
  // The windows tier runs one file at a time too: a Windows program may be checked with the guest's kernel
  // (test/windows/exe.wine.test.ts attaches the Windows build's USB/IP server from the guest).
  requireTier(['vm', 'windows'], expect.getState().testPath);
  if (setupDone) return;
  const r = spawnSync(SETUP, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.status !== 0) throw new Error(`scripts/vm/setup.sh failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  setupDone = true;
}

/** The guest cache directory of scripts/vm/setup.sh (kernel, initramfs, slot locks). */
export function guestCacheDir(): string {
  return process.env.KEYTUNNEL_VM_DIR || join(homedir(), '.cache', 'keytunnel', 'vm');
}

/** A fresh per-run directory under the guest cache directory (shared with the guest read-write). */
export function newShare(): string {
  const base = join(guestCacheDir(), 'runs');
  mkdirSync(base, { recursive: true });
  return mkdtempSync(join(base, 'run-'));
}

/** Boot the guest, run `script` (POSIX sh) in it, power off. */
export async function runInGuest(script: string, opts: GuestOptions): Promise<GuestResult> {
  ensureGuest();
  const share = newShare();
  for (const [name, content] of Object.entries(opts.files ?? {})) writeFileSync(join(share, name), content);
  const scriptPath = join(share, 'guest-script.sh');
  // `set -x`-free on purpose: guest scripts echo what they check, so the console reads as a log.
  writeFileSync(scriptPath, `export KEYTUNNEL_REPO='${REPO_ROOT}'\n${script}\n`);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    KEYTUNNEL_VM_SHARE: share,
    // run-guest.sh's timeout starts once it holds a guest slot; the kill below is a backstop.
    KEYTUNNEL_VM_TIMEOUT: String(Math.ceil(opts.timeoutMs / 1000)),
    KEYTUNNEL_VM_LOCK_WAIT: String(Math.ceil(GUEST_SLOT_WAIT_MS / 1000)),
  };
  if (opts.hostfwd !== undefined) env.KEYTUNNEL_VM_HOSTFWD = opts.hostfwd;
  else delete env.KEYTUNNEL_VM_HOSTFWD;
  const child = spawn(RUN_GUEST, [scriptPath], { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const chunks: Buffer[] = [];
  let timer: NodeJS.Timeout | undefined;
  const kill = (): void => {
    // Kill the whole process group (the runner, timeout and qemu).
    try {
      process.kill(-(child.pid ?? 0), 'SIGKILL');
    } catch {
      /* already gone */
    }
  };
  child.stdout.on('data', (b: Buffer) => chunks.push(b));
  child.stderr.on('data', (b: Buffer) => {
    chunks.push(b);
    if (!timer && b.includes('[run-guest] slot')) timer = setTimeout(kill, opts.timeoutMs + 20_000);
  });
  const code = await new Promise<number>((res) => {
    child.on('close', (c) => res(c ?? 99));
    child.on('error', () => res(99));
  });
  clearTimeout(timer);
  const out = Buffer.concat(chunks).toString('utf8');
  if (code === 0 && !opts.keepShare) rmSync(share, { recursive: true, force: true });
  return { code, console: out, share };
}

/** Throw (failing the test) with the guest's console when the script did not exit 0. */
export function expectGuestOk(r: GuestResult): void {
  if (r.code !== 0) {
    throw new Error(`guest script failed with exit code ${r.code}; guest console:\n${r.console}`);
  }
}
