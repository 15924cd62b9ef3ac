/**
 * Passkeys in the FIDO Alliance Credential Exchange Format (CXF) v1.0 — the JSON exchange document
 * (https://fidoalliance.org/specs/cx/cxf-v1.0-ps-20250814.html, Proposed Standard of 14 August 2025; the member
 * lists below were taken from the Review Draft of 13 March 2025 as Bitwarden's credential-exchange-format crate
 * transcribes it, and match the PS-era platform API, Apple's ASImportableCredential.Passkey). Only what passkeys
 * need is produced; on import every other credential type is skipped and counted.
 *
 *   Header     { version: {major, minor}, exporterRpId, exporterDisplayName, timestamp, accounts: Account[] }
 *   Account    { id (b64url, ≤ 64 bytes), username, email, fullName?, collections: [], items: Item[], extensions? }
 *   Item       { id (b64url, ≤ 64 bytes), creationAt?, modifiedAt?, title, subtitle?, favorite?, scope?,
 *                credentials: Credential[], tags?, extensions? }
 *   Passkey    { type: "passkey", credentialId (b64url), rpId, username, userDisplayName, userHandle (b64url),
 *                key (b64url PKCS#8 DER), fido2Extensions? }
 *   Fido2Extensions { hmacCredentials?: {algorithm: "hmac-sha256", credWithUV, credWithoutUV}, credBlob?,
 *                     largeBlob?: {uncompressedSize, data}, payments? }
 *
 * Signature counters (CXF v1.0, passkey note): passkeys with a non-zero signature counter MUST be left out of an
 * export (and the user SHOULD be told), and an importer MUST give imported passkeys a zero counter that never
 * moves. So `export` skips used passkeys made here (they count per credential, for the RP's clone detection) and
 * names them; imported passkeys are stored with `zeroCounter` and always sign with counter 0.
 *
 * The checker ({@link checkCxf}) is written from that member list: types, required members, base64url, byte
 * bounds. An import is all-or-nothing: the whole file is checked and mapped before the store is touched.
 */
import { createHash } from 'node:crypto';
import { MAX_CRED_BLOB_LENGTH } from '../../agent/authenticators/soft/credential-id.ts';
import { MAX_STORED_STRING_BYTES, MAX_USER_ID_LENGTH, OUR_MAX_CREDENTIAL_ID_LENGTH } from '../../agent/authenticators/soft/limits.ts';
import { truncateUtf8 } from '../../agent/authenticators/soft/parse.ts';
import { CRED_PROTECT_UV_OPTIONAL, type ResidentCredential } from '../../agent/authenticators/soft/state.ts';
import { rpIdProblem } from '../../agent/policy/rp-id.ts';
import { decodePkcs8, encodePkcs8, KeyFormatError } from './cxf-key.ts';
import { KeytunnelError } from '../../protocol/errors.ts';

export const CXF_VERSION = { major: 1, minor: 0 } as const;
export const CXF_SPEC = 'FIDO Alliance Credential Exchange Format v1.0 (Proposed Standard, 2025-08-14)';
/** exporterRpId: keytunnel has no web origin of its own; a reserved name (RFC 2606 ".invalid") says so. */
export const EXPORTER_RP_ID = 'keytunnel.invalid';
export const EXPORTER_DISPLAY_NAME = 'keytunnel soft authenticator';

/** Bounds of what an import reads (a hostile file must not make us allocate or store without limit). */
export const MAX_CXF_FILE_BYTES = 16 * 1024 * 1024;
export const MAX_CXF_PASSKEYS = 100_000;
/** Longest text member read (titles, user names; names are stored truncated to 64 bytes as CTAP allows). */
export const MAX_CXF_TEXT = 4096;
/** CXF: account and item ids are opaque byte sequences of at most 64 bytes. */
export const MAX_CXF_OPAQUE_ID = 64;

const b64u = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url');

