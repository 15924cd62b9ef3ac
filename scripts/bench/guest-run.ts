/**
 * Boots the project's qemu test guest (scripts/vm/run-guest.sh, after scripts/vm/setup.sh) for a benchmark: the
 * script runs in a read-write share under the repo's `.cache/bench-runs/` (never /tmp: the guest mounts its own
 * tmpfs there), the console is written to `console.log` in the share, and each console line can be watched live.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Longest wait for a free guest slot (run-guest.sh's own default is 30 minutes). */
const SLOT_WAIT_MS = 30 * 60_000;

export interface GuestRun {
  readonly code: number;
  readonly consolePath: string;
}

/** scripts/vm/setup.sh (fast no-op when the guest kernel and initramfs are current). */
export function ensureGuest(): void {
  const r = spawnSync(join(REPO_ROOT, 'scripts', 'vm', 'setup.sh'), { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`scripts/vm/setup.sh failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
}

/** A fresh share directory (visible at the same path in the guest). */
export function newBenchShare(): string {
  const base = join(REPO_ROOT, '.cache', 'bench-runs');
  mkdirSync(base, { recursive: true });
  return mkdtempSync(join(base, 'run-'));
}

/** Runs `script` (POSIX sh, cwd = the share) in the guest; resolves with its exit status (99: never reported). */
export function runGuestScript(
  share: string,
  script: string,
  opts: { readonly timeoutMs: number; readonly onLine?: (line: string) => void; readonly smp?: number; readonly memMiB?: number },
): Promise<GuestRun> {
  const scriptPath = join(share, 'guest-script.sh');
  writeFileSync(scriptPath, `export KEYTUNNEL_REPO='${REPO_ROOT}'\n${script}\n`);
  const consolePath = join(share, 'console.log');
  const consoleFile = createWriteStream(consolePath);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    KEYTUNNEL_VM_SHARE: share,
    KEYTUNNEL_VM_TIMEOUT: String(Math.ceil(opts.timeoutMs / 1000) + 10),
    KEYTUNNEL_VM_SMP: String(opts.smp ?? 2),
    KEYTUNNEL_VM_MEM: String(opts.memMiB ?? 1024),
  };
  delete env.KEYTUNNEL_VM_HOSTFWD;
  const child = spawn(join(REPO_ROOT, 'scripts', 'vm', 'run-guest.sh'), [scriptPath], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const kill = (): void => {
    try {
      process.kill(-(child.pid ?? 0), 'SIGKILL');
    } catch {
      /* already gone */
    }
  };
  // run-guest.sh queues for a machine-wide guest slot first; the timeout counts from "[run-guest] slot N acquired"
  // (with a backstop in case that line never comes).
  let timer = setTimeout(kill, opts.timeoutMs + SLOT_WAIT_MS);
  let partial = '';
  const onData = (b: Buffer): void => {
    consoleFile.write(b);
    partial += b.toString('utf8');
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const l of lines) {
      if (/^\[run-guest\] slot \S+ acquired/.test(l)) {
        clearTimeout(timer);
        timer = setTimeout(kill, opts.timeoutMs);
      }
      opts.onLine?.(l.replace(/\r$/, ''));
    }
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  return new Promise((resolvePromise) => {
    child.on('close', (c) => {
      clearTimeout(timer);
      consoleFile.end(() => resolvePromise({ code: c ?? 99, consolePath }));
    });
    child.on('error', () => {
      clearTimeout(timer);
      consoleFile.end(() => resolvePromise({ code: 99, consolePath }));
    });
  });
}
