/**
 * This installation's tunnel identity: a P-256 key and a self-signed X.509 certificate (made with @peculiar/x509),
 * created on first use in the state directory and pinned by peers through its SHA-256 fingerprint.
 *
 * Both live in one PEM file, `<stateDir>/identity.pem` (PRIVATE KEY then CERTIFICATE), mode 0600, in a 0700
 * directory. It is created atomically and exclusively: written to a temporary file, fsynced, then hard-linked
 * into place (link fails if the file already exists, so two processes starting at once agree on one identity;
 * where hard links are unsupported it falls back to rename). A crash never leaves a torn or half-written identity.
 * On load the key must be P-256 and match the certificate.
 */
import 'reflect-metadata';
import { createPrivateKey, createPublicKey, randomBytes, webcrypto, X509Certificate as NodeX509 } from 'node:crypto';
import { constants as fsConstants, promises as fs } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import * as x509 from '@peculiar/x509';
import type { Logger } from '../protocol/logger.ts';
import { fingerprintOf } from './fingerprint.ts';
import { KeytunnelError } from '../protocol/errors.ts';

/** File name of the identity inside the state directory. */
export const IDENTITY_FILE = 'identity.pem';
/** Subject common name of the certificates we make (peers never check names: the fingerprint is the identity). */
export const IDENTITY_COMMON_NAME = 'keytunnel';
/** Certificate validity. Peers do not check dates (pinning), so this only has to outlive the installation. */
const VALIDITY_YEARS = 30;
/** Largest identity file we read (a P-256 key + certificate is well under 2 KiB). */
const MAX_IDENTITY_FILE_BYTES = 64 * 1024;

export interface Identity {
  /** The certificate, PEM. */
  readonly certPem: string;
  /** The certificate, DER. */
  readonly certDer: Uint8Array;
  /** The private key, PKCS#8 PEM. Never log it. */
  readonly keyPem: string;
  /** SHA-256 of the DER certificate, `aa:bb:...`. */
  readonly fingerprint: string;
  /** The file it was loaded from. */
  readonly path: string;
}

export interface LoadedIdentity {
  readonly identity: Identity;
  /** Whether this call created it. */
  readonly created: boolean;
}

export class IdentityError extends KeytunnelError {
  override readonly name = 'IdentityError';
  readonly code = 'IDENTITY';
}

/**
 * The platform's per-user configuration directory for keytunnel: `$XDG_CONFIG_HOME/keytunnel` (or
 * `~/.config/keytunnel`) on Linux and other Unixes, `%APPDATA%\keytunnel` on Windows,
 * `~/Library/Application Support/keytunnel` on macOS. `--state-dir` overrides it.
 */
export function defaultStateDir(
  env: Readonly<Record<string, string | undefined>> = process.env,
  platform: NodeJS.Platform = process.platform,
  home: string = homedir(),
): string {
  if (platform === 'win32') {
    const appData = env.APPDATA;
    return appData ? path.win32.join(appData, 'keytunnel') : path.win32.join(home, 'AppData', 'Roaming', 'keytunnel');
  }
  if (platform === 'darwin') return path.posix.join(home, 'Library', 'Application Support', 'keytunnel');
  // XDG Base Directory spec: a relative XDG_CONFIG_HOME is invalid and must be ignored.
  const xdg = env.XDG_CONFIG_HOME;
  const base = xdg && path.posix.isAbsolute(xdg) ? xdg : path.posix.join(home, '.config');
  return path.posix.join(base, 'keytunnel');
}

/** Load the identity from `stateDir`, creating the directory and the identity on first use. */
export async function loadOrCreateIdentity(stateDir: string, log?: Logger): Promise<LoadedIdentity> {
  await fs.mkdir(stateDir, { recursive: true, mode: 0o700 });
  const file = path.join(stateDir, IDENTITY_FILE);
  const existing = await readIdentity(file, log);
  if (existing) return { identity: existing, created: false };

  const pem = await generateIdentityPem();
  const created = await writeExclusive(file, pem);
  const identity = await readIdentity(file, log);
  if (!identity) throw new IdentityError(`identity file ${file} vanished while being created`);
  if (created) log?.info({ fingerprint: identity.fingerprint, path: file }, 'created a new tunnel identity');
  return { identity, created };
}

