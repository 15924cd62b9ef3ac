/**
 * Issue 16, scale: a store holding 10,000 discoverable credentials. `passkeys list` (decrypting the store with its
 * scrypt key included) answers in under a second, and a discoverable getAssertion (empty allow list) among them
 * is measured.
 */
import { randomBytes, createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { encode, decode, type CborMap, type CborValue } from '../../protocol/cbor.ts';
import { CTAP2_GET_ASSERTION, CTAP2_OK } from '../../protocol/ctap2.ts';
import { COSE_ALG_ES256, generateCredentialKey } from '../../agent/authenticators/soft/crypto.ts';
import { MemoryStateStore } from '../../agent/authenticators/soft/memory-store.ts';
import { AlwaysPresence } from '../../agent/authenticators/soft/presence-always.ts';
import { SoftAuthenticator } from '../../agent/authenticators/soft/soft-authenticator.ts';
import { newState, serializeState, type ResidentCredential } from '../../agent/authenticators/soft/state.ts';
import { FileStateStore, profileStorePath } from '../../agent/authenticators/soft/store-file.ts';
import { passkeysList } from '../../cli/commands/passkeys.ts';
import type { PasskeyRow } from '../../cli/passkeys/listing.ts';
import { PASS, captureIo } from './passkeys-helpers.ts';

const N = 10_000;
let dir: string;
let state: Uint8Array;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kt-passkeys-scale-'));
  const s = newState((n) => randomBytes(n));
  const key = generateCredentialKey(COSE_ALG_ES256);
  for (let i = 0; i < N; i++) {
    const c: ResidentCredential = {
      id: randomBytes(16),
      rpId: `rp${i % 500}.example`,
      userId: Buffer.from(`user-${i}`),
      userName: `user${i}@rp${i % 500}.example`,
      userDisplayName: `User ${i}`,
      alg: COSE_ALG_ES256,
      privateKey: key.secret,
      credProtect: 1,
      hmacSecret: false,
      signCount: i % 7,
      createdAt: 1_700_000_000_000 + i,
      seq: s.nextSeq++,
    };
    s.credentials.push(c);
  }
  state = serializeState(s);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

it(`passkeys list over ${N} credentials answers in under 1 s`, async () => {
  const path = profileStorePath(dir, 'default');
  const store = await FileStateStore.open({ path, passphrase: PASS });
  await store.save(state);
  await store.close();
  const io = captureIo();
  const t0 = performance.now();
  await passkeysList({ stateDir: dir, profile: 'default', json: true }, io);
  const jsonMs = performance.now() - t0;
  expect((JSON.parse(io.lines[0]!) as PasskeyRow[]).length).toBe(N);
  const table = captureIo();
  const t1 = performance.now();
  await passkeysList({ stateDir: dir, profile: 'default', rp: 'rp7.example' }, table);
  const tableMs = performance.now() - t1;
  expect(table.lines).toHaveLength(1 + N / 500);
  console.log(`passkeys list, ${N} credentials: --json ${jsonMs.toFixed(0)} ms, table (one RP) ${tableMs.toFixed(0)} ms`);
  expect(jsonMs).toBeLessThan(1000);
  expect(tableMs).toBeLessThan(1000);
});

it(`discoverable getAssertion among ${N} credentials (in-memory store)`, async () => {
  const auth = await SoftAuthenticator.open({ store: new MemoryStateStore(state), presence: new AlwaysPresence() });
  const cdh = createHash('sha256').update('x').digest();
  const request = Uint8Array.of(CTAP2_GET_ASSERTION, ...encode(new Map<CborValue, CborValue>([[1, 'rp42.example'], [2, cdh]])));
  const ctx = { signal: new AbortController().signal, onStatus: () => {} };
  const times: number[] = [];
  for (let i = 0; i < 50; i++) {
    const t = performance.now();
    const answer = await auth.request('cbor', request, ctx);
    times.push(performance.now() - t);
    expect(answer[0]).toBe(CTAP2_OK);
    expect((decode(answer.subarray(1)) as CborMap).get(5)).toBe(N / 500); // numberOfCredentials of that RP
  }
  times.sort((a, b) => a - b);
  console.log(`discoverable getAssertion, ${N} credentials: median ${times[25]!.toFixed(2)} ms, p90 ${times[45]!.toFixed(2)} ms`);
});