// ---------------------------------------------------------------------------------------------- export

export interface CxfPasskey {
  readonly type: 'passkey';
  readonly credentialId: string;
  readonly rpId: string;
  readonly username: string;
  readonly userDisplayName: string;
  readonly userHandle: string;
  readonly key: string;
  readonly fido2Extensions?: CxfFido2Extensions;
}

export interface CxfFido2Extensions {
  hmacCredentials?: { readonly algorithm: 'hmac-sha256'; readonly credWithUV: string; readonly credWithoutUV: string };
  credBlob?: string;
}

/** Whether CXF allows exporting this credential (CXF v1.0: only passkeys whose signature counter is zero). */
export function exportable(c: ResidentCredential): boolean {
  return c.signCount === 0;
}

function itemId(c: ResidentCredential): string {
  // Stable across exports of the same passkey, unlinkable to anything but the credential id itself.
  return b64u(createHash('sha256').update('keytunnel cxf item').update(c.id).digest().subarray(0, 16));
}

export function passkeyToCxf(c: ResidentCredential): CxfPasskey {
  const ext: CxfFido2Extensions = {};
  if (c.hmacSecret && c.credRandom !== undefined && c.credRandom.length === 64) {
    // state.ts: credRandom = CredRandomWithoutUV || CredRandomWithUV (CTAP 2.1 PS 2021-06-15 §12.5).
    ext.hmacCredentials = { algorithm: 'hmac-sha256', credWithUV: b64u(c.credRandom.subarray(32, 64)), credWithoutUV: b64u(c.credRandom.subarray(0, 32)) };
  }
  if (c.credBlob !== undefined && c.credBlob.length > 0) ext.credBlob = b64u(c.credBlob);
  return {
    type: 'passkey',
    credentialId: b64u(c.id),
    rpId: c.rpId,
    username: c.userName ?? '',
    userDisplayName: c.userDisplayName ?? '',
    userHandle: b64u(c.userId),
    key: b64u(encodePkcs8(c.alg, c.privateKey)),
    ...(Object.keys(ext).length > 0 ? { fido2Extensions: ext } : {}),
  };
}

/** The whole exchange document (one account holding one item per passkey). */
export function buildCxfDocument(credentials: readonly ResidentCredential[], now: number, accountId: Uint8Array): object {
  return {
    version: { ...CXF_VERSION },
    exporterRpId: EXPORTER_RP_ID,
    exporterDisplayName: EXPORTER_DISPLAY_NAME,
    timestamp: Math.floor(now / 1000),
    accounts: [
      {
        id: b64u(accountId),
        username: '',
        email: '',
        collections: [],
        items: credentials.map((c) => ({
          id: itemId(c),
          creationAt: Math.floor(c.createdAt / 1000),
          title: c.rpName ?? c.rpId,
          ...(c.userName !== undefined ? { subtitle: c.userName } : {}),
          scope: { urls: [`https://${c.rpId}`], androidApps: [] },
          credentials: [passkeyToCxf(c)],
        })),
      },
    ],
  };
}

// ---------------------------------------------------------------------------------------------- checker

/** A problem in a CXF document, with the JSON path where it is. */
export interface CxfProblem {
  readonly path: string;
  readonly message: string;
}

