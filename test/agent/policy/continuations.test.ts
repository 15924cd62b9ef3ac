/**
 * Issue 11, finding 2: one gateway must never continue (getNextAssertion, enumerate*GetNext*) a sequence another
 * gateway's request began, whatever it sends first. Ownership comes from what the authenticator answered
 * (agent/policy/continuations.ts). Exercised against a real SoftAuthenticator with shared scope (which would
 * happily continue anyone's sequence) and a hardware-like key with one state slot that records what reached it.
 */
import { describe, expect, it } from 'vitest';
import { decode, encode, isCborMap, type CborMap, type CborValue } from '../../../protocol/cbor.ts';
import type { Authenticator, RequestContext, RequestKind } from '../../../protocol/authenticator.ts';
import {
  CTAP2_CREDENTIAL_MANAGEMENT,
  CTAP2_ERR_INVALID_SUBCOMMAND,
  CTAP2_ERR_NO_CREDENTIALS,
  CTAP2_ERR_NOT_ALLOWED,
  CTAP2_ERR_REQUEST_TOO_LARGE,
  CTAP2_GET_ASSERTION,
  CTAP2_GET_NEXT_ASSERTION,
  CTAP2_OK,
} from '../../../protocol/ctap2.ts';
import type { AuditRecord } from '../../../agent/policy/audit.ts';
import { defaultPolicy } from '../../../agent/policy/config.ts';
import { PolicyState, withPolicy } from '../../../agent/policy/policy-authenticator.ts';
import type { SoftAuthenticator } from '../../../agent/authenticators/soft/soft-authenticator.ts';
import { ctap, m, makeHarness, mcParams, PlatformPin, sha256, type Harness } from '../soft/helpers.ts';
import { FakePresence } from '../../../agent/presence/fake.ts';

const FP_A = 'aa'.repeat(32).match(/../g)!.join(':');
const FP_B = 'bb'.repeat(32).match(/../g)!.join(':');
const CM_UNKNOWN = 0x99;
const CM_ENUMERATE_RPS_BEGIN = 0x02;
const CM_ENUMERATE_CREDENTIALS_BEGIN = 0x04;
const CM_ENUMERATE_CREDENTIALS_GET_NEXT = 0x05;

function cbor(cmd: number, params?: CborMap): Uint8Array {
  return params === undefined ? Uint8Array.of(cmd) : Uint8Array.of(cmd, ...encode(params));
}
const getAssertion = (rpId: string, pad = 0) =>
  cbor(CTAP2_GET_ASSERTION, m([[1, rpId], [2, sha256('cd')], ...(pad ? ([[4, m([['x-pad', new Uint8Array(pad)]])]] as [CborValue, CborValue][]) : [])]));
/** A getAssertion of exactly `size` bytes (the extension pads it). */
const getAssertionOfSize = (rpId: string, size: number) => {
  const base = getAssertion(rpId, 100).length - 100;
  for (let pad = size - base - 4; ; pad++) {
    const p = getAssertion(rpId, pad);
    if (p.length === size) return p;
    if (p.length > size) throw new Error('cannot hit the size');
  }
};
const getNextAssertion = () => Uint8Array.of(CTAP2_GET_NEXT_ASSERTION);
const cm = (sub: number, subParams?: CborMap) => cbor(CTAP2_CREDENTIAL_MANAGEMENT, m(subParams ? [[1, sub], [2, subParams]] : [[1, sub]]));
const enumerateCredentialsBegin = (rpId: string) => cm(CM_ENUMERATE_CREDENTIALS_BEGIN, m([[1, sha256(rpId)]]));
const getNextCredential = () => cm(CM_ENUMERATE_CREDENTIALS_GET_NEXT);

function ctx(signal = new AbortController().signal): RequestContext {
  return { signal, onStatus: () => {} };
}

/** Users named in an answer (getAssertion/credentialManagement user member 0x04 / 0x06). */
function usersIn(answer: Uint8Array): string[] {
  if (answer.length < 2) return [];
  const body = decode(answer.subarray(1), { canonical: false });
  if (!isCborMap(body)) return [];
  return [body.get(4), body.get(6)].filter(isCborMap).map((u) => String(u.get('name')));
}

