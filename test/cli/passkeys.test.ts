/**
 * `keytunnel passkeys` (issue 16) against a real soft authenticator on its encrypted store, with credentials made
 * by the demo's WebAuthn client (CTAP2 as a browser sends it) and every sign-in verified by a relying party
 * (@simplewebauthn/server) with the public key it stored at registration.
 */
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readStoreFile, profileStorePath } from '../../agent/authenticators/soft/store-file.ts';
import { deserializeState } from '../../agent/authenticators/soft/state.ts';
import { CTAP2_ERR_NO_CREDENTIALS } from '../../protocol/ctap2.ts';
import { encode, type CborValue } from '../../protocol/cbor.ts';
import {
  passkeysBackup,
  passkeysExport,
  passkeysImport,
  passkeysList,
  passkeysPasswd,
  passkeysRestore,
  passkeysRm,
} from '../../cli/commands/passkeys.ts';
import { trustAdd } from '../../cli/commands/trust.ts';
import { checkCxf } from '../../cli/passkeys/cxf.ts';
import type { PasskeyRow } from '../../cli/passkeys/listing.ts';
import { WebAuthnError } from './passkeys-helpers.ts';
import { verifyAuthenticationResponse } from '@simplewebauthn/server';
import { getAssertion } from './passkeys-helpers.ts';
import { BACKUP_PASS, PASS, captureIo, openSoft, register, relyingParty, runCli, signIn } from './passkeys-helpers.ts';

const FP_A = 'a1'.repeat(32).match(/../g)!.join(':');
const FP_B = 'b2'.repeat(32).match(/../g)!.join(':');
let root: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'kt-passkeys-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function installation(name: string): Promise<{ stateDir: string; profile: string; path: string }> {
  const stateDir = join(root, name);
  await trustAdd({ fingerprint: FP_A, name: 'customer-a', 'state-dir': stateDir }, () => {});
  await trustAdd({ fingerprint: FP_B, name: 'customer-b', 'state-dir': stateDir }, () => {});
  return { stateDir, profile: 'default', path: profileStorePath(stateDir, 'default') };
}

async function listJson(
  where: { stateDir: string; profile: string },
  extra: { gateway?: string; shared?: boolean; rp?: string } = {},
  passphrase = PASS,
): Promise<PasskeyRow[]> {
  const io = captureIo({ KEYTUNNEL_PASSPHRASE: passphrase });
  await passkeysList({ ...where, ...extra, json: true }, io);
  return JSON.parse(io.lines.join('\n')) as PasskeyRow[];
}