/** Generate a fresh P-256 key and self-signed certificate; returns the PEM file contents. */
export async function generateIdentityPem(now: Date = new Date()): Promise<string> {
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const serial = randomBytes(16);
  serial[0] &= 0x7f; // a positive INTEGER (RFC 5280 §4.1.2.2)
  const notAfter = new Date(now);
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + VALIDITY_YEARS);
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: serial.toString('hex'),
      name: `CN=${IDENTITY_COMMON_NAME}`,
      notBefore: new Date(now.getTime() - 60 * 60 * 1000), // tolerate a peer whose clock is a little behind
      notAfter,
      signingAlgorithm: algorithm,
      keys,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      ],
    },
    webcrypto as Parameters<typeof x509.X509CertificateGenerator.createSelfSigned>[1],
  );
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const keyPem = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }).export({ format: 'pem', type: 'pkcs8' });
  return `${String(keyPem).trimEnd()}\n${cert.toString('pem').trimEnd()}\n`;
}

/** Parse and check an identity file's contents (exported for tests). */
export function parseIdentityPem(pem: string, file: string): Identity {
  const keyBlocks = pem.match(/-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----/g) ?? [];
  const certBlocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (keyBlocks.length !== 1 || certBlocks.length !== 1) {
    throw new IdentityError(`${file}: expected one PRIVATE KEY and one CERTIFICATE block`);
  }
  let cert: NodeX509;
  let keyPem: string;
  try {
    cert = new NodeX509(certBlocks[0]);
    const key = createPrivateKey(keyBlocks[0]);
    if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
      throw new IdentityError(`${file}: the key is not a P-256 key`);
    }
    const fromKey = createPublicKey(key).export({ format: 'der', type: 'spki' });
    const fromCert = cert.publicKey.export({ format: 'der', type: 'spki' });
    if (!fromKey.equals(fromCert)) throw new IdentityError(`${file}: the key does not match the certificate`);
    keyPem = String(key.export({ format: 'pem', type: 'pkcs8' }));
  } catch (err) {
    if (err instanceof IdentityError) throw err;
    throw new IdentityError(`${file}: unreadable identity (${(err as Error).message})`);
  }
  const certDer = new Uint8Array(cert.raw);
  return { certPem: cert.toString(), certDer, keyPem, fingerprint: fingerprintOf(certDer), path: file };
}

async function readIdentity(file: string, log?: Logger): Promise<Identity | undefined> {
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(file, fsConstants.O_RDONLY);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new IdentityError(`${file} is not a regular file`);
    if (stat.size > MAX_IDENTITY_FILE_BYTES) throw new IdentityError(`${file} is too large to be an identity`);
    if (process.platform !== 'win32' && (stat.mode & 0o077) !== 0) {
      // Like ssh, keep private keys private; tighten rather than refuse so an upgrade never locks anyone out.
      log?.warn({ path: file, mode: (stat.mode & 0o777).toString(8) }, 'identity file was readable by others; setting mode 0600');
      await handle.chmod(0o600);
    }
    return parseIdentityPem(await handle.readFile('utf8'), file);
  } finally {
    await handle.close();
  }
}

/**
 * Write `contents` to `file` (mode 0600) atomically and only if it does not exist yet. Returns false when another
 * process won the race (its file stays).
 */
async function writeExclusive(file: string, contents: string): Promise<boolean> {
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  const handle = await fs.open(tmp, 'wx', 0o600);
  try {
    await handle.writeFile(contents, 'utf8');
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await fs.link(tmp, file);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code === 'EPERM' || code === 'ENOTSUP' || code === 'ENOSYS' || code === 'EXDEV') {
      // No hard links here (some network and FAT file systems): rename is still atomic, just not exclusive.
      await fs.rename(tmp, file);
      return true;
    }
    throw err;
  } finally {
    await fs.rm(tmp, { force: true });
    await syncDir(path.dirname(file));
  }
}

/** fsync a directory so the new entry survives a crash (best effort: not possible on Windows). */
async function syncDir(dir: string): Promise<void> {
  if (process.platform === 'win32') return;
  try {
    const handle = await fs.open(dir, fsConstants.O_RDONLY);
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // best effort
  }
}
