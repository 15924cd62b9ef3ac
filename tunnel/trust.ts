/**
 * The set of trusted peer fingerprints (pinning, like SSH known_hosts): a peer is accepted exactly when the
 * SHA-256 fingerprint of the certificate it presents is in the set.
 *
 * Sources: `--trust FP` (repeatable) and the trust file `<stateDir>/trusted-peers`, one peer per line:
 *
 *     # comment
 *     3f:a1:...:9c  laptop          <- fingerprint (with or without colons, any case), then an optional name
 *     3fa1...9c                     <- no name
 *
 * A malformed line is an error naming the line (a security setting is never silently ignored). The model is a
 * `TrustEntry` per fingerprint.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { FingerprintError, parseFingerprint } from './fingerprint.ts';
import { KeytunnelError } from '../protocol/errors.ts';

/** File name of the trust file inside the state directory. */
export const TRUST_FILE = 'trusted-peers';
/** Largest trust file we read. */
const MAX_TRUST_FILE_BYTES = 1024 * 1024;
/** Largest peer name in the trust file. */
export const MAX_TRUST_NAME_LENGTH = 256;

export type TrustSource = 'cli' | 'file' | 'policy';

export interface TrustEntry {
  /** Canonical fingerprint (`aa:bb:...`). */
  readonly fingerprint: string;
  /** A human name for the peer, if given. */
  readonly name?: string;
  /** Where the entry came from. */
  readonly source: TrustSource;
}

export class TrustFileError extends KeytunnelError {
  override readonly name = 'TrustFileError';
  readonly code = 'TRUST_FILE';
}

/** An immutable set of trusted fingerprints. */
export class TrustSet {
  private readonly byFingerprint = new Map<string, TrustEntry>();

  /** Later entries for the same fingerprint fill in a missing name but never replace an earlier entry. */
  constructor(entries: Iterable<TrustEntry> = []) {
    for (const entry of entries) {
      const fingerprint = parseFingerprint(entry.fingerprint);
      const earlier = this.byFingerprint.get(fingerprint);
      if (!earlier) this.byFingerprint.set(fingerprint, { ...entry, fingerprint });
      else if (earlier.name === undefined && entry.name !== undefined) {
        this.byFingerprint.set(fingerprint, { ...earlier, name: entry.name });
      }
    }
  }

  /** The entry for a fingerprint (any accepted spelling), or undefined when it is not trusted. */
  lookup(fingerprint: string): TrustEntry | undefined {
    let canonical: string;
    try {
      canonical = parseFingerprint(fingerprint);
    } catch {
      return undefined;
    }
    return this.byFingerprint.get(canonical);
  }

  has(fingerprint: string): boolean {
    return this.lookup(fingerprint) !== undefined;
  }

  get size(): number {
    return this.byFingerprint.size;
  }

  entries(): TrustEntry[] {
    return [...this.byFingerprint.values()];
  }
}

/** Parse trust file text. Throws TrustFileError naming the first bad line. */
export function parseTrustFile(text: string, file = TRUST_FILE): TrustEntry[] {
  const entries: TrustEntry[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const hash = lines[i].indexOf('#');
    const line = (hash >= 0 ? lines[i].slice(0, hash) : lines[i]).trim();
    if (line === '') continue;
    const match = /^(\S+)(?:\s+(.*))?$/.exec(line)!;
    let fingerprint: string;
    try {
      fingerprint = parseFingerprint(match[1]);
    } catch (err) {
      if (err instanceof FingerprintError) throw new TrustFileError(`${file}:${i + 1}: ${err.message}`);
      throw err;
    }
    const name = match[2]?.trim();
    if (name !== undefined && (name.length > MAX_TRUST_NAME_LENGTH || /[\u0000-\u001f\u007f-\u009f]/.test(name))) {
      throw new TrustFileError(`${file}:${i + 1}: the name must be at most ${MAX_TRUST_NAME_LENGTH} printable characters`);
    }
    entries.push(name ? { fingerprint, name, source: 'file' } : { fingerprint, source: 'file' });
  }
  return entries;
}

/** Render entries as trust file text (names are kept; comments are not). */
export function formatTrustFile(entries: readonly TrustEntry[]): string {
  return entries.map((e) => (e.name ? `${e.fingerprint} ${e.name}` : e.fingerprint)).join('\n') + (entries.length ? '\n' : '');
}

/** Read `<stateDir>/trusted-peers`; a missing file is an empty list. */
export async function readTrustFile(stateDir: string): Promise<TrustEntry[]> {
  const file = path.join(stateDir, TRUST_FILE);
  let text: string;
  try {
    const stat = await fs.stat(file);
    if (stat.size > MAX_TRUST_FILE_BYTES) throw new TrustFileError(`${file} is larger than ${MAX_TRUST_FILE_BYTES} bytes`);
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return parseTrustFile(text, file);
}

export interface LoadTrustOptions {
  /** The state directory holding the trust file (omit to use only `cli`). */
  readonly stateDir?: string;
  /** Fingerprints from `--trust` (validated here; a bad one is a FingerprintError). */
  readonly cli?: readonly string[];
}

/** The trust set from `--trust` values and the trust file. */
export async function loadTrust(options: LoadTrustOptions): Promise<TrustSet> {
  const fromCli: TrustEntry[] = (options.cli ?? []).map((fp) => ({ fingerprint: parseFingerprint(fp), source: 'cli' }));
  const fromFile = options.stateDir ? await readTrustFile(options.stateDir) : [];
  return new TrustSet([...fromCli, ...fromFile]);
}

/**
 * Add (or rename) a fingerprint in the trust file, preserving the other lines and comments; written atomically
 * (temporary file + rename). Returns false when it was already there with the same name.
 */
export async function addToTrustFile(stateDir: string, fingerprint: string, name?: string): Promise<boolean> {
  const canonical = parseFingerprint(fingerprint);
  if (name !== undefined && (name.trim() === '' || name.length > MAX_TRUST_NAME_LENGTH || /[\u0000-\u001f\u007f-\u009f#]/.test(name))) {
    throw new TrustFileError(`the name must be 1..${MAX_TRUST_NAME_LENGTH} printable characters without '#'`);
  }
  await fs.mkdir(stateDir, { recursive: true, mode: 0o700 });
  const file = path.join(stateDir, TRUST_FILE);
  let text = '';
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const existing = parseTrustFile(text, file); // refuse to rewrite a file we cannot read
  const line = name ? `${canonical} ${name.trim()}` : canonical;
  const lines = text === '' ? [] : text.replace(/\r?\n$/, '').split(/\r?\n/);
  const current = existing.find((e) => e.fingerprint === canonical);
  if (current) {
    if (name === undefined || current.name === name.trim()) return false;
    const index = lines.findIndex((l) => {
      const first = l.replace(/#.*/, '').trim().split(/\s+/)[0];
      return first !== '' && first !== undefined && parseFingerprintOrNull(first) === canonical;
    });
    lines[index] = line;
  } else lines.push(line);
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  await fs.writeFile(tmp, lines.join('\n') + '\n', { mode: 0o600, flag: 'wx' });
  await fs.rename(tmp, file);
  return true;
}

function parseFingerprintOrNull(s: string): string | null {
  try {
    return parseFingerprint(s);
  } catch {
    return null;
  }
}