export class CxfError extends KeytunnelError {
  override readonly name = 'CxfError';
  readonly code = 'CXF';
  constructor(readonly problems: readonly CxfProblem[]) {
    super(
      `not an importable CXF file: ${problems
        .slice(0, 5)
        .map((p) => `${p.path}: ${p.message}`)
        .join('; ')}${problems.length > 5 ? `; and ${problems.length - 5} more` : ''}`,
    );
  }
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

class Checker {
  readonly problems: CxfProblem[] = [];
  bad(path: string, message: string): undefined {
    if (this.problems.length < 100) this.problems.push({ path, message });
    return undefined;
  }
  obj(v: Json | undefined, path: string): Record<string, Json> | undefined {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return this.bad(path, 'expected an object');
    return v;
  }
  arr(v: Json | undefined, path: string, max = MAX_CXF_PASSKEYS): Json[] | undefined {
    if (!Array.isArray(v)) return this.bad(path, 'expected an array');
    if (v.length > max) return this.bad(path, `more than ${max} entries`);
    return v;
  }
  str(o: Record<string, Json>, k: string, path: string, opts: { optional?: boolean; max?: number } = {}): string | undefined {
    const v = o[k];
    if (v === undefined && opts.optional) return undefined;
    if (typeof v !== 'string') return this.bad(`${path}.${k}`, v === undefined ? 'missing (required)' : 'expected a string');
    if (v.length > (opts.max ?? MAX_CXF_TEXT)) return this.bad(`${path}.${k}`, `longer than ${opts.max ?? MAX_CXF_TEXT} characters`);
    return v;
  }
  uint(o: Record<string, Json>, k: string, path: string, optional = false): number | undefined {
    const v = o[k];
    if (v === undefined && optional) return undefined;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) return this.bad(`${path}.${k}`, 'expected a non-negative integer');
    return v;
  }
  bool(o: Record<string, Json>, k: string, path: string): boolean | undefined {
    const v = o[k];
    if (v === undefined) return undefined;
    if (typeof v !== 'boolean') return this.bad(`${path}.${k}`, 'expected true or false');
    return v;
  }
  /** base64url (RFC 4648 §5, unpadded or padded) of minBytes..maxBytes bytes. */
  b64(o: Record<string, Json>, k: string, path: string, minBytes: number, maxBytes: number, optional = false): Uint8Array | undefined {
    const v = o[k];
    if (v === undefined && optional) return undefined;
    if (typeof v !== 'string') return this.bad(`${path}.${k}`, v === undefined ? 'missing (required)' : 'expected a base64url string');
    if (v.length > Math.ceil((maxBytes * 4) / 3) + 2 || !/^[A-Za-z0-9_-]*={0,2}$/.test(v)) {
      return this.bad(`${path}.${k}`, `not base64url of at most ${maxBytes} bytes`);
    }
    const bytes = new Uint8Array(Buffer.from(v.replace(/=+$/, ''), 'base64url'));
    if (bytes.length < minBytes || bytes.length > maxBytes) return this.bad(`${path}.${k}`, `${bytes.length} bytes (expected ${minBytes}..${maxBytes})`);
    return bytes;
  }
}

export interface ImportedPasskey {
  readonly path: string;
  readonly credentialId: Uint8Array;
  readonly rpId: string;
  readonly userName: string;
  readonly userDisplayName: string;
  readonly userHandle: Uint8Array;
  readonly alg: ResidentCredential['alg'];
  readonly secret: Uint8Array;
  readonly createdAt?: number;
  readonly rpName?: string;
  readonly credRandom?: Uint8Array;
  readonly credBlob?: Uint8Array;
}

export interface CheckedCxf {
  readonly passkeys: ImportedPasskey[];
  /** Credentials of other types (passwords, notes, …): not for an authenticator, skipped. */
  readonly otherCredentials: number;
  /** Passkey members this authenticator cannot keep (largeBlob, payments): ignored, named here. */
  readonly ignored: string[];
}

