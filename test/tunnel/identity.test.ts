/**
 * tunnel/fingerprint.ts and tunnel/identity.ts: fingerprint format and parsing, the platform state dir, identity
 * creation (0600 key file in a 0700 dir, atomic and exclusive), reload, validation, and `keytunnel id`.
 */
import { execFile } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { chmod, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { FingerprintError, fingerprintOf, isFingerprint, parseFingerprint } from '../../tunnel/fingerprint.ts';
import {
  IDENTITY_FILE,
  IdentityError,
  defaultStateDir,
  generateIdentityPem,
  loadOrCreateIdentity,
  parseIdentityPem,
} from '../../tunnel/identity.ts';
import { runId } from '../../cli/commands/id.ts';
import { captureLog, removeTempDirs, tempDir } from './helpers.ts';

const run = promisify(execFile);
const repo = path.resolve(import.meta.dirname, '../..');

afterAll(removeTempDirs);

/** The fingerprint openssl/Node would print, lowercased. */
function nodeFingerprint(pem: string): string {
  return new X509Certificate(pem).fingerprint256.toLowerCase();
}

describe('fingerprints', () => {
  const canonical = Array.from({ length: 32 }, (_, i) => (i * 7 + 3).toString(16).padStart(2, '0')).join(':');

  it('is SHA-256 of the DER as lowercase colon-separated hex pairs', () => {
    expect(fingerprintOf(new TextEncoder().encode('abc'))).toBe(
      'ba:78:16:bf:8f:01:cf:ea:41:41:40:de:5d:ae:22:23:b0:03:61:a3:96:17:7a:9c:b4:10:ff:61:f2:00:15:ad',
    );
  });
  it('accepts input with or without colons, any case, surrounding whitespace', () => {
    expect(parseFingerprint(canonical)).toBe(canonical);
    expect(parseFingerprint(canonical.toUpperCase())).toBe(canonical);
    expect(parseFingerprint(canonical.replaceAll(':', ''))).toBe(canonical);
    expect(parseFingerprint(`  ${canonical.replaceAll(':', '').toUpperCase()}\n`)).toBe(canonical);
    expect(isFingerprint(canonical)).toBe(true);
  });
  it('refuses anything else', () => {
    for (const bad of ['', 'zz', canonical.slice(0, -3), `${canonical}:00`, canonical.replace(':', '::'), canonical.replaceAll(':', '-'), 'g'.repeat(64)]) {
      expect(() => parseFingerprint(bad)).toThrow(FingerprintError);
      expect(isFingerprint(bad)).toBe(false);
    }
  });
});

describe('defaultStateDir', () => {
  it('Linux: $XDG_CONFIG_HOME/keytunnel, else ~/.config/keytunnel (relative XDG ignored)', () => {
    expect(defaultStateDir({ XDG_CONFIG_HOME: '/x/cfg' }, 'linux', '/home/u')).toBe('/x/cfg/keytunnel');
    expect(defaultStateDir({}, 'linux', '/home/u')).toBe('/home/u/.config/keytunnel');
    expect(defaultStateDir({ XDG_CONFIG_HOME: 'rel' }, 'linux', '/home/u')).toBe('/home/u/.config/keytunnel');
    expect(defaultStateDir({}, 'freebsd', '/home/u')).toBe('/home/u/.config/keytunnel');
  });
  it('Windows: %APPDATA%\\keytunnel', () => {
    expect(defaultStateDir({ APPDATA: 'C:\\Users\\u\\AppData\\Roaming' }, 'win32', 'C:\\Users\\u')).toBe(
      'C:\\Users\\u\\AppData\\Roaming\\keytunnel',
    );
    expect(defaultStateDir({}, 'win32', 'C:\\Users\\u')).toBe('C:\\Users\\u\\AppData\\Roaming\\keytunnel');
  });
  it('macOS: ~/Library/Application Support/keytunnel', () => {
    expect(defaultStateDir({ XDG_CONFIG_HOME: '/x' }, 'darwin', '/Users/u')).toBe('/Users/u/Library/Application Support/keytunnel');
  });
});

describe('identity', () => {
  it('is created on first use: P-256 self-signed cert, key file 0600 in a 0700 dir, fingerprint of the DER', async () => {
    const dir = path.join(await tempDir(), 'nested', 'state');
    const { identity, created } = await loadOrCreateIdentity(dir);
    expect(created).toBe(true);
    expect(identity.path).toBe(path.join(dir, IDENTITY_FILE));
    expect((await stat(identity.path)).mode & 0o777).toBe(0o600);
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    expect(await readdir(dir)).toEqual([IDENTITY_FILE]); // no temporary files left behind

    const cert = new X509Certificate(identity.certPem);
    expect(cert.subject).toBe('CN=keytunnel');
    expect(cert.issuer).toBe('CN=keytunnel');
    expect(cert.verify(cert.publicKey)).toBe(true); // self-signed
    expect(cert.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(cert.checkPrivateKey(createPrivateKey(identity.keyPem))).toBe(true);
    expect(identity.fingerprint).toBe(nodeFingerprint(identity.certPem));
    expect(identity.fingerprint).toBe(fingerprintOf(identity.certDer));
    expect(identity.fingerprint).toMatch(/^([0-9a-f]{2}:){31}[0-9a-f]{2}$/);
  });

  it('is loaded, not recreated, on later use', async () => {
    const dir = await tempDir();
    const first = await loadOrCreateIdentity(dir);
    const second = await loadOrCreateIdentity(dir);
    expect(second.created).toBe(false);
    expect(second.identity.fingerprint).toBe(first.identity.fingerprint);
    expect(second.identity.keyPem).toBe(first.identity.keyPem);
  });

  it('concurrent first use agrees on one identity', async () => {
    const dir = await tempDir();
    const results = await Promise.all(Array.from({ length: 6 }, () => loadOrCreateIdentity(dir)));
    expect(new Set(results.map((r) => r.identity.fingerprint)).size).toBe(1);
    expect(results.filter((r) => r.created).length).toBe(1);
    expect(await readdir(dir)).toEqual([IDENTITY_FILE]);
  });

  it('two installations get different identities', async () => {
    const a = await loadOrCreateIdentity(await tempDir());
    const b = await loadOrCreateIdentity(await tempDir());
    expect(a.identity.fingerprint).not.toBe(b.identity.fingerprint);
  });

  it('tightens a group/world-readable key file to 0600, with a warning', async () => {
    const dir = await tempDir();
    const { identity } = await loadOrCreateIdentity(dir);
    await chmod(identity.path, 0o644);
    const cap = captureLog();
    await loadOrCreateIdentity(dir, cap.log);
    expect((await stat(identity.path)).mode & 0o777).toBe(0o600);
    expect(cap.text()).toContain('readable by others');
    expect(cap.text()).not.toContain('PRIVATE KEY');
  });

  it('refuses a key that does not match the certificate, and garbage', async () => {
    const a = await generateIdentityPem();
    const b = await generateIdentityPem();
    const keyA = a.match(/-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----/)![0];
    const certB = b.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/)![0];
    expect(() => parseIdentityPem(`${keyA}\n${certB}\n`, 'x')).toThrow(/does not match/);
    expect(() => parseIdentityPem(certB, 'x')).toThrow(IdentityError);
    expect(() => parseIdentityPem('-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n' + certB, 'x')).toThrow(IdentityError);
    const dir = await tempDir();
    await writeFile(path.join(dir, IDENTITY_FILE), `${keyA}\n${certB}\n`, { mode: 0o600 });
    await expect(loadOrCreateIdentity(dir)).rejects.toThrow(IdentityError);
  });
});

describe('keytunnel id', () => {
  it('prints the fingerprint alone on the first stdout line, matching the certificate; stable on rerun', async () => {
    const dir = path.join(await tempDir(), 'state');
    const first = await run(process.execPath, ['bin/keytunnel.js', 'id', '--state-dir', dir], { cwd: repo });
    const lines = first.stdout.split('\n');
    expect(lines[0]).toMatch(/^([0-9a-f]{2}:){31}[0-9a-f]{2}$/);
    expect(lines.slice(1).join('')).toBe('');
    const pem = await readFile(path.join(dir, IDENTITY_FILE), 'utf8');
    expect(lines[0]).toBe(nodeFingerprint(pem));
    expect(first.stderr).toContain('created a new identity');
    expect(first.stderr).not.toContain('PRIVATE KEY');
    expect((await stat(path.join(dir, IDENTITY_FILE))).mode & 0o777).toBe(0o600);

    const second = await run(process.execPath, ['bin/keytunnel.js', 'id', '--state-dir', dir], { cwd: repo });
    expect(second.stdout.split('\n')[0]).toBe(lines[0]);
    expect(second.stderr).not.toContain('created');
  });

  it('fails with exit code 1, a message on stderr and nothing on stdout when the state dir is unusable', async () => {
    const file = path.join(await tempDir(), 'not-a-dir');
    await writeFile(file, 'x');
    const out: string[] = [];
    const err: string[] = [];
    const code = await runId({ stateDir: file }, { load: (d) => loadOrCreateIdentity(d), stdout: (t) => out.push(t), stderr: (t) => err.push(t) });
    expect(code).toBe(1);
    expect(out).toEqual([]);
    expect(err.join('')).toContain(`cannot load or create the identity in ${file}`);
  });
});