describe('keytunnel passkeys', { timeout: 90_000 }, () => {
  it('lists passkeys per VM and RP (JSON and table); rm deletes one and its next sign-in fails', async () => {
    const inst = await installation('list');
    const rpX = relyingParty('login.example.com');
    const rpY = relyingParty('shop.example.org');
    const soft = await openSoft(inst.path);
    const a1 = await register(rpX, soft.port(FP_A), 'alice@a.example');
    const b1 = await register(rpX, soft.port(FP_B), 'bob@b.example');
    const b2 = await register(rpY, soft.port(FP_B), 'bob@b.example');
    const s1 = await register(rpY, soft.port(), 'sam@shared.example');
    const before = Date.now();
    await signIn(rpX, soft.port(FP_A), a1);
    await soft.close();

    const all = await listJson(inst);
    expect(all.map((r) => r.credentialId).sort()).toEqual([a1, b1, b2, s1].sort());
    const a = all.find((r) => r.credentialId === a1)!;
    expect(a).toMatchObject({
      rpId: 'login.example.com',
      userName: 'alice@a.example',
      userDisplayName: 'alice@a.example',
      gateway: 'customer-a',
      gatewayFingerprint: FP_A,
      signCount: 1,
      alg: -7,
    });
    expect(Date.parse(a.created)).toBeLessThanOrEqual(before);
    expect(Date.parse(a.lastUsed!)).toBeGreaterThanOrEqual(before - 1000);
    const s = all.find((r) => r.credentialId === s1)!;
    expect(s).toMatchObject({ gateway: 'shared', gatewayFingerprint: null, lastUsed: null, signCount: 0 });

    expect((await listJson(inst, { gateway: 'customer-b' })).map((r) => r.credentialId).sort()).toEqual([b1, b2].sort());
    expect((await listJson(inst, { gateway: FP_A })).map((r) => r.credentialId)).toEqual([a1]);
    expect((await listJson(inst, { shared: true })).map((r) => r.credentialId)).toEqual([s1]);
    expect((await listJson(inst, { rp: 'shop.example.org' })).map((r) => r.credentialId).sort()).toEqual([b2, s1].sort());

    const table = captureIo();
    await passkeysList({ ...inst }, table);
    expect(table.lines[0]).toMatch(/^GATEWAY\s+RP ID\s+USER\s+DISPLAY NAME\s+CREATED\s+LAST USED\s+COUNT\s+ALG\s+ID$/);
    expect(table.lines).toHaveLength(5);
    expect(table.lines.find((l) => l.includes(a1.slice(0, 12)))).toMatch(/^customer-a\s+login\.example\.com\s+alice@a\.example/);
    expect(table.errors.join('\n')).toMatch(/non-discoverable/);

    // Deleting needs confirmation: without a terminal and without --yes nothing happens.
    await expect(passkeysRm({ ...inst, ids: [b1.slice(0, 10)] }, captureIo())).rejects.toThrow(/--yes/);
    expect(await listJson(inst)).toHaveLength(4);
    const rmIo = captureIo();
    await passkeysRm({ ...inst, ids: [b1.slice(0, 10)], yes: true }, rmIo);
    expect(rmIo.lines).toEqual(['deleted 1 passkey']);
    expect((await listJson(inst)).map((r) => r.credentialId).sort()).toEqual([a1, b2, s1].sort());
    await expect(passkeysRm({ ...inst, ids: ['nosuchid'], yes: true }, captureIo())).rejects.toThrow(/no passkey with ID/);

    // The VM's next sign-in with the deleted credential fails; the others still work.
    const again = await openSoft(inst.path);
    const err = await signIn(rpX, again.port(FP_B), b1).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WebAuthnError);
    expect((err as WebAuthnError).ctapStatus).toBe(CTAP2_ERR_NO_CREDENTIALS);
    expect((await signIn(rpY, again.port(FP_B), b2)).id).toBe(b2);
    await again.close();
  });

  it('passwd is atomic: killed after writing the new image, the store still opens with the old passphrase', async () => {
    const inst = await installation('passwd');
    const rp = relyingParty('login.example.com');
    const soft = await openSoft(inst.path);
    const id = await register(rp, soft.port(FP_A), 'alice');
    await soft.close();
    const NEW = 'the new passphrase';

    // A child process changes the passphrase and is SIGKILLed between the durable temp file and the rename.
    const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./passkeys-passwd.child.ts', import.meta.url)), inst.stateDir], {
      env: { ...process.env, KEYTUNNEL_PASSPHRASE: PASS, KEYTUNNEL_NEW_PASSPHRASE: NEW },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const killed = await new Promise<string | null>((resolve) => {
      child.stdout.on('data', (d: Buffer) => {
        if (d.toString().includes('new image durable')) child.kill('SIGKILL');
      });
      child.on('exit', (_code, signal) => resolve(signal));
    });
    expect(killed, stderr).toBe('SIGKILL');
    expect((await readdir(inst.stateDir)).some((n) => n.includes('.kts.tmp-'))).toBe(true); // the new image, never renamed
    expect(deserializeState((await readStoreFile(inst.path, PASS))!).credentials).toHaveLength(1);
    await expect(readStoreFile(inst.path, NEW)).rejects.toThrow(/wrong passphrase/);

    // Done properly it switches: new passphrase opens it, the old one no longer does, the passkey still signs.
    await passkeysPasswd({ ...inst }, captureIo({ KEYTUNNEL_NEW_PASSPHRASE: NEW }));
    expect((await readdir(inst.stateDir)).some((n) => n.includes('.kts.tmp-'))).toBe(false); // leftover removed at open
    await expect(readStoreFile(inst.path, PASS)).rejects.toThrow(/wrong passphrase/);
    const reopened = await openSoft(inst.path, NEW);
    expect((await signIn(rp, reopened.port(FP_A), id)).id).toBe(id);
    await reopened.close();
    await expect(passkeysPasswd({ ...inst }, captureIo({ KEYTUNNEL_PASSPHRASE: NEW, KEYTUNNEL_NEW_PASSPHRASE: 'short' }))).rejects.toThrow(/at least 8/);
  });

  it('backup and restore: a fresh installation signs in (RP-verified with the old public key), non-discoverable too; merges keep the higher counter', async () => {
    const src = await installation('backup-src');
    const rp = relyingParty('login.example.com');
    const soft = await openSoft(src.path);
    const disc = await register(rp, soft.port(FP_A), 'alice');
    // A non-discoverable credential: its key lives in its id, wrapped under the store's secret.
    const nrOptions = await rp.registrationOptions('nora');
    const { createCredential } = await import('./passkeys-helpers.ts');
    const nr = await createCredential(soft.port(FP_A), { ...nrOptions, excludeCredentials: [] }, rp.origin);
    await rp.verifyRegistration(nr);
    await signIn(rp, soft.port(FP_A), disc);
    await soft.close();

    const file = join(root, 'backup.ktb');
    const io = captureIo();
    await passkeysBackup({ ...src, out: file }, io);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    await expect(passkeysBackup({ ...src, out: file }, captureIo())).rejects.toThrow(/exists/);

    // Restore into a fresh installation (its own store passphrase), and use it there.
    const dst = await installation('backup-dst');
    const dstIo = captureIo({ KEYTUNNEL_PASSPHRASE: 'destination passphrase' });
    await passkeysRestore({ ...dst, file }, dstIo);
    expect(dstIo.lines[0]).toMatch(/into an empty store/);
    const restored = await openSoft(dst.path, 'destination passphrase');
    const r1 = await signIn(rp, restored.port(FP_A), disc);
    expect(r1.newCounter).toBe(2); // continues above the backup's counter
    expect((await signIn(rp, restored.port(FP_A), nr.id)).id).toBe(nr.id);
    expect((await signIn(rp, restored.port(FP_A))).id).toBe(disc); // discoverable, empty allow list
    await restored.close();

    // Restoring the same backup again merges: nothing duplicated, the higher (restored store's) counter kept.
    const again = captureIo({ KEYTUNNEL_PASSPHRASE: 'destination passphrase' });
    await passkeysRestore({ ...dst, file }, again);
    expect(again.lines[0]).toMatch(/merged \(same authenticator\).*0 added, 0 updated, 1 already present/);
    const rows = await listJson({ ...dst }, {}, 'destination passphrase');
    expect(rows).toHaveLength(1);
    expect(rows[0]!.signCount).toBe(3);

    // Into a used store with another wrapping secret: refused (non-discoverable ones could not work), unless asked.
    // (A backup of the current state: an older copy would sign with a counter the RP has seen, its clone signal.)
    const file2 = join(root, 'backup2.ktb');
    await passkeysBackup({ ...dst, out: file2 }, captureIo({ KEYTUNNEL_PASSPHRASE: 'destination passphrase' }));
    const other = await installation('backup-other');
    const o = await openSoft(other.path);
    await register(relyingParty('other.example'), o.port(), 'olga');
    await o.close();
    const beforeBytes = await readFile(other.path);
    await expect(passkeysRestore({ ...other, file: file2 }, captureIo())).rejects.toThrow(/--discoverable-only/);
    expect(Buffer.compare(await readFile(other.path), beforeBytes)).toBe(0);
    const merge = captureIo();
    await passkeysRestore({ ...other, file: file2, discoverableOnly: true }, merge);
    expect(merge.lines[0]).toMatch(/discoverable credentials only.*1 added/);
    const merged = await openSoft(other.path);
    const m = await signIn(rp, merged.port(FP_A), disc); // the restored id does not unwrap under this store's secret
    expect(m).toEqual({ id: disc, newCounter: 4 });
    await merged.close();

    await expect(passkeysRestore({ ...dst, file }, captureIo({ KEYTUNNEL_PASSPHRASE: 'destination passphrase', KEYTUNNEL_BACKUP_PASSPHRASE: 'wrong one!' }))).rejects.toThrow(
      /wrong passphrase/,
    );
  });

  it('CXF: export (validated by the checker, 0600, counters) and import into a fresh installation signs in, RP-verified', async () => {
    const src = await installation('cxf-src');
    const rp = relyingParty('login.example.com');
    const soft = await openSoft(src.path);
    const unused = await register(rp, soft.port(FP_A), 'alice');
    const used = await register(rp, soft.port(FP_A), 'albert');
    await signIn(rp, soft.port(FP_A), used);
    await soft.close();

    const file = join(root, 'export.cxf.json');
    const io = captureIo();
    await passkeysExport({ ...src, out: file, gateway: 'customer-a' }, io);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(io.errors.join('\n')).toMatch(/skipped .*albert.*signature counter 1/);
    expect(io.errors.join('\n')).toMatch(/private keys/);
    const doc = JSON.parse(await readFile(file, 'utf8'));
    expect(doc.version).toEqual({ major: 1, minor: 0 });
    const checked = checkCxf(doc);
    expect(checked.passkeys).toHaveLength(1);
    const item = doc.accounts[0].items[0];
    expect(item.credentials[0]).toMatchObject({ type: 'passkey', credentialId: unused, rpId: 'login.example.com', username: 'alice', userDisplayName: 'alice' });
    expect(Object.keys(item.credentials[0]).sort()).toEqual(['credentialId', 'key', 'rpId', 'type', 'userDisplayName', 'userHandle', 'username']);

    // Import into a fresh installation, scoped to customer-b there; sign in through that scope only.
    const dst = await installation('cxf-dst');
    const imp = captureIo();
    await passkeysImport({ ...dst, file, gateway: 'customer-b' }, imp);
    expect(imp.lines[0]).toMatch(/imported 1 passkey into customer-b/);
    const rows = await listJson(dst);
    expect(rows).toEqual([expect.objectContaining({ credentialId: unused, gateway: 'customer-b', signCount: 0, zeroCounter: true })]);
    const there = await openSoft(dst.path);
    const first = await signIn(rp, there.port(FP_B), unused);
    const second = await signIn(rp, there.port(FP_B));
    expect([first.newCounter, second.newCounter]).toEqual([0, 0]); // CXF: imported counters stay 0
    const other = await signIn(rp, there.port(FP_A), unused).catch((e: unknown) => e);
    expect((other as WebAuthnError).ctapStatus).toBe(CTAP2_ERR_NO_CREDENTIALS);
    await there.close();
    // Importing it again adds nothing.
    const dup = captureIo();
    await passkeysImport({ ...dst, file, gateway: 'customer-b' }, dup);
    expect(dup.lines[0]).toMatch(/imported 0 passkeys .*1 already present/);

    // --encrypt wraps the file; import takes it back with the passphrase.
    const sealedFile = join(root, 'export.cxf.sealed');
    await passkeysExport({ ...src, out: sealedFile, rp: 'login.example.com', encrypt: true }, captureIo());
    expect((await readFile(sealedFile)).subarray(0, 8).toString('latin1')).toBe('KTSTATE\n');
    const dst2 = await installation('cxf-dst2');
    await passkeysImport({ ...dst2, file: sealedFile, shared: true }, captureIo());
    expect((await listJson(dst2)).map((r) => [r.credentialId, r.gateway])).toEqual([[unused, 'shared']]);
  });

  it('CXF: a file made by hand per the specification (P-256 and Ed25519) imports and signs', async () => {
    const p256 = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const ed = generateKeyPairSync('ed25519');
    const b64 = (b: Buffer | Uint8Array): string => Buffer.from(b).toString('base64url');
    const jwkA = p256.publicKey.export({ format: 'jwk' });
    const jwkB = ed.publicKey.export({ format: 'jwk' });
    const coseA = encode(
      new Map<CborValue, CborValue>([[1, 2], [3, -7], [-1, 1], [-2, Buffer.from(jwkA.x!, 'base64url')], [-3, Buffer.from(jwkA.y!, 'base64url')]]),
    );
    const coseB = encode(new Map<CborValue, CborValue>([[1, 1], [3, -8], [-1, 6], [-2, Buffer.from(jwkB.x!, 'base64url')]]));
    const idA = Buffer.from('0123456789abcdef'); // 16 bytes, as other managers make them
    const idB = Buffer.from('fedcba9876543210fedc');
    const passkey = (id: Buffer, user: string, key: Buffer) => ({
      type: 'passkey',
      credentialId: b64(id),
      rpId: 'login.example.com',
      username: user,
      userDisplayName: `${user} (display)`,
      userHandle: b64(Buffer.from(`handle-${user}`)),
      key: b64(key),
    });
    const doc = {
      version: { major: 1, minor: 0 },
      exporterRpId: 'passwords.example',
      exporterDisplayName: 'Example Manager',
      timestamp: 1_760_000_000,
      accounts: [
        {
          id: b64(Buffer.from('acct')),
          username: 'me',
          email: 'me@example.com',
          collections: [],
          items: [
            { id: b64(Buffer.from('item-1')), creationAt: 1_700_000_000, title: 'Example', credentials: [passkey(idA, 'pat', p256.privateKey.export({ format: 'der', type: 'pkcs8' }))] },
            { id: b64(Buffer.from('item-2')), title: 'Example', credentials: [passkey(idB, 'quinn', ed.privateKey.export({ format: 'der', type: 'pkcs8' })), { type: 'basic-auth', username: { fieldType: 'string', value: 'x' } }] },
          ],
        },
      ],
    };
    const file = join(root, 'hand.cxf.json');
    await writeFile(file, JSON.stringify(doc));
    const inst = await installation('cxf-hand');
    const io = captureIo();
    await passkeysImport({ ...inst, file, shared: true }, io);
    expect(io.lines[0]).toMatch(/imported 2 passkeys into shared/);
    expect(io.errors.join('\n')).toMatch(/skipped 1 credential that are not passkeys|skipped 1 credential/);
    const rows = await listJson(inst);
    expect(rows.map((r) => [r.userName, r.alg, r.created.slice(0, 4)]).sort()).toEqual([
      ['pat', -7, '2023'],
      ['quinn', -8, String(new Date().getUTCFullYear())],
    ]);

    // Sign in with each (shared scope: the view of `keytunnel soft` and of gateways whose policy scope is shared),
    // verified against the public key that never passed through keytunnel.
    const soft = await openSoft(inst.path);
    for (const [id, cose] of [
      [idA, coseA],
      [idB, coseB],
    ] as const) {
      const response = await getAssertion(soft.port(), { challenge: b64(Buffer.from('challenge-123')), rpId: 'login.example.com', allowCredentials: [{ id: b64(id), type: 'public-key' }] }, 'https://login.example.com');
      const result = await verifyAuthenticationResponse({
        response,
        expectedChallenge: b64(Buffer.from('challenge-123')),
        expectedOrigin: 'https://login.example.com',
        expectedRPID: 'login.example.com',
        credential: { id: b64(id), publicKey: new Uint8Array(cose), counter: 0 },
        requireUserVerification: false,
      });
      expect(result.verified).toBe(true);
      expect(result.authenticationInfo.newCounter).toBe(0);
    }
    await soft.close();
  });

  it('CXF: malformed or hostile files fail with a clear error and change nothing', async () => {
    const inst = await installation('cxf-hostile');
    const soft = await openSoft(inst.path);
    await register(relyingParty('keep.example'), soft.port(), 'kept');
    await soft.close();
    const before = await readFile(inst.path);
    const good = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ format: 'der', type: 'pkcs8' });
    const b64 = (b: Buffer | Uint8Array): string => Buffer.from(b).toString('base64url');
    const base = (cred: Record<string, unknown>) => ({
      version: { major: 1, minor: 0 },
      exporterRpId: 'x.example',
      exporterDisplayName: 'X',
      timestamp: 1,
      accounts: [{ id: 'YWNjdA', username: '', email: '', collections: [], items: [{ id: 'aXRlbQ', title: 't', credentials: [cred] }] }],
    });
    const pk = (over: Record<string, unknown>) =>
      base({ type: 'passkey', credentialId: b64(Buffer.from('id-0123456789')), rpId: 'login.example.com', username: 'u', userDisplayName: 'U', userHandle: 'aGFuZGxl', key: b64(good), ...over });
    const cases: [string, unknown, RegExp][] = [
      ['not json', '{"version": ', /not JSON/],
      ['wrong type', pk({ username: 42 }), /username: expected a string/],
      ['missing member', pk({ userHandle: undefined }), /userHandle: missing/],
      ['huge field', pk({ userDisplayName: 'x'.repeat(100_000) }), /userDisplayName: longer than 4096/],
      ['huge credential id', pk({ credentialId: b64(Buffer.alloc(2000, 1)) }), /credentialId: not base64url of at most/],
      ['P-384 key', pk({ key: b64(generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey.export({ format: 'der', type: 'pkcs8' })) }), /curve secp384r1: only P-256/],
      ['secp256k1 key', pk({ key: b64(generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).privateKey.export({ format: 'der', type: 'pkcs8' })) }), /curve secp256k1/],
      ['garbage key', pk({ key: b64(Buffer.from('not a key at all')) }), /not a PKCS#8/],
      ['bad rp id', pk({ rpId: 'evil\u202e.example' }), /rpId: the RP ID is not a valid domain name/],
      ['version 2', { ...(pk({}) as object), version: { major: 2, minor: 0 } }, /version 2 is not supported/],
      ['accounts not an array', { ...(pk({}) as object), accounts: {} }, /accounts: expected an array/],
    ];
    for (const [name, content, expected] of cases) {
      const file = join(root, `hostile-${name.replace(/\W/g, '_')}.json`);
      await writeFile(file, typeof content === 'string' ? content : JSON.stringify(content));
      const err = await passkeysImport({ ...inst, file, shared: true }, captureIo()).catch((e: unknown) => e as Error);
      expect(err, name).toBeInstanceOf(Error);
      expect((err as Error).message, name).toMatch(expected);
      expect((err as Error).message, name).toMatch(/nothing was imported/);
      expect(Buffer.compare(await readFile(inst.path), before), name).toBe(0);
    }
    // A fresh installation is not even created by a refused import.
    const fresh = await installation('cxf-hostile-fresh');
    const file = join(root, 'hostile-fresh.json');
    await writeFile(file, JSON.stringify(pk({ key: 'AAAA' })));
    await expect(passkeysImport({ ...fresh, file, shared: true }, captureIo())).rejects.toThrow(/key/);
    await expect(stat(fresh.path)).rejects.toThrow(/ENOENT/);
  });

  it('refuses to write while the agent (here `keytunnel soft`) has the store open; list and backup still work', async () => {
    const inst = await installation('running');
    const soft = await openSoft(inst.path);
    const id = await register(relyingParty('login.example.com'), soft.port(), 'alice');
    await soft.close();
    const child = spawn(process.execPath, [fileURLToPath(new URL('../../bin/keytunnel.js', import.meta.url)), 'soft', '--hid', 'loopback:127.0.0.1:0', '--approve', 'always', '--state-dir', inst.stateDir], {
      env: { ...process.env, KEYTUNNEL_NO_BUNDLE: '1', KEYTUNNEL_PASSPHRASE: PASS, KEYTUNNEL_LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      await new Promise<void>((resolve, reject) => {
        let err = '';
        child.stderr.on('data', (d: Buffer) => {
          err += d.toString();
          if (err.includes('listening on')) resolve();
        });
        child.on('exit', () => reject(new Error(`keytunnel soft exited: ${err}`)));
      });
      const env = { KEYTUNNEL_PASSPHRASE: PASS, KEYTUNNEL_BACKUP_PASSPHRASE: BACKUP_PASS };
      const refused = await runCli(['passkeys', 'rm', id, '--yes', '--state-dir', inst.stateDir], env);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(new RegExp(`open in another process \\(store is in use by process ${child.pid}\\).*stop \`keytunnel agent --soft\``));
      expect(refused.stderr).toMatch(/nothing was changed/);
      const listed = await runCli(['passkeys', 'list', '--json', '--state-dir', inst.stateDir], env);
      expect(listed.code, listed.stderr).toBe(0);
      expect((JSON.parse(listed.stdout) as PasskeyRow[]).map((r) => r.credentialId)).toEqual([id]);
      const backup = await runCli(['passkeys', 'backup', '--out', join(root, 'running.ktb'), '--state-dir', inst.stateDir], env);
      expect(backup.code, backup.stderr).toBe(0);
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
    // Stopped: now it works.
    const done = await runCli(['passkeys', 'rm', id, '--yes', '--state-dir', inst.stateDir], { KEYTUNNEL_PASSPHRASE: PASS });
    expect(done.code, done.stderr).toBe(0);
    expect(done.stdout).toMatch(/deleted 1 passkey/);
  });
});
