/** Shared test helpers for tunnel/: captured pino loggers, temporary state dirs and identities. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino, type Logger } from 'pino';
import { loadOrCreateIdentity, type Identity } from '../../tunnel/identity.ts';

export interface CapturedLog {
  readonly log: Logger;
  readonly lines: string[];
  /** All captured lines joined (for `toContain`). */
  text(): string;
}

export function captureLog(): CapturedLog {
  const lines: string[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(s) });
  return { log, lines, text: () => lines.join('') };
}

const dirs: string[] = [];

export async function tempDir(prefix = 'kt-tunnel-'): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

export async function removeTempDirs(): Promise<void> {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
}

export async function newIdentity(): Promise<Identity> {
  return (await loadOrCreateIdentity(await tempDir('kt-id-'))).identity;
}

/** Resolve when `predicate` holds (polling every 5 ms), or fail after `ms`. */
export async function waitFor(predicate: () => boolean, ms = 3000): Promise<void> {
  const start = Date.now();
  while (!predicate()) {
    if (Date.now() - start > ms) throw new Error('waitFor timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}
