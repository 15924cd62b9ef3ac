/**
 * The user's view of the soft authenticator's discoverable credentials (passkeys): one row per stored
 * credential, with the VM scope by its trusted name. Pure: state + names in, rows (or table lines) out.
 *
 * Non-discoverable credentials are never stored: their private key is wrapped inside the credential ID that the
 * relying party keeps (agent/authenticators/soft/credential-id.ts), so there is nothing to list; they keep working,
 * and a backup (which holds the wrapping secret) keeps them working elsewhere.
 */
import { COSE_ALG_ES256 } from '../../agent/authenticators/soft/crypto.ts';
import type { ResidentCredential, SoftState } from '../../agent/authenticators/soft/state.ts';
import { displayText } from '../../agent/display-text.ts';
import { GatewayNames, SHARED_SCOPE_NAME } from './gateway-names.ts';

export const NON_DISCOVERABLE_NOTE =
  'Only discoverable credentials (passkeys) are stored and listed; non-discoverable ones keep their key wrapped ' +
  'inside the credential ID the relying party holds, so they cannot be listed or deleted here (they keep ' +
  'working, and a backup keeps them working).';

/** One passkey as `passkeys list --json` prints it. */
export interface PasskeyRow {
  readonly rpId: string;
  readonly rpName: string | null;
  readonly userName: string | null;
  readonly userDisplayName: string | null;
  /** The user handle (base64url). */
  readonly userHandle: string;
  /** The gateway's trusted name, or "shared" for an unscoped credential. */
  readonly gateway: string;
  /** The scope's gateway fingerprint (null when shared). */
  readonly gatewayFingerprint: string | null;
  /** base64url. */
  readonly credentialId: string;
  /** ISO 8601. */
  readonly created: string;
  /** ISO 8601, or null when never used (or last used before keytunnel recorded it). */
  readonly lastUsed: string | null;
  readonly signCount: number;
  /** COSE algorithm number (-7 ES256, -8 EdDSA). */
  readonly alg: number;
  /** CTAP 2.1 PS 2021-06-15 §12.1 credProtect level. */
  readonly credProtect: number;
  /** Imported from a CXF file: its counter stays 0 (CXF v1.0). */
  readonly zeroCounter: boolean;
}

export interface ListFilter {
  /** Exactly these scopes (a gateway fingerprint, or undefined for shared), or every scope when absent. */
  readonly scopes?: ReadonlySet<string | undefined>;
  readonly rpId?: string;
}

const b64u = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url');

export function credentialMatches(c: ResidentCredential, filter: ListFilter): boolean {
  if (filter.rpId !== undefined && c.rpId !== filter.rpId) return false;
  return filter.scopes === undefined || filter.scopes.has(c.scope);
}

export function passkeyRow(c: ResidentCredential, names: GatewayNames): PasskeyRow {
  return {
    rpId: c.rpId,
    rpName: c.rpName ?? null,
    userName: c.userName ?? null,
    userDisplayName: c.userDisplayName ?? null,
    userHandle: b64u(c.userId),
    gateway: names.nameOf(c.scope),
    gatewayFingerprint: c.scope ?? null,
    credentialId: b64u(c.id),
    created: new Date(c.createdAt).toISOString(),
    lastUsed: c.lastUsedAt === undefined ? null : new Date(c.lastUsedAt).toISOString(),
    signCount: c.signCount,
    alg: c.alg,
    credProtect: c.credProtect,
    zeroCounter: c.zeroCounter === true,
  };
}

/** Rows ordered by gateway, RP, user (stable for equal keys). */
export function passkeyRows(state: SoftState, names: GatewayNames, filter: ListFilter = {}): PasskeyRow[] {
  const rows: PasskeyRow[] = [];
  for (const c of state.credentials) if (credentialMatches(c, filter)) rows.push(passkeyRow(c, names));
  const key = (r: PasskeyRow): string => `${r.gateway === SHARED_SCOPE_NAME ? '\u0000' : r.gateway}\u0001${r.rpId}\u0001${r.userName ?? ''}`;
  const keyed = rows.map((r) => [key(r), r] as const);
  keyed.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return keyed.map(([, r]) => r);
}

/** Length of the credential-ID prefix the table shows (and `rm` accepts at least). */
export const SHORT_ID_LENGTH = 12;

function day(iso: string | null): string {
  return iso === null ? '-' : iso.slice(0, 16).replace('T', ' ');
}

/** The table `passkeys list` prints (VM text sanitised, bounded). */
export function formatTable(rows: readonly PasskeyRow[]): string[] {
  const header = ['GATEWAY', 'RP ID', 'USER', 'DISPLAY NAME', 'CREATED', 'LAST USED', 'COUNT', 'ALG', 'ID'];
  const body = rows.map((r) => [
    displayText(r.gateway, 24),
    displayText(r.rpId, 40),
    displayText(r.userName ?? '-', 32),
    displayText(r.userDisplayName ?? '-', 32),
    day(r.created),
    day(r.lastUsed),
    r.zeroCounter ? '0 (fixed)' : String(r.signCount),
    r.alg === COSE_ALG_ES256 ? 'ES256' : 'EdDSA',
    r.credentialId.slice(0, SHORT_ID_LENGTH),
  ]);
  const widths = header.map((h, i) => Math.max([...h].length, ...body.map((b) => [...b[i]!].length)));
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (i === cells.length - 1 ? c : c + ' '.repeat(widths[i]! - [...c].length))).join('  ');
  return [line(header), ...body.map(line)];
}

/**
 * The credentials an ID argument names: the full base64url ID, or a prefix of at least 6 characters that names
 * exactly one credential (as `git` takes short hashes).
 */
export function findByIdPrefix(state: SoftState, text: string): ResidentCredential[] {
  const exact = state.credentials.filter((c) => b64u(c.id) === text);
  if (exact.length > 0 || text.length < 6) return exact;
  return state.credentials.filter((c) => b64u(c.id).startsWith(text));
}
