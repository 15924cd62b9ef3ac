/**
 * The audit log against a hostile VM (finding 5): forged rows and terminal escapes through a claimed user name,
 * file mode, rotation at a size bound, asynchronous appends that close() flushes.
 */
import { chmod, mkdtemp, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { PolicyState, withPolicy } from '../../agent/policy/policy-authenticator.ts';
import { AUDIT_FILE, AuditLog, auditFiles, type AuditRecord } from '../../agent/policy/audit.ts';
import type { Authenticator } from '../../protocol/authenticator.ts';
import { encode, type CborValue } from '../../protocol/cbor.ts';
import { CTAP2_ERR_OPERATION_DENIED, CTAP2_MAKE_CREDENTIAL } from '../../protocol/ctap2.ts';
import { CLAIMED_MARK, formatAuditJson, formatAuditTable, readAudit } from '../../cli/commands/audit.ts';
import { FakePresence } from '../../agent/presence/fake.ts';

const FP = 'ab'.repeat(32).match(/../g)!.join(':');
const FORGED_USER = 'alice\n2026-12-01 09:00:00Z  customer-a  soft-1  getAssertion  bank.example  boss  allowed  0x00  1\x1b[2J\x1b]0;pwned\x07\u202e';
/** Anything a terminal acts on: C0 (but the table's own newlines), DEL, C1, bidi/format, line separators. */
const TERMINAL_UNSAFE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\p{Cf}\u2028\u2029]/u;

const base = { gateway: FP, gatewayName: 'customer-b', authenticator: 'soft-1', durationMs: 1 } as const;

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'kt-audit-'));
}

/** A makeCredential (CTAP 2.1 PS 2021-06-15 §6.1) with rp.id and user.name as given. */
function makeCredential(rpId: string, userName: string): Uint8Array {
  const request = new Map<CborValue, CborValue>([
    [1, new Uint8Array(32)],
    [2, new Map<CborValue, CborValue>([['id', rpId]])],
    [3, new Map<CborValue, CborValue>([['id', Uint8Array.of(1)], ['name', userName]])],
    [4, [new Map<CborValue, CborValue>([['type', 'public-key'], ['alg', -7]])]],
  ]);
  return Uint8Array.of(CTAP2_MAKE_CREDENTIAL, ...encode(request));
}