/** Two gateways with shared scope: A allowed a.example only, B b.example only. */
function gateways(inner: Authenticator) {
  const audit: AuditRecord[] = [];
  const deps = { audit: { record: (r: AuditRecord) => audit.push(r) }, presence: new FakePresence(), state: new PolicyState() };
  const a = withPolicy(inner, { ...defaultPolicy(FP_A), name: 'customer-a', allowRps: ['a.example'], scope: 'shared' }, deps);
  const b = withPolicy(inner, { ...defaultPolicy(FP_B), name: 'customer-b', allowRps: ['b.example'], scope: 'shared' }, deps);
  return { a, b, audit };
}

const USERS: Record<string, string[]> = {
  'a.example': ['alice@tenant-a', 'bob@tenant-a', 'carol@tenant-a'],
  'b.example': ['dave@tenant-b', 'erin@tenant-b', 'frank@tenant-b'],
};

/**
 * A hardware-like key with one continuation slot, as lenient firmware has: any request it processes ends the
 * sequence, except one it refuses early (too large, unknown subcommand), which leaves the slot as it was. It
 * records every request that reaches it; `gate` (when set) holds a request before it is served, so tests can
 * choose the order in which concurrent requests are served (a fair queue may reorder them).
 */
class LenientKey implements Authenticator {
  readonly descriptor = { id: 'key-1', label: 'lenient key', transport: 'hid' as const, ctap1: false, wink: false };
  readonly reached: { gateway: string | undefined; command: number }[] = [];
  gate?: (payload: Uint8Array, signal: AbortSignal) => Promise<void>;
  private slot?: { kind: 'assertion' | 'credentials'; rest: string[] };

  async request(_kind: RequestKind, payload: Uint8Array, c: RequestContext): Promise<Uint8Array> {
    this.reached.push({ gateway: c.origin?.gatewayName, command: payload[0]! });
    if (this.gate) await this.gate(payload, c.signal);
    return this.serve(payload);
  }

  private serve(payload: Uint8Array): Uint8Array {
    if (payload.length > 7609) return Uint8Array.of(CTAP2_ERR_REQUEST_TOO_LARGE);
    const params = payload.length > 1 ? (decode(payload.subarray(1)) as CborMap) : new Map<CborValue, CborValue>();
    const ok = (body: [CborValue, CborValue][]) => Uint8Array.of(CTAP2_OK, ...encode(m(body)));
    const user = (name: string) => m([['id', sha256(name).subarray(0, 8)], ['name', name]]);
    switch (payload[0]) {
      case CTAP2_GET_ASSERTION: {
        const users = USERS[params.get(1) as string];
        if (!users) return (this.slot = undefined), Uint8Array.of(CTAP2_ERR_NO_CREDENTIALS);
        this.slot = { kind: 'assertion', rest: users.slice(1) };
        return ok([[4, user(users[0]!)], [5, users.length]]);
      }
      case CTAP2_GET_NEXT_ASSERTION: {
        const next = this.slot?.kind === 'assertion' ? this.slot.rest.shift() : undefined;
        return next === undefined ? Uint8Array.of(CTAP2_ERR_NOT_ALLOWED) : ok([[4, user(next)]]);
      }
      case CTAP2_CREDENTIAL_MANAGEMENT: {
        const sub = params.get(1) as number;
        if (sub < 1 || sub > 7) return Uint8Array.of(CTAP2_ERR_INVALID_SUBCOMMAND); // the slot is kept
        if (sub === CM_ENUMERATE_CREDENTIALS_GET_NEXT) {
          const next = this.slot?.kind === 'credentials' ? this.slot.rest.shift() : undefined;
          return next === undefined ? Uint8Array.of(CTAP2_ERR_NOT_ALLOWED) : ok([[6, user(next)]]);
        }
        this.slot = undefined;
        if (sub !== CM_ENUMERATE_CREDENTIALS_BEGIN) return Uint8Array.of(CTAP2_OK);
        const hash = Buffer.from((params.get(2) as CborMap).get(1) as Uint8Array);
        const rp = Object.keys(USERS).find((r) => hash.equals(sha256(r)))!;
        this.slot = { kind: 'credentials', rest: USERS[rp]!.slice(1) };
        return ok([[6, user(USERS[rp]![0]!)], [9, USERS[rp]!.length]]);
      }
      default:
        this.slot = undefined;
        return Uint8Array.of(CTAP2_OK);
    }
  }
}

