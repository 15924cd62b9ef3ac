/**
 * Runs the python-fido2 0.9.1 interop script (fido2_loopback.py) against a loopback face and returns its
 * JSON summary. Shared by the soft-authenticator interop test and, later, the gateway relay test (same
 * script, different HOST:PORT). The child is spawned asynchronously: the device under test usually runs in
 * this very process.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const SYSTEM_PYTHON = '/usr/bin/python3';
export const FIDO2_LOOPBACK_SCRIPT = fileURLToPath(new URL('./fido2_loopback.py', import.meta.url));

export interface InteropCheck {
  readonly name: string;
  readonly ok: boolean;
  readonly error?: string;
}

export interface InteropSummary {
  readonly ok: boolean;
  readonly passed: number;
  readonly failed: number;
  readonly checks: InteropCheck[];
  readonly fido2: string;
  readonly target: string;
  readonly [key: string]: unknown;
}

export interface InteropRun {
  readonly code: number | null;
  readonly summary: InteropSummary;
  readonly stderr: string;
}

export function runFido2Script(host: string, port: number, args: readonly string[] = [], timeoutMs = 120_000): Promise<InteropRun> {
  return new Promise((resolve, reject) => {
    const target = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
    const child = spawn(SYSTEM_PYTHON, [FIDO2_LOOPBACK_SCRIPT, target, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      const last = stdout.trim().split('\n').pop() ?? '';
      try {
        resolve({ code, summary: JSON.parse(last) as InteropSummary, stderr });
      } catch {
        reject(new Error(`interop script printed no JSON summary (exit ${code})\nstdout:\n${stdout}\nstderr:\n${stderr}`));
      }
    });
  });
}
