/**
 * Host-side process helpers for the benchmarks: free loopback ports, `keytunnel <command>` child processes
 * (bin/keytunnel.js, so what is measured is exactly what users run), waiting for a port to accept, and reading a
 * process's resident set size from /proc.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { REPO_ROOT } from './guest-run.ts';

export const KEYTUNNEL_BIN = join(REPO_ROOT, 'bin', 'keytunnel.js');

/** A port that was free on 127.0.0.1 a moment ago. */
export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/** Resolves once 127.0.0.1:port accepts a TCP connection. */
export async function waitForPort(port: number, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface KeytunnelChild {
  readonly child: ChildProcess;
  readonly pid: number;
  /** SIGTERM, then SIGKILL after 5 s; resolves with the exit code. */
  stop(): Promise<number | null>;
}

/** Spawns `node bin/keytunnel.js ...args`, logging its stdout+stderr to `logPath`. */
export function spawnKeytunnel(args: readonly string[], opts: { readonly logPath: string; readonly env?: NodeJS.ProcessEnv }): KeytunnelChild {
  const child = spawn(process.execPath, [KEYTUNNEL_BIN, ...args], {
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log = createWriteStream(opts.logPath);
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return {
    child,
    pid: child.pid ?? -1,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

export interface Rss {
  /** Current resident set size, bytes. */
  readonly rss: number;
  /** Peak resident set size (VmHWM), bytes. */
  readonly peak: number;
}

/** RSS of a live process from /proc/PID/status (Linux). */
export function readRss(pid: number): Rss {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (key: string): number => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status);
    if (m === null) throw new Error(`/proc/${pid}/status has no ${key}`);
    return Number(m[1]) * 1024;
  };
  return { rss: kib('VmRSS'), peak: kib('VmHWM') };
}

export function mib(bytes: number): string {
  return (bytes / (1024 * 1024)).toFixed(1);
}