/** A controllable gate: requests wait until released, in the order the test chooses. */
function manualGate(key: LenientKey) {
  const held: { command: number; release: () => void }[] = [];
  key.gate = (payload) => new Promise<void>((release) => held.push({ command: payload[0]!, release }));
  return {
    held,
    async settle() {
      for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    },
  };
}

describe('continuations on a hardware-like key', () => {
  it("B's unknown subcommand then GetNextCredential: nothing of B's reaches the key, B gets nothing of A's, A continues", async () => {
    const key = new LenientKey();
    const { a, b, audit } = gateways(key);
    const first = await a.request('cbor', enumerateCredentialsBegin('a.example'), ctx());
    expect(usersIn(first)).toEqual(['alice@tenant-a']);

    expect(await b.request('cbor', cm(CM_UNKNOWN), ctx())).toEqual(Uint8Array.of(CTAP2_ERR_INVALID_SUBCOMMAND));
    const stolen = await b.request('cbor', getNextCredential(), ctx());
    expect(stolen).toEqual(Uint8Array.of(CTAP2_ERR_NOT_ALLOWED));
    expect(key.reached.map((r) => r.gateway)).toEqual(['customer-a']);
    expect(audit.slice(1).map((r) => [r.gatewayName, r.decision, r.status])).toEqual([
      ['customer-b', 'refused-by-policy', '0x3e'],
      ['customer-b', 'refused-by-policy', '0x30'],
    ]);

    // Nothing reached the key on B's behalf, so A's own enumeration goes on.
    expect(usersIn(await a.request('cbor', getNextCredential(), ctx()))).toEqual(['bob@tenant-a']);
    expect(usersIn(await a.request('cbor', getNextCredential(), ctx()))).toEqual(['carol@tenant-a']);
  });

  it('whatever B sends first — a request the key refuses early, or one cancelled before it reaches the key — B continues nothing of A\'s', async () => {
    const key = new LenientKey();
    const { a, b } = gateways(key);
    await a.request('cbor', enumerateCredentialsBegin('a.example'), ctx());
    // Allowed by the policy, refused by the key before it touches its state (the slot still holds A's bob).
    expect(await b.request('cbor', getAssertionOfSize('b.example', 7610), ctx())).toEqual(Uint8Array.of(CTAP2_ERR_REQUEST_TOO_LARGE));
    expect(await b.request('cbor', getNextCredential(), ctx())).toEqual(Uint8Array.of(CTAP2_ERR_NOT_ALLOWED));
    // B's request reached the key: A's sequence is over for the policy too.
    expect(await a.request('cbor', getNextCredential(), ctx())).toEqual(Uint8Array.of(CTAP2_ERR_NOT_ALLOWED));
    expect(key.reached.map((r) => r.command)).toEqual([CTAP2_CREDENTIAL_MANAGEMENT, CTAP2_GET_ASSERTION]);

    await a.request('cbor', getAssertion('a.example'), ctx());
    const cancel = new AbortController();
    key.gate = (_p, signal) =>
      new Promise((_resolve, reject) => signal.addEventListener('abort', () => reject(new Error('cancelled in the queue'))));
    const queued = b.request('cbor', getAssertion('b.example'), ctx(cancel.signal));
    cancel.abort();
    await expect(queued).rejects.toThrow('cancelled in the queue');
    key.gate = undefined;
    expect(await b.request('cbor', getNextAssertion(), ctx())).toEqual(Uint8Array.of(CTAP2_ERR_NOT_ALLOWED));
    expect(key.reached.filter((r) => r.command === CTAP2_GET_NEXT_ASSERTION)).toHaveLength(0);
  });

  it('counts the items down and closes a finished sequence', async () => {
    const key = new LenientKey();
    const { a } = gateways(key);
    expect(usersIn(await a.request('cbor', getAssertion('a.example'), ctx()))).toEqual(['alice@tenant-a']);
    expect(usersIn(await a.request('cbor', getNextAssertion(), ctx()))).toEqual(['bob@tenant-a']);
    expect(usersIn(await a.request('cbor', getNextAssertion(), ctx()))).toEqual(['carol@tenant-a']);
    expect(await a.request('cbor', getNextAssertion(), ctx())).toEqual(Uint8Array.of(CTAP2_ERR_NOT_ALLOWED));
    expect(key.reached.map((r) => r.command)).toEqual([CTAP2_GET_ASSERTION, CTAP2_GET_NEXT_ASSERTION, CTAP2_GET_NEXT_ASSERTION]);
    // A continuation of another kind than the live one is refused too.
    await a.request('cbor', getAssertion('a.example'), ctx());
    expect(await a.request('cbor', getNextCredential(), ctx())).toEqual(Uint8Array.of(CTAP2_ERR_NOT_ALLOWED));
  });

  it('an answer that arrives while another request reached the key makes nobody an owner', async () => {
    const key = new LenientKey();
    const { a, b } = gateways(key);
    const gate = manualGate(key);
    const begin = a.request('cbor', enumerateCredentialsBegin('a.example'), ctx());
    const other = b.request('cbor', getAssertion('b.example'), ctx());
    await gate.settle();
    expect(gate.held.map((h) => h.command)).toEqual([CTAP2_CREDENTIAL_MANAGEMENT, CTAP2_GET_ASSERTION]);
    // The queue serves B's getAssertion first, then A's Begin: the key now holds A's enumeration...
    gate.held[1]!.release();
    await gate.settle();
    gate.held[0]!.release();
    expect(usersIn(await begin)).toEqual(['alice@tenant-a']);
    expect(usersIn(await other)).toEqual(['dave@tenant-b']);
    key.gate = undefined;
    // ...but neither answer's order against the other was known: no continuation for either.
    expect(await a.request('cbor', getNextCredential(), ctx())).toEqual(Uint8Array.of(CTAP2_ERR_NOT_ALLOWED));
    expect(await b.request('cbor', getNextAssertion(), ctx())).toEqual(Uint8Array.of(CTAP2_ERR_NOT_ALLOWED));
    expect(key.reached).toHaveLength(2);
  });

  it("a continuation served after another gateway's request has its answer withheld", async () => {
    const key = new LenientKey();
    const { a, b } = gateways(key);
    await a.request('cbor', getAssertion('a.example'), ctx());
    const gate = manualGate(key);
    const next = a.request('cbor', getNextAssertion(), ctx());
    const bs = b.request('cbor', getAssertion('b.example'), ctx());
    await gate.settle();
    // Served out of order: B's getAssertion first, so A's getNextAssertion returns B's second user.
    gate.held[1]!.release();
    await gate.settle();
    gate.held[0]!.release();
    expect(await next).toEqual(Uint8Array.of(CTAP2_ERR_NOT_ALLOWED));
    expect(usersIn(await bs)).toEqual(['dave@tenant-b']);
    key.gate = undefined;
    expect(await b.request('cbor', getNextAssertion(), ctx())).toEqual(Uint8Array.of(CTAP2_ERR_NOT_ALLOWED));
    expect(await a.request('cbor', getNextAssertion(), ctx())).toEqual(Uint8Array.of(CTAP2_ERR_NOT_ALLOWED));
  });

  it("the owner's cancelled continuation ends the sequence", async () => {
    const key = new LenientKey();
    const { a } = gateways(key);
    await a.request('cbor', getAssertion('a.example'), ctx());
    const cancel = new AbortController();
    key.gate = (_p, signal) => new Promise((_resolve, reject) => signal.addEventListener('abort', () => reject(new Error('cancelled'))));
    const next = a.request('cbor', getNextAssertion(), ctx(cancel.signal));
    cancel.abort();
    await expect(next).rejects.toThrow('cancelled');
    key.gate = undefined;
    expect(await a.request('cbor', getNextAssertion(), ctx())).toEqual(Uint8Array.of(CTAP2_ERR_NOT_ALLOWED));
    expect(key.reached.map((r) => r.command)).toEqual([CTAP2_GET_ASSERTION, CTAP2_GET_NEXT_ASSERTION]);
  });

  it("enumerateRPsBegin's totalRPs gives the owner RP continuations only", async () => {
    const answers: Uint8Array[] = [];
    const key: Authenticator = {
      descriptor: { id: 'key-2', label: 'rps', transport: 'hid', ctap1: false, wink: false },
      request: async (_k, payload) => {
        answers.push(payload);
        return payload[0] === CTAP2_CREDENTIAL_MANAGEMENT && payload[3] === CM_ENUMERATE_RPS_BEGIN
          ? Uint8Array.of(0, ...encode(m([[3, m([['id', 'a.example']])], [5, 2]])))
          : Uint8Array.of(0, ...encode(m([[3, m([['id', 'b.example']])]])));
      },
    };
    const audit: AuditRecord[] = [];
    const deps = { audit: { record: (r: AuditRecord) => audit.push(r) }, presence: new FakePresence(), state: new PolicyState() };
    const any = withPolicy(key, { ...defaultPolicy(FP_A), allowRps: ['*'] }, deps);
    const other = withPolicy(key, { ...defaultPolicy(FP_B), allowRps: ['*'] }, deps);
    await any.request('cbor', cm(CM_ENUMERATE_RPS_BEGIN), ctx());
    expect(await other.request('cbor', cm(0x03), ctx())).toEqual(Uint8Array.of(CTAP2_ERR_NOT_ALLOWED));
    expect(await any.request('cbor', getNextCredential(), ctx())).toEqual(Uint8Array.of(CTAP2_ERR_NOT_ALLOWED));
    expect((await any.request('cbor', cm(0x03), ctx()))[0]).toBe(CTAP2_OK);
    expect(await any.request('cbor', cm(0x03), ctx())).toEqual(Uint8Array.of(CTAP2_ERR_NOT_ALLOWED));
    expect(answers).toHaveLength(2);
  });
});