function checkPasskey(ch: Checker, o: Record<string, Json>, path: string, title: string | undefined, creationAt: number | undefined, ignored: string[]): ImportedPasskey | undefined {
  const n = ch.problems.length;
  // WebAuthn L3 §4: a credential id is at most 1023 bytes; this authenticator matches ids up to its own bound.
  const credentialId = ch.b64(o, 'credentialId', path, 1, OUR_MAX_CREDENTIAL_ID_LENGTH);
  const rpId = ch.str(o, 'rpId', path, { max: 253 });
  if (rpId !== undefined) {
    const problem = rpIdProblem(rpId);
    if (problem !== undefined) ch.bad(`${path}.rpId`, problem);
  }
  const userName = ch.str(o, 'username', path);
  const userDisplayName = ch.str(o, 'userDisplayName', path);
  const userHandle = ch.b64(o, 'userHandle', path, 1, MAX_USER_ID_LENGTH);
  const keyDer = ch.b64(o, 'key', path, 1, 512);
  let key: { alg: ResidentCredential['alg']; secret: Uint8Array } | undefined;
  if (keyDer !== undefined) {
    try {
      key = decodePkcs8(keyDer);
    } catch (err) {
      if (!(err instanceof KeyFormatError)) throw err;
      ch.bad(`${path}.key`, err.message);
    }
  }
  let credRandom: Uint8Array | undefined;
  let credBlob: Uint8Array | undefined;
  if (o.fido2Extensions !== undefined) {
    const ext = ch.obj(o.fido2Extensions, `${path}.fido2Extensions`);
    if (ext !== undefined) {
      const ep = `${path}.fido2Extensions`;
      if (ext.hmacCredentials !== undefined) {
        const h = ch.obj(ext.hmacCredentials, `${ep}.hmacCredentials`);
        if (h !== undefined) {
          const alg = ch.str(h, 'algorithm', `${ep}.hmacCredentials`, { max: 64 });
          // CTAP 2.1 §12.5: CredRandom is 32 bytes, one with and one without UV.
          const withUv = ch.b64(h, 'credWithUV', `${ep}.hmacCredentials`, 32, 32);
          const withoutUv = ch.b64(h, 'credWithoutUV', `${ep}.hmacCredentials`, 32, 32);
          if (alg !== undefined && alg !== 'hmac-sha256') ch.bad(`${ep}.hmacCredentials.algorithm`, `unsupported algorithm "${alg.slice(0, 32)}"`);
          else if (withUv && withoutUv) credRandom = Uint8Array.from([...withoutUv, ...withUv]);
        }
      }
      credBlob = ch.b64(ext, 'credBlob', ep, 0, MAX_CRED_BLOB_LENGTH, true);
      if (ext.largeBlob !== undefined) ignored.push(`${ep}.largeBlob`);
      if (ch.bool(ext, 'payments', ep) === true) ignored.push(`${ep}.payments`);
    }
  }
  if (ch.problems.length !== n) return undefined;
  return {
    path,
    credentialId: credentialId!,
    rpId: rpId!,
    userName: userName!,
    userDisplayName: userDisplayName!,
    userHandle: userHandle!,
    alg: key!.alg,
    secret: key!.secret,
    ...(creationAt !== undefined ? { createdAt: creationAt * 1000 } : {}),
    ...(title !== undefined && title !== rpId ? { rpName: title } : {}),
    ...(credRandom !== undefined ? { credRandom } : {}),
    ...(credBlob !== undefined && credBlob.length > 0 ? { credBlob } : {}),
  };
}

