/**
 * `keytunnel` as a real process for tests: spawned with this node on bin/keytunnel.js, its stdout and stderr
 * collected, its exit awaited. `killAll()` (in an afterEach/afterAll) ends whatever a test left running.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const KEYTUNNEL_BIN = fileURLToPath(new URL('../../bin/keytunnel.js', import.meta.url));

export interface CliProcess {
  readonly child: ChildProcess;
  stdout(): string;
  stderr(): string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const running: ChildProcess[] = [];

export function runCli(args: readonly string[], env: Readonly<Record<string, string>> = {}): CliProcess {
  const child = spawn(process.execPath, [KEYTUNNEL_BIN, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, KEYTUNNEL_LOG_LEVEL: 'info', ...env },
  });
  running.push(child);
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, stdout: () => out, stderr: () => err, exited };
}

/** Runs a command to its end: its exit code and output. */
export async function runCliToEnd(args: readonly string[], env?: Readonly<Record<string, string>>) {
  const p = runCli(args, env);
  const { code } = await p.exited;
  return { code, stdout: p.stdout(), stderr: p.stderr() };
}

/** SIGKILLs every process started with runCli that is still running. */
export function killAll(): void {
  for (const c of running.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}