describe('keytunnel audit: what a VM claims cannot forge rows or drive the terminal', () => {
  it('a forged user name refused by the policy prints no escape character, no forged row, and is marked claimed', async () => {
    const dir = await tempDir();
    const log = AuditLog.forStateDir(dir);
    const reached: Uint8Array[] = [];
    const inner: Authenticator = {
      descriptor: { id: 'soft-1', label: 'soft', transport: 'soft', ctap1: false, wink: false },
      request: async (_kind, payload) => {
        reached.push(payload);
        return Uint8Array.of(0);
      },
    };
    const policy = { fingerprint: FP, name: 'customer-b', allowRps: ['b.example'], scope: 'per-gateway', approve: 'touch' } as const;
    const view = withPolicy(inner, policy, { audit: log, presence: new FakePresence('denied'), state: new PolicyState() });
    const ctx = { signal: new AbortController().signal, onStatus: () => {} };
    const answer = await view.request('cbor', makeCredential('bank.example', FORGED_USER), ctx);
    expect([...answer]).toEqual([CTAP2_ERR_OPERATION_DENIED]);
    expect(reached).toHaveLength(0);
    await log.close();

    const lines = await readAudit(join(dir, AUDIT_FILE), {});
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ decision: 'refused-by-policy', user: FORGED_USER });

    const table = formatAuditTable(lines);
    expect(table).not.toMatch(TERMINAL_UNSAFE);
    expect(table).not.toContain('\x1b');
    const rows = table.trimEnd().split('\n');
    expect(rows).toHaveLength(2); // the header and the one real row: no forged "allowed" row
    expect(rows.filter((r) => /^\d{4}-/.test(r))).toHaveLength(1);
    expect(rows[1]).toContain(`alice␊2026-12-01`);
    expect(rows[1]).toContain(`bank.example${CLAIMED_MARK}`);
    expect(rows[1]).toMatch(/ \(claimed\)\s+refused-by-policy/);

    expect(lines[0]!.claimed).toBe(true); // and in the JSON record

    const json = formatAuditJson(lines);
    expect(json).not.toMatch(TERMINAL_UNSAFE);
    expect(json.trimEnd().split('\n')).toHaveLength(1);
    expect(JSON.parse(json)).toEqual(lines[0]); // the same value, only escaped
  });

  it('every printed field is escaped and bounded, the gateway name and the reason included', () => {
    const huge = 'x'.repeat(100_000);
    const table = formatAuditTable([
      {
        ...base,
        gatewayName: 'gw\x1b[31m\u2066',
        command: 'getAssertion',
        rpId: `evil.example\r\n${huge}`,
        user: huge,
        decision: 'refused-by-policy',
        reason: `RP evil.example\x1b[2J is not in allowRps`,
        status: '0x27\x07',
        time: '2026-12-01T10:00:00.000Z\x1b[1A',
      },
    ]);
    expect(table).not.toMatch(TERMINAL_UNSAFE);
    expect(table.length).toBeLessThan(1000);
    expect(table.trimEnd().split('\n')).toHaveLength(2);
  });

  it('allowed requests are shown without the claimed marker', () => {
    const table = formatAuditTable([{ ...base, command: 'getAssertion', rpId: 'b.example', user: 'bob', decision: 'allowed', status: '0x00', time: '2026-12-01T10:00:00.000Z' }]);
    expect(table).not.toContain(CLAIMED_MARK);
  });

  it('skips lines that are not audit records instead of crashing on them', async () => {
    const dir = await tempDir();
    const path = join(dir, AUDIT_FILE);
    await writeFile(path, '[1,2]\n{"gateway":5}\nnull\n{"time":"2026-12-01T10:00:00.000Z","gateway":"ab","gatewayName":"x","decision":"allowed","durationMs":1}\n{"torn');
    expect((await readAudit(path, {})).map((l) => l.gatewayName)).toEqual(['x']);
  });
});

describe('keytunnel audit (the command, in its own process)', () => {
  const BIN = fileURLToPath(new URL('../../bin/keytunnel.js', import.meta.url));
  const cli = (args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60_000 });

  it('after a forged user name, prints no escape character and no forged row, as a table and as JSON', async () => {
    const dir = await tempDir();
    const log = AuditLog.forStateDir(dir);
    log.record({ ...base, command: 'makeCredential', rpId: 'bank.example', user: FORGED_USER, decision: 'refused-by-policy', reason: 'RP bank.example is not in allowRps', status: '0x27' });
    log.record({ ...base, command: 'getAssertion', rpId: 'b.example', user: 'bob', decision: 'allowed', status: '0x00' });
    await log.close();

    const table = cli(['audit', '--state-dir', dir]);
    expect(table.status).toBe(0);
    expect(table.stdout).not.toContain('\x1b');
    expect(table.stdout).not.toMatch(TERMINAL_UNSAFE);
    const rows = table.stdout.trimEnd().split('\n');
    expect(rows).toHaveLength(3);
    expect(rows.filter((r) => / allowed /.test(r))).toHaveLength(1);
    expect(rows[1]).toMatch(/alice␊2026-12-01 [^␊]*… \(claimed\)\s+refused-by-policy/); // escaped, bounded, marked

    const json = cli(['audit', '--json', '--state-dir', dir]);
    expect(json.status).toBe(0);
    expect(json.stdout).not.toMatch(TERMINAL_UNSAFE);
    const parsed = json.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as { user?: string; claimed?: boolean });
    expect(parsed.map((p) => [p.user, p.claimed])).toEqual([
      [FORGED_USER, true],
      ['bob', undefined],
    ]);
  });
});

