import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AuditLog } from '../../agent/policy/audit.ts';
import { PolicyConfig } from '../../agent/policy/config.ts';
import { formatAuditTable, parseSince, readAudit } from '../../cli/commands/audit.ts';
import { trustAdd, trustList } from '../../cli/commands/trust.ts';
import { readTrustFile } from '../../tunnel/trust.ts';

const FP = 'AB'.repeat(32);
const CANONICAL = 'ab'.repeat(32).match(/../g)!.join(':');

describe('keytunnel trust', () => {
  it('pins the peer and writes the gateway policy; a bad RP pattern changes nothing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kt-trust-'));
    const out: string[] = [];
    await trustAdd({ fingerprint: FP, name: 'customer-a', 'allow-rp': ['login.microsoft.com'], 'state-dir': dir }, (l) => out.push(l));
    expect((await readTrustFile(dir)).map((e) => [e.fingerprint, e.name])).toEqual([[CANONICAL, 'customer-a']]);
    const policy = (await PolicyConfig.load(dir)).get(CANONICAL);
    expect(policy).toMatchObject({ name: 'customer-a', allowRps: ['login.microsoft.com'], scope: 'per-gateway', approve: 'touch' });

    await expect(trustAdd({ fingerprint: FP, 'allow-rp': ['not a domain'], 'state-dir': dir }, () => {})).rejects.toThrow(/RP ID pattern/);
    expect((await PolicyConfig.load(dir)).get(CANONICAL)?.allowRps).toEqual(['login.microsoft.com']);

    await trustAdd({ fingerprint: FP, scope: 'shared', 'state-dir': dir }, () => {});
    expect((await PolicyConfig.load(dir)).get(CANONICAL)).toMatchObject({ name: 'customer-a', scope: 'shared' });
    const listed: string[] = [];
    await trustList(dir, (l) => listed.push(l));
    expect(listed).toEqual([`${CANONICAL}  customer-a  allowRps=login.microsoft.com scope=shared approve=touch`]);
  });

  it('refuses a malformed policy file with its path rather than trusting defaults', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kt-trust-'));
    await trustAdd({ fingerprint: FP, scope: 'shared', 'state-dir': dir }, () => {});
    const { writeFile } = await import('node:fs/promises');
    await writeFile(join(dir, 'gateways.json'), '{"gateways": {"nope": {}}}');
    await expect(PolicyConfig.load(dir)).rejects.toThrow(/gateways\.json: not a SHA-256 fingerprint/);
  });
});

describe('keytunnel audit', () => {
  it('reads the JSON lines the agent writes, filters them and prints a table', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kt-audit-'));
    const log = AuditLog.forStateDir(dir);
    const base = { authenticator: 'soft-1', durationMs: 3.2 };
    log.record({ ...base, gateway: CANONICAL, gatewayName: 'customer-a', command: 'makeCredential', rpId: 'a.example', user: 'alice', decision: 'allowed', status: '0x00' });
    log.record({ ...base, gateway: CANONICAL, gatewayName: 'customer-b', command: 'getAssertion', rpId: 'evil.example', decision: 'refused-by-policy', reason: 'RP evil.example is not in allowRps', status: '0x27' });
    await log.close();
    expect((await readFile(log.path, 'utf8')).trim().split('\n')).toHaveLength(2);

    const all = await readAudit(log.path, {});
    expect(all.map((l) => l.decision)).toEqual(['allowed', 'refused-by-policy']);
    expect((await readAudit(log.path, { gateway: 'customer-b' })).map((l) => l.rpId)).toEqual(['evil.example']);
    expect(await readAudit(log.path, { since: Date.now() + 60_000 })).toEqual([]);
    const table = formatAuditTable(all);
    expect(table.split('\n')[0]).toMatch(/^TIME\s+GATEWAY\s+AUTHENTICATOR\s+COMMAND\s+RP\s+USER\s+DECISION\s+STATUS\s+MS$/);
    expect(table).toContain('refused-by-policy (RP evil.example is not in allowRps)');
  });

  it('parses --since as a duration or a date', () => {
    expect(parseSince('15m', 1_000_000_000)).toBe(1_000_000_000 - 900_000);
    expect(parseSince('2026-11-26T10:00:00Z')).toBe(Date.parse('2026-11-26T10:00:00Z'));
    expect(() => parseSince('yesterday-ish')).toThrow(/--since/);
  });
});