/** Checks a CXF document against the member list above and extracts its passkeys. Throws CxfError listing the problems. */
export function checkCxf(doc: unknown): CheckedCxf {
  const ch = new Checker();
  const passkeys: ImportedPasskey[] = [];
  const ignored: string[] = [];
  let otherCredentials = 0;
  const header = ch.obj(doc as Json, '$');
  if (header !== undefined) {
    const version = ch.obj(header.version, '$.version');
    if (version !== undefined) {
      const major = ch.uint(version, 'major', '$.version');
      ch.uint(version, 'minor', '$.version');
      if (major !== undefined && major !== CXF_VERSION.major) ch.bad('$.version.major', `version ${major} is not supported (this reads ${CXF_VERSION.major}.x)`);
    }
    ch.str(header, 'exporterRpId', '$', { max: 253 });
    ch.str(header, 'exporterDisplayName', '$');
    ch.uint(header, 'timestamp', '$');
    const accounts = ch.arr(header.accounts, '$.accounts', 1000) ?? [];
    accounts.forEach((a, ai) => {
      const ap = `$.accounts[${ai}]`;
      const account = ch.obj(a, ap);
      if (account === undefined) return;
      ch.b64(account, 'id', ap, 1, MAX_CXF_OPAQUE_ID);
      ch.str(account, 'username', ap);
      ch.str(account, 'email', ap);
      ch.str(account, 'fullName', ap, { optional: true });
      ch.arr(account.collections, `${ap}.collections`);
      const items = ch.arr(account.items, `${ap}.items`) ?? [];
      items.forEach((it, ii) => {
        const ip = `${ap}.items[${ii}]`;
        const item = ch.obj(it, ip);
        if (item === undefined) return;
        ch.b64(item, 'id', ip, 1, MAX_CXF_OPAQUE_ID);
        const creationAt = ch.uint(item, 'creationAt', ip, true);
        ch.uint(item, 'modifiedAt', ip, true);
        const title = ch.str(item, 'title', ip);
        ch.str(item, 'subtitle', ip, { optional: true });
        ch.bool(item, 'favorite', ip);
        const credentials = ch.arr(item.credentials, `${ip}.credentials`, 1000) ?? [];
        credentials.forEach((cr, ci) => {
          const cp = `${ip}.credentials[${ci}]`;
          const cred = ch.obj(cr, cp);
          if (cred === undefined) return;
          const type = ch.str(cred, 'type', cp, { max: 64 });
          if (type === undefined) return;
          if (type !== 'passkey') {
            otherCredentials++;
            return;
          }
          if (passkeys.length >= MAX_CXF_PASSKEYS) {
            ch.bad(cp, `more than ${MAX_CXF_PASSKEYS} passkeys`);
            return;
          }
          const p = checkPasskey(ch, cred, cp, title, creationAt, ignored);
          if (p !== undefined) passkeys.push(p);
        });
      });
    });
  }
  if (ch.problems.length > 0) throw new CxfError(ch.problems);
  return { passkeys, otherCredentials, ignored };
}

/** JSON text → checked passkeys (size-bounded before parsing). */
export function parseCxf(text: string): CheckedCxf {
  if (text.length > MAX_CXF_FILE_BYTES) throw new CxfError([{ path: '$', message: `file larger than ${MAX_CXF_FILE_BYTES} bytes` }]);
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new CxfError([{ path: '$', message: `not JSON (${(err as Error).message.slice(0, 120)})` }]);
  }
  return checkCxf(doc);
}

/** The stored form of an imported passkey (CXF: counter 0, never incremented). */
export function importedCredential(p: ImportedPasskey, scope: string | undefined, seq: number, now: number): ResidentCredential {
  return {
    id: p.credentialId,
    rpId: p.rpId,
    ...(p.rpName !== undefined ? { rpName: truncateUtf8(p.rpName, MAX_STORED_STRING_BYTES) } : {}),
    userId: p.userHandle,
    ...(p.userName !== '' ? { userName: truncateUtf8(p.userName, MAX_STORED_STRING_BYTES) } : {}),
    ...(p.userDisplayName !== '' ? { userDisplayName: truncateUtf8(p.userDisplayName, MAX_STORED_STRING_BYTES) } : {}),
    alg: p.alg,
    privateKey: p.secret,
    credProtect: CRED_PROTECT_UV_OPTIONAL,
    ...(p.credBlob !== undefined ? { credBlob: p.credBlob } : {}),
    hmacSecret: p.credRandom !== undefined,
    ...(p.credRandom !== undefined ? { credRandom: p.credRandom } : {}),
    signCount: 0,
    zeroCounter: true,
    createdAt: p.createdAt ?? now,
    seq,
    ...(scope !== undefined ? { scope } : {}),
  };
}