describe('continuations on the soft authenticator (shared scope)', () => {
  /** A soft authenticator with a PIN and two of A's discoverable credentials on a.example. */
  async function softWithTenantA() {
    const h = await makeHarness();
    const pin = new PlatformPin(h, 2);
    expect(await pin.setPin('1234')).toBe(0);
    for (const [i, name] of ['alice@tenant-a', 'bob@tenant-a'].entries()) {
      const { token } = await pin.token('1234', 0x01, 'a.example');
      const cdh = sha256(`mc-${i}`);
      const p = mcParams({ rpId: 'a.example', rk: true, userId: Uint8Array.of(i + 1), cdh, extra: [[8, pin.authenticate(token!, cdh)], [9, 2]] });
      p.set(3, m([['id', Uint8Array.of(i + 1)], ['name', name]]));
      expect((await ctap(h, 0x01, p)).status).toBe(0);
    }
    const { a, b, audit } = gateways(h.auth);
    // A's client talks to the soft authenticator through A's policy view.
    const viaA = new PlatformPin({ ...h, auth: a as unknown as SoftAuthenticator } satisfies Harness, 2);
    const { token } = await viaA.token('1234', 0x04);
    const subParams = m([[1, sha256('a.example')]]);
    const begin = cbor(
      CTAP2_CREDENTIAL_MANAGEMENT,
      m([[1, CM_ENUMERATE_CREDENTIALS_BEGIN], [2, subParams], [3, 2], [4, viaA.authenticate(token!, Uint8Array.of(CM_ENUMERATE_CREDENTIALS_BEGIN, ...encode(subParams)))]]),
    );
    return { h, a, b, audit, begin };
  }

  it("B's decoy (unknown subcommand) then GetNextCredential gets nothing of A's", async () => {
    const { a, b, begin } = await softWithTenantA();
    const first = await a.request('cbor', begin, ctx());
    expect(first[0]).toBe(CTAP2_OK);
    expect((decode(first.subarray(1)) as CborMap).get(9)).toBe(2);
    expect(await b.request('cbor', cm(CM_UNKNOWN), ctx())).toEqual(Uint8Array.of(CTAP2_ERR_INVALID_SUBCOMMAND));
    const stolen = await b.request('cbor', getNextCredential(), ctx());
    expect(stolen).toEqual(Uint8Array.of(CTAP2_ERR_NOT_ALLOWED));
    expect(usersIn(stolen)).toEqual([]);
    // A's enumeration is untouched.
    const second = usersIn(await a.request('cbor', getNextCredential(), ctx()));
    expect([...usersIn(first), ...second].sort()).toEqual(['alice@tenant-a', 'bob@tenant-a']);
  });

  it('B\'s request the soft authenticator refuses early (7610 bytes) then GetNextCredential gets nothing of A\'s', async () => {
    const { a, b, begin } = await softWithTenantA();
    expect((await a.request('cbor', begin, ctx()))[0]).toBe(CTAP2_OK);
    const big = await b.request('cbor', getAssertionOfSize('b.example', 7610), ctx());
    expect(big[0]).not.toBe(CTAP2_OK);
    const stolen = await b.request('cbor', getNextCredential(), ctx());
    expect(stolen).toEqual(Uint8Array.of(CTAP2_ERR_NOT_ALLOWED));
  });
});
