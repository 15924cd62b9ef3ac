import { describe, expect, it } from 'vitest';
import type { CborMap } from '../../../protocol/cbor.ts';
import { CTAP1_ERR_OTHER } from '../../../protocol/ctap2.ts';
import { MemoryStateStore } from '../../../agent/authenticators/soft/memory-store.ts';
import { SoftAuthenticator } from '../../../agent/authenticators/soft/soft-authenticator.ts';
import { deserializeState, newState, serializeState, SoftStateError } from '../../../agent/authenticators/soft/state.ts';
import { COUNTER_RESERVATION_BLOCK } from '../../../agent/authenticators/soft/device.ts';
import { ctap, FakeClock, m, makeHarness, mcParams, parseAuthData, PlatformPin, RP_ID, sha256 } from './helpers.ts';
import { FakePresence } from '../../../agent/presence/fake.ts';

describe('persistent state', () => {
  it('first open initialises and saves; serialisation round-trips', async () => {
    const h = await makeHarness();
    expect(h.store.saves).toBe(1);
    expect((await ctap(h, 0x01, mcParams({ rk: true, extra: [[6, m([['credBlob', Uint8Array.of(1)], ['hmac-secret', true]])]] }), { credentialScope: 's1' })).status).toBe(0);
    expect(await new PlatformPin(h, 2).setPin('1234')).toBe(0);
    const bytes = h.store.snapshot() as Uint8Array;
    const state = deserializeState(bytes);
    expect(state.credentials).toHaveLength(1);
    expect(state.credentials[0]).toMatchObject({ rpId: RP_ID, rpName: 'Example', userName: 'alice', scope: 's1', hmacSecret: true, credProtect: 1 });
    expect(state.credentials[0].credRandom).toHaveLength(64);
    expect(state.pin?.hash).toEqual(Uint8Array.from(sha256('1234').subarray(0, 16)));
    expect(state.pin?.codePoints).toBe(4);
    expect(Buffer.compare(serializeState(state), bytes)).toBe(0);
  });

  it('corrupt or foreign state is rejected with a clear error, never silently replaced', async () => {
    const presence = new FakePresence();
    for (const bad of [Uint8Array.of(1, 2, 3), Uint8Array.of(0xa0), serializeState({ ...newState((n) => new Uint8Array(n)), pinRetries: 99 })]) {
      const store = new MemoryStateStore(bad);
      await expect(SoftAuthenticator.open({ store, presence })).rejects.toBeInstanceOf(SoftStateError);
      expect(store.saves).toBe(0);
    }
    const failing = { load: async () => Promise.reject(new Error('wrong passphrase')), save: async () => undefined };
    await expect(SoftAuthenticator.open({ store: failing, presence })).rejects.toThrow('wrong passphrase');
  });

  it('global counter: reserved in blocks (few saves), never reused after a restart', async () => {
    const h = await makeHarness();
    const mc = await ctap(h, 0x01, mcParams());
    const id = parseAuthData((mc.body as CborMap).get(2) as Uint8Array).credentialId as Uint8Array;
    const saves = h.store.saves;
    const ga = async (hh: typeof h) =>
      parseAuthData(((await ctap(hh, 0x02, m([[1, RP_ID], [2, sha256('x')], [3, [m([['id', id], ['type', 'public-key']])]]]))).body as CborMap).get(2) as Uint8Array).signCount;
    const before = await ga(h);
    for (let i = 0; i < 50; i++) await ga(h);
    expect(h.store.saves - saves).toBeLessThanOrEqual(1);
    const reopened = await makeHarness({ store: h.store, clock: h.clock });
    const after = await ga(reopened);
    expect(after).toBeGreaterThan(before + 50);
    expect(after).toBeLessThanOrEqual(before + 51 + COUNTER_RESERVATION_BLOCK);
  });

  it('a store that fails to save turns into CTAP1_ERR_OTHER, not a crash', async () => {
    const store = new MemoryStateStore();
    const presence = new FakePresence();
    const auth = await SoftAuthenticator.open({ store, presence, clock: new FakeClock() });
    store.save = async () => Promise.reject(new Error('disk full'));
    const r = await auth.request('cbor', Uint8Array.from([0x01, ...(await import('../../../protocol/cbor.ts')).encode(mcParams({ rk: true }))]), {
      signal: new AbortController().signal,
      onStatus: () => undefined,
    });
    expect(Array.from(r)).toEqual([CTAP1_ERR_OTHER]);
  });
});

describe('construction', () => {
  it('new + open() (idempotent) is equivalent to the static open(); nothing answers before open', async () => {
    const store = new MemoryStateStore();
    const auth = new SoftAuthenticator({ store, presence: new FakePresence() });
    expect(() => auth.descriptor).toThrow('open()');
    await expect(auth.request('cbor', Uint8Array.of(0x04), { signal: new AbortController().signal, onStatus: () => undefined })).rejects.toThrow('open()');
    const [a, b] = await Promise.all([auth.open(), auth.open()]);
    expect(a).toBe(auth);
    expect(b).toBe(auth);
    expect(store.saves).toBe(1);
    const again = await SoftAuthenticator.open({ store, presence: new FakePresence() });
    expect(again.descriptor.id).toBe(auth.descriptor.id);
    expect(() => new SoftAuthenticator({ store, presence: new FakePresence(), aaguid: new Uint8Array(15) })).toThrow(RangeError);
  });
});