describe('audit log file', () => {
  const record = (i: number): AuditRecord => ({ ...base, command: 'getAssertion', rpId: `rp${i}.example`, decision: 'allowed', status: '0x00' });

  it('is created 0600, and an existing 0644 file is made 0600', async () => {
    const dir = await tempDir();
    const log = AuditLog.forStateDir(dir);
    log.record(record(1));
    await log.close();
    expect((await stat(join(dir, AUDIT_FILE))).mode & 0o777).toBe(0o600);

    const old = await tempDir();
    await writeFile(join(old, AUDIT_FILE), '');
    await chmod(join(old, AUDIT_FILE), 0o644);
    const reopened = AuditLog.forStateDir(old);
    await reopened.flush(); // opened at construction, before any request
    expect((await stat(join(old, AUDIT_FILE))).mode & 0o777).toBe(0o600);
    await reopened.close();
  });

  it('appends asynchronously: record() returns before the disk is touched, close() writes everything', async () => {
    const dir = await tempDir();
    const log = AuditLog.forStateDir(dir);
    await log.flush();
    for (let i = 0; i < 1000; i++) log.record(record(i));
    expect(log.pending).toBeGreaterThan(0);
    expect(readFileSync(log.path, 'utf8')).toBe(''); // nothing was written synchronously
    await log.close();
    const lines = await readAudit(log.path, {});
    expect(lines.map((l) => l.rpId)).toEqual(Array.from({ length: 1000 }, (_, i) => `rp${i}.example`));
    log.record(record(1001)); // after close: dropped, no throw
  });

  it('rotates at the size bound, keeps a fixed number of files, and keytunnel audit reads them oldest first', async () => {
    const dir = await tempDir();
    const one = (await import('../../agent/policy/audit.ts')).auditLine(record(0), new Date()).length;
    const log = AuditLog.forStateDir(dir, { maxBytes: one * 10, files: 5 });
    for (let i = 0; i < 200; i++) {
      log.record(record(i));
      if (i % 7 === 0) await log.flush(); // batches of varying size
    }
    await log.close();
    const files = (await readdir(dir)).sort();
    expect(files).toEqual(['audit.log', 'audit.log.1', 'audit.log.2', 'audit.log.3', 'audit.log.4']);
    for (const f of files) {
      expect((await stat(join(dir, f))).size).toBeLessThanOrEqual(one * 10 + 20);
      expect((await stat(join(dir, f))).mode & 0o777).toBe(0o600);
    }
    const lines = await readAudit(log.path, {});
    const numbers = lines.map((l) => Number(/^rp(\d+)\./.exec(l.rpId!)![1]));
    expect(numbers.at(-1)).toBe(199);
    expect(numbers).toEqual([...numbers].sort((a, b) => a - b)); // oldest first across the files
    expect(numbers.length).toBeGreaterThanOrEqual(30); // four full files of ~9 lines and the current one
    expect(numbers.length).toBeLessThanOrEqual(50);
    expect(auditFiles(log.path)).toEqual([4, 3, 2, 1].map((i) => `${log.path}.${i}`).concat(log.path));
  });

  it('bounds the queue waiting for the disk; drops are counted in the log', async () => {
    const dir = await tempDir();
    const log = AuditLog.forStateDir(dir, { maxQueuedBytes: 2000 });
    await log.flush();
    for (let i = 0; i < 100; i++) log.record(record(i));
    await log.close();
    const text = await readFile(log.path, 'utf8');
    const kept = (await readAudit(log.path, {})).length;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThan(100);
    expect(text).toContain(`"dropped":${100 - kept}`);
  });

  it('bounds each string field in the file, and a failing disk never throws into the agent', async () => {
    const dir = await tempDir();
    const log = AuditLog.forStateDir(dir);
    log.record({ ...record(0), user: 'u'.repeat(100_000) });
    await log.close();
    expect((await readFile(log.path, 'utf8')).length).toBeLessThan(2000);

    const errors: Error[] = [];
    const broken = new AuditLog(dir, { onError: (e) => errors.push(e) }); // a directory: cannot be opened for append
    expect(() => broken.record(record(1))).not.toThrow();
    await broken.close();
    expect(errors.length).toBeGreaterThan(0);
  });
});
