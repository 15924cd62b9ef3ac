/**
 * python-fido2 0.9.1 against `keytunnel soft --hid loopback:127.0.0.1:0 --approve always`, run in-process
 * (startSoft, exactly what the command runs): CTAPHID, getInfo, U2F, ClientPin with both protocols,
 * WebAuthn make/get with rk, hmac-secret, credProtect and EdDSA, and credential management. Then the
 * service restarts on the same encrypted store and a second run proves the PIN and the credentials survived.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSoft, type SoftService } from '../../cli/commands/soft.ts';
import { runFido2Script, type InteropSummary } from './run-fido2-script.ts';

const EXPECTED_CHECKS = [
  'ctaphid-init',
  'ctaphid-ping',
  'ctap2-get-info',
  'ctap1-register-authenticate',
  'webauthn-make-get-no-pin',
  'clientpin-v1-set-pin-token',
  'clientpin-v2-wrong-pin-retries',
  'clientpin-v2-change-pin',
  'webauthn-rk-hmac-secret-credprotect',
  'credprotect-levels',
  'webauthn-eddsa',
  'webauthn-discoverable',
  'credman-v1-metadata-enumerate',
  'credman-v2-delete',
];

let dir: string;
const log = pino({ level: 'silent' });
const services: SoftService[] = [];

async function start(): Promise<SoftService> {
  const service = await startSoft(
    { hid: { kind: 'loopback', host: '127.0.0.1', port: 0 }, stateDir: dir, profile: 'interop', approve: 'always' },
    { log, passphrase: 'interop passphrase', input: new PassThrough(), output: new PassThrough() },
  );
  services.push(service);
  return service;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kt-interop-'));
});
afterAll(async () => {
  for (const s of services) await s.close();
  await rm(dir, { recursive: true, force: true });
});

describe('python-fido2 0.9.1 over the loopback face', () => {
  let summary: InteropSummary;

  it('passes every check of the interop script', async () => {
    const service = await start();
    expect(service.where).toMatch(/^loopback:127\.0\.0\.1:\d+$/);
    const run = await runFido2Script(service.address!.host, service.address!.port).finally(() => service.close());
    summary = run.summary;
    const failed = summary.checks.filter((c) => !c.ok);
    expect(failed, run.stderr).toEqual([]);
    expect(summary.checks.map((c) => c.name)).toEqual(EXPECTED_CHECKS);
    expect(summary).toMatchObject({ ok: true, failed: 0, passed: EXPECTED_CHECKS.length, fido2: '0.9.1' });
    expect(run.code).toBe(0);
  }, 120_000);

  it('reports what the authenticator advertised and what it did', () => {
    const info = summary.info as { versions: string[]; extensions: string[]; pinUvAuthProtocols: number[]; aaguid: string };
    expect(info.versions).toEqual(expect.arrayContaining(['FIDO_2_0', 'U2F_V2']));
    expect(info.extensions).toEqual(expect.arrayContaining(['hmac-secret', 'credProtect']));
    expect(info.pinUvAuthProtocols).toEqual(expect.arrayContaining([1, 2]));
    expect(info.aaguid).toMatch(/^[0-9a-f]{32}$/);
    expect(summary.u2f).toBe(true);
    expect(summary.pinRetries).toEqual({ afterWrong: 7 });
    // alice (ES256, credProtect 2), bob (credProtect 3), ed (EdDSA) were resident; bob was then deleted.
    expect(summary.credMgmtV1).toMatchObject({ existing: 3, users: ['alice@example.com', 'bob@example.com', 'ed@example.com'] });
    expect(summary.credMgmtV2).toEqual({ before: 3, after: 2 });
    expect((summary.discoverable as { users: string[] }).users).toEqual(['user-alice', 'user-bob', 'user-ed']);
  });

  it('after a restart on the same store, the PIN and the remaining credentials are still there', async () => {
    const service = await start();
    const run = await runFido2Script(service.address!.host, service.address!.port, ['--persisted', '567890']).finally(() =>
      service.close(),
    );
    expect(run.summary.checks.filter((c) => !c.ok), run.stderr).toEqual([]);
    expect(run.summary.persisted).toEqual({
      clientPin: true,
      existing: 2,
      users: ['alice@example.com', 'ed@example.com'],
    });
  }, 60_000);
});
