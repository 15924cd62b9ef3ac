/**
 * Unit tests of the agent's PIN guard (issue 11 finding 3) with a fake block store and clock: what it counts,
 * when it blocks, who it blocks, what unblocks it (and what does not), serialisation of concurrent attempts,
 * setPIN/changePIN confirmation; and the file store's on-disk contract.
 */
import { mkdtemp, readdir, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { encode, type CborValue } from '../../../protocol/cbor.ts';
import type { Authenticator, RequestContext, RequestKind } from '../../../protocol/authenticator.ts';
import {
  CTAP1_ERR_INVALID_PARAMETER,
  CTAP2_CLIENT_PIN,
  CTAP2_ERR_KEEPALIVE_CANCEL,
  CTAP2_ERR_OPERATION_DENIED,
  CTAP2_ERR_USER_ACTION_TIMEOUT,
  CTAP2_ERR_PIN_AUTH_BLOCKED,
  CTAP2_ERR_PIN_BLOCKED,
  CTAP2_ERR_PIN_INVALID,
  CTAP2_ERR_PIN_NOT_SET,
  CTAP2_OK,
} from '../../../protocol/ctap2.ts';
import type { AuditRecord } from '../../../agent/policy/audit.ts';
import { defaultPolicy } from '../../../agent/policy/config.ts';
import {
  FilePinBlockStore,
  PIN_BLOCK_REASON,
  PIN_BLOCKS_DIR,
  PinGuard,
  classifyClientPin,
  type PinAdmission,
  type PinBlock,
  type PinBlockStore,
  type PinPass,
  type PinRequester,
} from '../../../agent/policy/pin-guard.ts';
import { PolicyState, withPolicy } from '../../../agent/policy/policy-authenticator.ts';
import { FakePresence } from '../../../agent/presence/fake.ts';
import { silentLogger } from '../../../protocol/logger.ts';

const FP_A = 'aa'.repeat(32).match(/../g)!.join(':');
const FP_B = 'bb'.repeat(32).match(/../g)!.join(':');
const KEY = 'hid-1';

const GET_RETRIES = 0x01;
const GET_KEY_AGREEMENT = 0x02;
const SET_PIN = 0x03;
const CHANGE_PIN = 0x04;
const GET_PIN_TOKEN = 0x05;
const GET_UV_TOKEN = 0x06;
const GET_UV_RETRIES = 0x07;
const GET_TOKEN_WITH_PERMISSIONS = 0x09;

function clientPin(subCommand: number, extra: [CborValue, CborValue][] = []): Uint8Array {
  const body = encode(new Map<CborValue, CborValue>([[1, 2], [2, subCommand], ...extra]));
  return Uint8Array.of(CTAP2_CLIENT_PIN, ...body);
}

/** A block store in memory; `failWrites` makes block() reject like a read-only disk. */
class FakeStore implements PinBlockStore {
  readonly blocks = new Map<string, PinBlock>();
  failWrites = false;
  cleared = 0;
  async block(entry: PinBlock): Promise<boolean> {
    if (this.failWrites) throw new Error('EROFS');
    this.blocks.set(entry.fingerprint, entry);
    return true;
  }
  async isBlocked(fingerprint: string): Promise<boolean> {
    return this.blocks.has(fingerprint);
  }
  async clear(): Promise<void> {
    this.cleared++;
    this.blocks.clear();
  }
}

function setup(now = 1_700_000_000_000) {
  const store = new FakeStore();
  const presence = new FakePresence();
  const logs: { level: string; obj: object; msg: string }[] = [];
  const log = {
    ...silentLogger,
    warn: (obj: object, msg: string) => logs.push({ level: 'warn', obj, msg }),
    info: (obj: object, msg: string) => logs.push({ level: 'info', obj, msg }),
  };
  const guard = new PinGuard({ presence, store, log, now: () => now });
  return { guard, store, presence, logs };
}

const who = (fp: string, authenticator = KEY): PinRequester => ({
  origin: { gatewayFingerprint: fp, gatewayName: fp === FP_A ? 'customer-a' : 'customer-b' },
  authenticator,
});

function ctx(signal = new AbortController().signal) {
  return { signal, onStatus: () => {} };
}

/** Admit a request and, when it passes, settle it with the given status byte (undefined: the request threw). */
async function attempt(guard: PinGuard, fp: string, sub: number, status: number | undefined, authenticator = KEY): Promise<number> {
  const admission = await guard.admit('cbor', clientPin(sub), who(fp, authenticator), ctx());
  if (admission === undefined) return status ?? -1;
  if (admission.refused) return admission.answer[0]!;
  admission.settle(status === undefined ? undefined : Uint8Array.of(status));
  return status ?? -1;
}

describe('classifyClientPin (CTAP 2.1 §6.5.5)', () => {
  it('lets only the subcommands without a PIN pass free; anything unreadable is assumed to carry one', () => {
    expect(classifyClientPin(clientPin(GET_RETRIES)).free).toBe(true);
    expect(classifyClientPin(clientPin(GET_KEY_AGREEMENT)).free).toBe(true);
    expect(classifyClientPin(clientPin(GET_UV_RETRIES)).free).toBe(true);
    expect(classifyClientPin(clientPin(SET_PIN))).toMatchObject({ free: false, confirm: 'setPin', carriesPin: false });
    expect(classifyClientPin(clientPin(CHANGE_PIN))).toMatchObject({ free: false, confirm: 'changePin', carriesPin: true, verifiesPin: true });
    expect(classifyClientPin(clientPin(GET_PIN_TOKEN))).toMatchObject({ free: false, carriesPin: true, verifiesPin: true });
    expect(classifyClientPin(clientPin(GET_TOKEN_WITH_PERMISSIONS))).toMatchObject({ free: false, carriesPin: true, verifiesPin: true });
    expect(classifyClientPin(clientPin(GET_UV_TOKEN))).toMatchObject({ free: false, carriesPin: false });
    expect(classifyClientPin(clientPin(0x42))).toMatchObject({ free: false, carriesPin: true, verifiesPin: false });
    expect(classifyClientPin(Uint8Array.of(CTAP2_CLIENT_PIN))).toMatchObject({ free: false, carriesPin: true });
    expect(classifyClientPin(Uint8Array.of(CTAP2_CLIENT_PIN, 0xff))).toMatchObject({ free: false, carriesPin: true });
    const textSub = Uint8Array.of(CTAP2_CLIENT_PIN, ...encode(new Map<CborValue, CborValue>([[2, '1']])));
    expect(classifyClientPin(textSub)).toMatchObject({ free: false, carriesPin: true });
  });
});

describe('PinGuard', () => {
  it('ignores everything that is not a clientPIN request', async () => {
    const { guard } = setup();
    expect(await guard.admit('cbor', Uint8Array.of(0x04), who(FP_B), ctx())).toBeUndefined();
    expect(await guard.admit('msg', Uint8Array.of(0, 3, 0, 0), who(FP_B), ctx())).toBeUndefined();
  });

  it('blocks a gateway after 2 wrong PINs: PIN_AUTH_BLOCKED from the guard, recorded, logged; other gateways unaffected', async () => {
    const { guard, store, logs } = setup();
    expect(await attempt(guard, FP_B, GET_PIN_TOKEN, CTAP2_ERR_PIN_INVALID)).toBe(CTAP2_ERR_PIN_INVALID);
    expect(guard.isBlocked(FP_B)).toBe(false);
    expect(await attempt(guard, FP_B, GET_TOKEN_WITH_PERMISSIONS, CTAP2_ERR_PIN_INVALID)).toBe(CTAP2_ERR_PIN_INVALID);
    expect(guard.isBlocked(FP_B)).toBe(true);
    expect(store.blocks.get(FP_B)).toEqual({
      fingerprint: FP_B,
      name: 'customer-b',
      blockedAt: new Date(1_700_000_000_000).toISOString(),
      authenticator: KEY,
    });
    expect(logs.filter((l) => l.level === 'warn').map((l) => l.msg).join()).toMatch(/2 wrong PINs .*trust unblock/);

    for (const sub of [GET_PIN_TOKEN, GET_TOKEN_WITH_PERMISSIONS, CHANGE_PIN, SET_PIN, GET_UV_TOKEN, 0x42]) {
      const refused = (await guard.admit('cbor', clientPin(sub), who(FP_B), ctx())) as PinAdmission;
      expect(refused).toMatchObject({ refused: true, decision: 'refused-by-policy', reason: PIN_BLOCK_REASON });
      expect(refused.refused && refused.answer).toEqual(Uint8Array.of(CTAP2_ERR_PIN_AUTH_BLOCKED));
    }
    // On another authenticator too: the gateway is blocked, not the key.
    expect(await attempt(guard, FP_B, GET_PIN_TOKEN, CTAP2_OK, 'soft-1')).toBe(CTAP2_ERR_PIN_AUTH_BLOCKED);
    // Retries and key agreement still pass (no PIN, no change).
    for (const sub of [GET_RETRIES, GET_KEY_AGREEMENT, GET_UV_RETRIES]) {
      expect(await guard.admit('cbor', clientPin(sub), who(FP_B), ctx())).toBeUndefined();
    }
    // Gateway A is not blocked and its correct PIN passes.
    expect(await attempt(guard, FP_A, GET_PIN_TOKEN, CTAP2_OK)).toBe(CTAP2_OK);
    expect(guard.isBlocked(FP_A)).toBe(false);
  });

  it('counts PIN_BLOCKED, PIN_AUTH_BLOCKED and lost answers as wrong; other errors neither count nor reset', async () => {
    const { guard } = setup();
    await attempt(guard, FP_B, GET_PIN_TOKEN, CTAP2_ERR_PIN_BLOCKED);
    expect(guard.wrongPins(FP_B, KEY)).toBe(1);
    await attempt(guard, FP_B, GET_PIN_TOKEN, CTAP2_ERR_PIN_NOT_SET);
    await attempt(guard, FP_B, GET_PIN_TOKEN, CTAP1_ERR_INVALID_PARAMETER);
    expect(guard.wrongPins(FP_B, KEY)).toBe(1);
    await attempt(guard, FP_B, GET_PIN_TOKEN, CTAP2_ERR_PIN_AUTH_BLOCKED);
    expect(guard.isBlocked(FP_B)).toBe(true);

    const g2 = setup().guard;
    await attempt(g2, FP_B, GET_PIN_TOKEN, undefined); // threw: the key may have spent a retry
    await attempt(g2, FP_B, GET_TOKEN_WITH_PERMISSIONS, CTAP2_ERR_KEEPALIVE_CANCEL);
    expect(g2.isBlocked(FP_B)).toBe(true);

    // A lost answer to a request without a PIN (UV) is not a wrong PIN.
    const g3 = setup().guard;
    await attempt(g3, FP_B, GET_UV_TOKEN, undefined);
    await attempt(g3, FP_B, GET_UV_TOKEN, CTAP2_ERR_KEEPALIVE_CANCEL);
    expect(g3.wrongPins(FP_B, KEY)).toBe(0);
  });

  it('a success of a PIN-verifying subcommand resets the count; a UV success or a setPIN does not', async () => {
    const { guard } = setup();
    await attempt(guard, FP_B, GET_PIN_TOKEN, CTAP2_ERR_PIN_INVALID);
    await attempt(guard, FP_B, GET_UV_TOKEN, CTAP2_OK);
    expect(guard.wrongPins(FP_B, KEY)).toBe(1);
    await attempt(guard, FP_B, GET_PIN_TOKEN, CTAP2_OK);
    expect(guard.wrongPins(FP_B, KEY)).toBe(0);
    await attempt(guard, FP_B, GET_PIN_TOKEN, CTAP2_ERR_PIN_INVALID);
    await attempt(guard, FP_B, CHANGE_PIN, CTAP2_OK);
    expect(guard.wrongPins(FP_B, KEY)).toBe(0);
    expect(guard.isBlocked(FP_B)).toBe(false);
  });

  it('counts per authenticator: a correct PIN on one key does not hide wrong PINs on another', async () => {
    const { guard } = setup();
    await attempt(guard, FP_B, GET_PIN_TOKEN, CTAP2_ERR_PIN_INVALID, 'hid-x');
    await attempt(guard, FP_B, GET_PIN_TOKEN, CTAP2_OK, 'hid-y');
    await attempt(guard, FP_B, GET_PIN_TOKEN, CTAP2_ERR_PIN_INVALID, 'hid-x');
    expect(guard.isBlocked(FP_B)).toBe(true);
  });

  it('serialises one gateway\'s attempts: with one wrong PIN, two in flight cannot both reach the key', async () => {
    const { guard } = setup();
    await attempt(guard, FP_B, GET_PIN_TOKEN, CTAP2_ERR_PIN_INVALID);
    const first = (await guard.admit('cbor', clientPin(GET_PIN_TOKEN), who(FP_B), ctx())) as PinPass;
    expect(first.refused).toBe(false);
    let secondSettled = false;
    const second = guard.admit('cbor', clientPin(GET_PIN_TOKEN), who(FP_B), ctx()).then((a) => ((secondSettled = true), a));
    // Another gateway is not held up by B's attempt in flight.
    expect(await attempt(guard, FP_A, GET_PIN_TOKEN, CTAP2_OK)).toBe(CTAP2_OK);
    await new Promise((r) => setTimeout(r, 10));
    expect(secondSettled).toBe(false);
    first.settle(Uint8Array.of(CTAP2_ERR_PIN_INVALID));
    expect(await second).toMatchObject({ refused: true, reason: PIN_BLOCK_REASON });
  });

  it('a waiting attempt whose client cancels gives up without holding up the next one', async () => {
    const { guard } = setup();
    const first = (await guard.admit('cbor', clientPin(GET_PIN_TOKEN), who(FP_B), ctx())) as PinPass;
    const abort = new AbortController();
    const waiting = guard.admit('cbor', clientPin(GET_PIN_TOKEN), who(FP_B), ctx(abort.signal));
    abort.abort();
    expect(await waiting).toMatchObject({ refused: true, decision: 'cancelled', answer: Uint8Array.of(CTAP2_ERR_KEEPALIVE_CANCEL) });
    const third = guard.admit('cbor', clientPin(GET_PIN_TOKEN), who(FP_B), ctx());
    first.settle(Uint8Array.of(CTAP2_OK));
    const admitted = (await third) as PinPass;
    expect(admitted.refused).toBe(false);
    admitted.settle(Uint8Array.of(CTAP2_OK));
  });

  it('only a person removing the block lifts it: not an approving presence, not time; then the count starts afresh', async () => {
    const { guard, store, presence } = setup();
    presence.answer = 'approved'; // `--approve always`
    await attempt(guard, FP_B, GET_PIN_TOKEN, CTAP2_ERR_PIN_INVALID);
    await attempt(guard, FP_B, GET_PIN_TOKEN, CTAP2_ERR_PIN_INVALID);
    expect(await attempt(guard, FP_B, CHANGE_PIN, CTAP2_OK)).toBe(CTAP2_ERR_PIN_AUTH_BLOCKED);
    expect(presence.requests).toEqual([]); // a blocked gateway's changePIN is not even put to the user
    expect(await attempt(guard, FP_B, GET_PIN_TOKEN, CTAP2_OK)).toBe(CTAP2_ERR_PIN_AUTH_BLOCKED);

    store.blocks.delete(FP_B); // what `keytunnel trust unblock` does
    expect(await attempt(guard, FP_B, GET_PIN_TOKEN, CTAP2_ERR_PIN_INVALID)).toBe(CTAP2_ERR_PIN_INVALID);
    expect(guard.isBlocked(FP_B)).toBe(false);
    expect(guard.wrongPins(FP_B, KEY)).toBe(1);
    expect(await attempt(guard, FP_B, GET_PIN_TOKEN, CTAP2_ERR_PIN_INVALID)).toBe(CTAP2_ERR_PIN_INVALID);
    expect(await attempt(guard, FP_B, GET_PIN_TOKEN, CTAP2_OK)).toBe(CTAP2_ERR_PIN_AUTH_BLOCKED);
  });

  it('a block that could not be recorded is never lifted by the (empty) store: only a restart helps', async () => {
    const { guard, store, logs } = setup();
    store.failWrites = true;
    await attempt(guard, FP_B, GET_PIN_TOKEN, CTAP2_ERR_PIN_INVALID);
    await attempt(guard, FP_B, GET_PIN_TOKEN, CTAP2_ERR_PIN_INVALID);
    expect(store.blocks.size).toBe(0);
    expect(await attempt(guard, FP_B, GET_PIN_TOKEN, CTAP2_OK)).toBe(CTAP2_ERR_PIN_AUTH_BLOCKED);
    expect(logs.map((l) => l.msg).join()).toMatch(/cannot record the PIN block/);
  });

  it('setPIN and changePIN need a yes on the agent naming the VM; no or a cancel forwards nothing', async () => {
    const { guard, presence } = setup();
    presence.answer = 'denied';
    const statuses: number[] = [];
    const denied = await guard.admit('cbor', clientPin(SET_PIN), who(FP_B), { signal: new AbortController().signal, onStatus: (s) => statuses.push(s) });
    expect(denied).toMatchObject({ refused: true, decision: 'denied-by-user', answer: Uint8Array.of(CTAP2_ERR_OPERATION_DENIED) });
    expect(statuses).toEqual([2]); // KEEPALIVE UPNEEDED while asking
    expect(presence.requests).toEqual([{ action: 'setPin', origin: { gatewayFingerprint: FP_B, gatewayName: 'customer-b' } }]);
    expect(await attempt(guard, FP_B, CHANGE_PIN, CTAP2_OK)).toBe(CTAP2_ERR_OPERATION_DENIED);
    expect(presence.requests.at(-1)?.action).toBe('changePin');

    presence.answer = 'hang';
    const abort = new AbortController();
    const pending = guard.admit('cbor', clientPin(SET_PIN), who(FP_B), ctx(abort.signal));
    abort.abort();
    expect(await pending).toMatchObject({ refused: true, decision: 'cancelled' });

    presence.answer = 'timeout';
    const timedOut = await guard.admit('cbor', clientPin(SET_PIN), who(FP_B), ctx());
    expect(timedOut).toMatchObject({ refused: true, decision: 'timed-out', answer: Uint8Array.of(CTAP2_ERR_USER_ACTION_TIMEOUT) });

    presence.answer = 'approved';
    const approved = (await guard.admit('cbor', clientPin(SET_PIN), who(FP_B), ctx())) as PinPass;
    expect(approved.refused).toBe(false);
    approved.settle(Uint8Array.of(CTAP2_OK));
  });
});

describe('withPolicy + PinGuard', () => {
  /** A hardware-like authenticator answering clientPIN with scripted statuses. */
  class ScriptedKey implements Authenticator {
    readonly descriptor = { id: KEY, label: 'scripted', transport: 'hid' as const, ctap1: false, wink: false };
    readonly received: Uint8Array[] = [];
    status = CTAP2_ERR_PIN_INVALID;
    async request(_kind: RequestKind, payload: Uint8Array, _ctx: RequestContext): Promise<Uint8Array> {
      this.received.push(payload);
      return Uint8Array.of(this.status);
    }
  }

  it('refuses setPIN on a hardware key when the user says no, whatever approve says, and audits the block', async () => {
    const { guard, presence } = setup();
    const key = new ScriptedKey();
    const audit: AuditRecord[] = [];
    const deps = { audit: { record: (r: AuditRecord) => audit.push(r) }, presence, state: new PolicyState(), pinGuard: guard };
    const b = withPolicy(key, { ...defaultPolicy(FP_B), name: 'customer-b', approve: 'touch' }, deps);
    const c = { signal: new AbortController().signal, onStatus: () => {} };
    presence.answer = 'denied';
    expect(await b.request('cbor', clientPin(SET_PIN), c)).toEqual(Uint8Array.of(CTAP2_ERR_OPERATION_DENIED));
    expect(key.received).toHaveLength(0);
    expect(audit.at(-1)).toMatchObject({ command: 'clientPin', decision: 'denied-by-user', status: '0x27' });

    for (let i = 0; i < 5; i++) await b.request('cbor', clientPin(GET_PIN_TOKEN), c);
    expect(key.received).toHaveLength(2);
    expect(audit.at(-1)).toMatchObject({
      gateway: FP_B,
      gatewayName: 'customer-b',
      authenticator: KEY,
      command: 'clientPin',
      decision: 'refused-by-policy',
      reason: PIN_BLOCK_REASON,
      status: '0x34',
    });
  });
});

describe('FilePinBlockStore', () => {
  it('writes one 0600 file per blocked gateway in a 0700 directory, answers isBlocked, removes and clears', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kt-pinblocks-'));
    const store = new FilePinBlockStore(dir);
    expect(await store.isBlocked(FP_B)).toBe(false);
    expect(await store.list()).toEqual([]);
    const entry: PinBlock = { fingerprint: FP_B, name: 'customer-b', blockedAt: '2024-01-01T00:00:00.000Z', authenticator: KEY };
    expect(await store.block(entry)).toBe(true);
    await store.block({ ...entry, fingerprint: FP_A, name: 'customer-a' });
    expect(await store.isBlocked(FP_B)).toBe(true);
    const blocksDir = join(dir, PIN_BLOCKS_DIR);
    expect((await stat(blocksDir)).mode & 0o777).toBe(0o700);
    const files = (await readdir(blocksDir)).sort();
    expect(files).toEqual([`${'aa'.repeat(32)}.json`, `${'bb'.repeat(32)}.json`]); // no temporary file left
    expect((await stat(join(blocksDir, files[1]!))).mode & 0o777).toBe(0o600);
    expect((await store.list()).find((b) => b.fingerprint === FP_B)).toEqual(entry);

    expect(await store.remove(FP_B)).toBe(true);
    expect(await store.remove(FP_B)).toBe(false);
    expect(await store.isBlocked(FP_B)).toBe(false);
    expect(await store.isBlocked(FP_A)).toBe(true);
    await writeFile(join(blocksDir, 'unrelated.txt'), 'x');
    await store.clear();
    expect(await readdir(blocksDir)).toEqual(['unrelated.txt']);
  });

  it('PinGuard.open clears the blocks of an earlier agent run (a restart unblocks)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kt-pinblocks-'));
    const store = new FilePinBlockStore(dir);
    await store.block({ fingerprint: FP_B, name: 'customer-b', blockedAt: '2024-01-01T00:00:00.000Z', authenticator: KEY });
    const guard = await PinGuard.open(dir, new FakePresence());
    expect(await store.isBlocked(FP_B)).toBe(false);
    expect(guard.isBlocked(FP_B)).toBe(false);
  });
});
