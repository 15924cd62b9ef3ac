/**
 * Restoring a backup into a store: merge, never silently overwrite (issue 16).
 *
 * - Into a fresh store (isFreshState: no credential of any kind can have been made with its wrapping secret):
 *   the backup's whole state is taken, wrapping secret
 *   and device identity included, so every credential of the backup — discoverable or not — works here.
 * - Into a store with the same wrapping secret (an earlier restore of the same authenticator, or its own backup):
 *   credentials are merged by ID; for one present on both sides the higher signature counter and the later
 *   "last used" win (a counter never goes backwards); the global counter reservation takes the higher value.
 * - Into a store with another wrapping secret and its own credentials: the backup's non-discoverable credentials
 *   cannot work beside this store's own (each credential ID can be opened by one secret only), so this is refused
 *   unless the caller accepts to merge the discoverable credentials alone (`--discoverable-only`).
 *
 * The PIN, its retries and the U2F attestation key of a used store are kept; they are taken from the backup only
 * when the store has none. Pure: states in, merged state and a report out.
 */
import { constantTimeEqual } from '../../agent/authenticators/soft/crypto.ts';
import type { ResidentCredential, SoftState } from '../../agent/authenticators/soft/state.ts';
import { KeyCache } from '../../agent/authenticators/soft/crypto.ts';
import { PasskeysError } from './store-access.ts';

export interface MergeReport {
  readonly mode: 'fresh' | 'same-secret' | 'discoverable-only';
  readonly added: number;
  /** Present on both sides: counter or last-used raised from the backup. */
  readonly updated: number;
  readonly unchanged: number;
  /** What happened to the PIN. */
  readonly pin: 'from-backup' | 'kept' | 'none';
}

/**
 * Nothing made with this store's wrapping secret can exist: no discoverable credential, no PIN, no global counter
 * ever reserved (every non-discoverable makeCredential and U2F authentication takes one) and no U2F attestation
 * key (made at the first U2F registration).
 */
export function isFreshState(s: SoftState): boolean {
  return s.credentials.length === 0 && s.counterReserved === 0 && s.pin === undefined && s.u2fAttestation === undefined;
}

function cloneState(s: SoftState): SoftState {
  return { ...s, credentials: s.credentials.map((c) => ({ ...c })) };
}

/** Adds `incoming`'s discoverable credentials to `target` (mutated); answers [added, updated, unchanged]. */
export function mergeCredentials(target: SoftState, incoming: readonly ResidentCredential[]): [number, number, number] {
  const byId = new Map(target.credentials.map((c) => [KeyCache.keyOf(c.id), c]));
  let added = 0;
  let updated = 0;
  let unchanged = 0;
  for (const c of [...incoming].sort((a, b) => a.seq - b.seq)) {
    const have = byId.get(KeyCache.keyOf(c.id));
    if (have === undefined) {
      const copy: ResidentCredential = { ...c, seq: target.nextSeq++ };
      target.credentials.push(copy);
      byId.set(KeyCache.keyOf(c.id), copy);
      added++;
      continue;
    }
    let changed = false;
    if (c.signCount > have.signCount && have.zeroCounter !== true) {
      have.signCount = c.signCount;
      changed = true;
    }
    if (c.lastUsedAt !== undefined && (have.lastUsedAt === undefined || c.lastUsedAt > have.lastUsedAt)) {
      have.lastUsedAt = c.lastUsedAt;
      changed = true;
    }
    if (changed) updated++;
    else unchanged++;
  }
  return [added, updated, unchanged];
}

export function mergeBackup(target: SoftState, backup: SoftState, options: { discoverableOnly?: boolean } = {}): { state: SoftState; report: MergeReport } {
  if (isFreshState(target)) {
    const state = cloneState(backup);
    return {
      state,
      report: { mode: 'fresh', added: state.credentials.length, updated: 0, unchanged: 0, pin: state.pin ? 'from-backup' : 'none' },
    };
  }
  const sameSecret = constantTimeEqual(target.masterSecret, backup.masterSecret);
  if (!sameSecret && options.discoverableOnly !== true) {
    throw new PasskeysError(
      'this store already has credentials of its own and a different wrapping secret: the non-discoverable ' +
        "credentials of the backup (keys wrapped in their IDs) cannot work beside this store's own. Restore into a " +
        'fresh store (another --profile or --state-dir), or pass --discoverable-only to merge the backup\'s ' +
        'discoverable credentials alone. Nothing was changed.',
    );
  }
  const state = cloneState(target);
  const [added, updated, unchanged] = mergeCredentials(state, backup.credentials);
  let pin: MergeReport['pin'] = state.pin ? 'kept' : 'none';
  if (sameSecret) {
    state.counterReserved = Math.max(state.counterReserved, backup.counterReserved);
  }
  if (state.pin === undefined && backup.pin !== undefined) {
    state.pin = backup.pin;
    state.pinRetries = backup.pinRetries;
    state.minPinLength = backup.minPinLength;
    state.forcePinChange = backup.forcePinChange;
    pin = 'from-backup';
  }
  state.u2fAttestation ??= backup.u2fAttestation;
  return { state, report: { mode: sameSecret ? 'same-secret' : 'discoverable-only', added, updated, unchanged, pin } };
}
