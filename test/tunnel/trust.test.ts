/** tunnel/trust.ts: trust file parsing (comments, names, errors with line numbers), the trust set, and edits. */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FingerprintError } from '../../tunnel/fingerprint.ts';
import {
  TRUST_FILE,
  TrustFileError,
  TrustSet,
  addToTrustFile,
  formatTrustFile,
  loadTrust,
  parseTrustFile,
  readTrustFile,
  type TrustEntry,
} from '../../tunnel/trust.ts';
import { removeTempDirs, tempDir } from './helpers.ts';

afterAll(removeTempDirs);

const fp = (byte: number): string => Array.from({ length: 32 }, () => byte.toString(16).padStart(2, '0')).join(':');
const bare = (byte: number): string => fp(byte).replaceAll(':', '');

describe('parseTrustFile', () => {
  it('reads fingerprints in any spelling, optional names, comments and blank lines', () => {
    const text = [
      '# trusted gateways',
      '',
      `${fp(0xaa)}   laptop vm  # the dev VM`,
      `  ${bare(0xbb).toUpperCase()}`,
      `${bare(0xcc)}\tci runner\r`,
      '   # indented comment',
    ].join('\n');
    expect(parseTrustFile(text)).toEqual([
      { fingerprint: fp(0xaa), name: 'laptop vm', source: 'file' },
      { fingerprint: fp(0xbb), source: 'file' },
      { fingerprint: fp(0xcc), name: 'ci runner', source: 'file' },
    ]);
  });
  it('names the first bad line', () => {
    expect(() => parseTrustFile(`${fp(1)}\nnot-a-fingerprint name\n`, 'f')).toThrow(TrustFileError);
    expect(() => parseTrustFile(`${fp(1)}\nnot-a-fingerprint name\n`, 'f')).toThrow(/^f:2: /);
    expect(() => parseTrustFile(`${fp(1)} ${'n'.repeat(257)}`)).toThrow(/:1: /);
    expect(() => parseTrustFile(`${fp(1)} bell\u0007`)).toThrow(TrustFileError);
  });
  it('formatTrustFile round-trips', () => {
    const entries: TrustEntry[] = [
      { fingerprint: fp(1), name: 'a b', source: 'file' },
      { fingerprint: fp(2), source: 'file' },
    ];
    expect(parseTrustFile(formatTrustFile(entries))).toEqual(entries);
  });
});

describe('TrustSet', () => {
  it('looks fingerprints up in any accepted spelling; the first entry wins, a later one may add a name', () => {
    const set = new TrustSet([
      { fingerprint: bare(1).toUpperCase(), source: 'cli' },
      { fingerprint: fp(1), name: 'from file', source: 'file' },
      { fingerprint: fp(2), name: 'two', source: 'file' },
      { fingerprint: fp(2), name: 'other', source: 'file' },
    ]);
    expect(set.size).toBe(2);
    expect(set.lookup(bare(1))).toEqual({ fingerprint: fp(1), name: 'from file', source: 'cli' });
    expect(set.lookup(fp(2).toUpperCase())?.name).toBe('two');
    expect(set.has(fp(3))).toBe(false);
    expect(set.has('garbage')).toBe(false);
  });
});

describe('trust file in the state dir', () => {
  it('loadTrust merges --trust values and the file; a missing file is empty', async () => {
    const dir = await tempDir();
    expect((await loadTrust({ stateDir: dir, cli: [bare(9)] })).entries()).toEqual([{ fingerprint: fp(9), source: 'cli' }]);
    await writeFile(path.join(dir, TRUST_FILE), `${fp(7)} seven\n`);
    const set = await loadTrust({ stateDir: dir, cli: [fp(9)] });
    expect(set.has(fp(7)) && set.has(fp(9))).toBe(true);
    await expect(loadTrust({ cli: ['nope'] })).rejects.toThrow(FingerprintError);
  });
  it('addToTrustFile appends, renames, keeps comments, and refuses to rewrite a broken file', async () => {
    const dir = await tempDir();
    expect(await addToTrustFile(dir, bare(1).toUpperCase(), 'one')).toBe(true);
    await writeFile(path.join(dir, TRUST_FILE), `# keep me\n${fp(1)} one\n`);
    expect(await addToTrustFile(dir, fp(2))).toBe(true);
    expect(await addToTrustFile(dir, fp(2))).toBe(false);
    expect(await addToTrustFile(dir, fp(1), 'one')).toBe(false);
    expect(await addToTrustFile(dir, fp(1), 'renamed')).toBe(true);
    expect(await readFile(path.join(dir, TRUST_FILE), 'utf8')).toBe(`# keep me\n${fp(1)} renamed\n${fp(2)}\n`);
    expect(await readTrustFile(dir)).toHaveLength(2);
    await expect(addToTrustFile(dir, fp(3), 'bad # name')).rejects.toThrow(TrustFileError);
    await writeFile(path.join(dir, TRUST_FILE), 'broken line\n');
    await expect(addToTrustFile(dir, fp(3))).rejects.toThrow(TrustFileError);
    expect(await readFile(path.join(dir, TRUST_FILE), 'utf8')).toBe('broken line\n');
  });
});
