/**
 * The members the `passkeys` commands added to a discoverable credential (issue 16): `lastUsedAt` (set by every
 * signature) and `zeroCounter` (imported CXF passkeys: counter 0, never incremented). Older stores, written
 * without them, stay readable and are re-written byte for byte until something sets them (migration).
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { encode, type CborMap, type CborValue } from '../../../protocol/cbor.ts';
import { MemoryStateStore } from '../../../agent/authenticators/soft/memory-store.ts';
import { deserializeState, serializeState } from '../../../agent/authenticators/soft/state.ts';
import { ctap, FakeClock, m, makeHarness, parseAuthData, RP_ID, sha256 } from './helpers.ts';

/** A state exactly as the store format wrote it before `lastUsedAt` / `zeroCounter` existed (version 1). */
function oldFormatState(credentialId: Uint8Array, key: Uint8Array): Uint8Array {
  const cred = new Map<CborValue, CborValue>([
    ['id', credentialId],
    ['rpId', RP_ID],
    ['userId', Uint8Array.of(7)],
    ['alg', -7],
    ['key', key],
    ['credProtect', 1],
    ['hmacSecret', false],
    ['signCount', 5],
    ['createdAt', 1_600_000_000_000],
    ['seq', 1],
    ['userName', 'old-alice'],
  ]);
  return encode(
    new Map<CborValue, CborValue>([
      ['v', 1],
      ['deviceId', randomBytes(16)],
      ['masterSecret', randomBytes(32)],
      ['counterReserved', 0],
      ['pinRetries', 8],
      ['minPinLength', 4],
      ['forcePinChange', false],
      ['nextSeq', 2],
      ['credentials', [cred]],
    ]),
  );
}

const P256_SCALAR = Uint8Array.from(Buffer.from('c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721', 'hex'));
const getAssertion = (): CborMap => m([[1, RP_ID], [2, sha256('cdh')]]);

describe('discoverable credential: lastUsedAt and zeroCounter', () => {
  it('an old store (no lastUsedAt) is read, serialised unchanged, and gains lastUsedAt at its next signature', async () => {
    const id = randomBytes(20); // not our wrapped format: found by its stored record
    const old = oldFormatState(id, P256_SCALAR);
    const state = deserializeState(old);
    expect(state.credentials[0]).toMatchObject({ userName: 'old-alice', signCount: 5, lastUsedAt: undefined, zeroCounter: undefined });
    expect(Buffer.compare(serializeState(state), old)).toBe(0);

    const clock = new FakeClock();
    const h = await makeHarness({ store: new MemoryStateStore(old), clock });
    const r = await ctap(h, 0x02, getAssertion());
    expect(r.status).toBe(0);
    expect(parseAuthData(r.body!.get(2) as Uint8Array).signCount).toBe(6);
    const after = deserializeState(h.store.snapshot()!).credentials[0]!;
    expect(after).toMatchObject({ signCount: 6, lastUsedAt: clock.t });
    expect(deserializeState(serializeState(deserializeState(h.store.snapshot()!))).credentials[0]!.lastUsedAt).toBe(clock.t);
  });

  it('a zeroCounter credential always signs with counter 0, by allow list and discoverably', async () => {
    const id = randomBytes(16);
    const s = deserializeState(oldFormatState(id, P256_SCALAR));
    s.credentials[0] = { ...s.credentials[0]!, signCount: 0, zeroCounter: true };
    const h = await makeHarness({ store: new MemoryStateStore(serializeState(s)) });
    for (const params of [getAssertion(), m([[1, RP_ID], [2, sha256('cdh')], [3, [m([['id', id], ['type', 'public-key']])]]])]) {
      for (let i = 0; i < 2; i++) {
        const r = await ctap(h, 0x02, params);
        expect(r.status).toBe(0);
        expect(parseAuthData(r.body!.get(2) as Uint8Array).signCount).toBe(0);
      }
    }
    const stored = deserializeState(h.store.snapshot()!).credentials[0]!;
    expect(stored).toMatchObject({ signCount: 0, zeroCounter: true });
    expect(stored.lastUsedAt).toBeGreaterThan(0);
  });

  it('a stored credential with a foreign id is excluded by makeCredential and invisible to other scopes', async () => {
    const id = randomBytes(16);
    const s = deserializeState(oldFormatState(id, P256_SCALAR));
    s.credentials[0] = { ...s.credentials[0]!, scope: 'scope-a' };
    const h = await makeHarness({ store: new MemoryStateStore(serializeState(s)) });
    const allow = m([[1, RP_ID], [2, sha256('cdh')], [3, [m([['id', id], ['type', 'public-key']])]]]);
    expect((await ctap(h, 0x02, allow, { credentialScope: 'scope-a' })).status).toBe(0);
    expect((await ctap(h, 0x02, allow, { credentialScope: 'scope-b' })).status).toBe(0x2e); // CTAP2_ERR_NO_CREDENTIALS
    const mc = m([
      [1, sha256('cdh')],
      [2, m([['id', RP_ID]])],
      [3, m([['id', Uint8Array.of(9)], ['name', 'x']])],
      [4, [m([['alg', -7], ['type', 'public-key']])]],
      [5, [m([['id', id], ['type', 'public-key']])]],
    ]);
    expect((await ctap(h, 0x01, mc, { credentialScope: 'scope-a' })).status).toBe(0x19); // CTAP2_ERR_CREDENTIAL_EXCLUDED
    expect((await ctap(h, 0x01, mc, { credentialScope: 'scope-b' })).status).toBe(0);
  });
});
