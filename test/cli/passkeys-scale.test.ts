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
  // The bound is on the CPU time this process spends (user + system, scrypt's worker thread included): the path
  // is sequential, so on an idle machine that is the wall time, and it does not grow when other processes share
  // the build machine's two cores. Best of three; the wall times are printed beside it.
  const measure = async (json: boolean, rp?: string): Promise<{ wall: number; cpu: number; lines: string[] }> => {
    const io = captureIo();
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await passkeysList({ stateDir: dir, profile: 'default', json, ...(rp !== undefined ? { rp } : {}) }, io);
    const wall = performance.now() - t0;
    const used = process.cpuUsage(cpu0);
    return { wall, cpu: (used.user + used.system) / 1000, lines: io.lines };
  };
  const best = { json: { wall: Infinity, cpu: Infinity }, table: { wall: Infinity, cpu: Infinity } };
  for (let run = 0; run < 3; run++) {
    const j = await measure(true);
    expect((JSON.parse(j.lines[0]!) as PasskeyRow[]).length).toBe(N);
    const t = await measure(false, 'rp7.example');
    expect(t.lines).toHaveLength(1 + N / 500);
    best.json = { wall: Math.min(best.json.wall, j.wall), cpu: Math.min(best.json.cpu, j.cpu) };
    best.table = { wall: Math.min(best.table.wall, t.wall), cpu: Math.min(best.table.cpu, t.cpu) };
  }
  console.log(
    `passkeys list, ${N} credentials (incl. scrypt): --json ${best.json.cpu.toFixed(0)} ms CPU / ${best.json.wall.toFixed(0)} ms wall, ` +
      `table (one RP) ${best.table.cpu.toFixed(0)} ms CPU / ${best.table.wall.toFixed(0)} ms wall`,
  );
  expect(best.json.cpu).toBeLessThan(1000);
  expect(best.table.cpu).toBeLessThan(1000);
}, 120_000);

it(`discoverable getAssertion among ${N} credentials (in-memory store)`, async () => {
  const auth = await SoftAuthenticator.open({ store: new MemoryStateStore(state), presence: new AlwaysPresence() });
  const cdh = createHash('sha256').update('x').digest();
  const request = Uint8Array.of(CTAP2_GET_ASSERTION, ...encode(new Map<CborValue, CborValue>([[1, 'rp42.example'], [2, cdh]])));
  const ctx = { signal: new AbortController().signal, onStatus: () => {} };
  const times: number[] = [];
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < 20; i++) {
    const t = performance.now();
    const answer = await auth.request('cbor', request, ctx);
    times.push(performance.now() - t);
    expect(answer[0]).toBe(CTAP2_OK);
    expect((decode(answer.subarray(1)) as CborMap).get(5)).toBe(N / 500); // numberOfCredentials of that RP
  }
  const used = process.cpuUsage(cpu0);
  times.sort((a, b) => a - b);
  // Not yet within the soft authenticator's targets (docs/bench): every discoverable signature saves the whole
  // state (serializeState of all 10,000 credentials), whatever the store; see the report of issue 16.
  console.log(
    `discoverable getAssertion, ${N} credentials: median ${times[10]!.toFixed(2)} ms, p90 ${times[18]!.toFixed(2)} ms wall; ` +
      `${((used.user + used.system) / 1000 / 20).toFixed(2)} ms CPU per request`,
  );
}, 120_000);
