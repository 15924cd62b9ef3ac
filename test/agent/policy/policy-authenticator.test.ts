import { describe, expect, it } from 'vitest';
import { encode, type CborValue } from '../../../protocol/cbor.ts';
import type { Authenticator, RequestContext, RequestKind, RequestOrigin } from '../../../protocol/authenticator.ts';
import {
  CTAP2_CREDENTIAL_MANAGEMENT,
  CTAP2_ERR_CBOR_UNEXPECTED_TYPE,
  CTAP2_ERR_INVALID_CBOR,
  CTAP2_ERR_MISSING_PARAMETER,
  CTAP2_ERR_KEEPALIVE_CANCEL,
  CTAP2_ERR_NOT_ALLOWED,
  CTAP2_ERR_OPERATION_DENIED,
  CTAP2_GET_ASSERTION,
  CTAP2_GET_NEXT_ASSERTION,
  CTAP2_MAKE_CREDENTIAL,
  CTAP2_RESET,
  CTAP2_ERR_USER_ACTION_TIMEOUT,
} from '../../../protocol/ctap2.ts';
import type { AuditRecord } from '../../../agent/policy/audit.ts';
import { defaultPolicy, type GatewayPolicy } from '../../../agent/policy/config.ts';
import { PolicyState, withPolicy } from '../../../agent/policy/policy-authenticator.ts';
import { rpIdHash } from '../../../agent/policy/request-summary.ts';
import type { PresenceOutcome, PresenceRequest } from '../../../agent/presence/port.ts';
import { FakePresence } from '../../../agent/presence/fake.ts';

const U2F_AUTH_INS = 0x02;
const FP_A = 'aa'.repeat(32).match(/../g)!.join(':');
const FP_B = 'bb'.repeat(32).match(/../g)!.join(':');

/** An authenticator that records what reached it and answers OK. */
class SpyAuthenticator implements Authenticator {
  readonly calls: { kind: RequestKind; payload: Uint8Array; origin?: RequestOrigin }[] = [];
  /** What a CTAP2 request is answered with (default: CTAP2_OK alone). */
  answer: (payload: Uint8Array) => Uint8Array = () => Uint8Array.of(0);
  constructor(readonly descriptor: Authenticator['descriptor']) {}
  async request(kind: RequestKind, payload: Uint8Array, ctx: RequestContext): Promise<Uint8Array> {
    this.calls.push({ kind, payload, origin: ctx.origin });
    return kind === 'cbor' ? this.answer(payload) : Uint8Array.of(0x90, 0x00);
  }
}

function spy(transport: 'soft' | 'hid' = 'hid') {
  return new SpyAuthenticator({ id: `${transport}-1`, label: 'spy', transport, ctap1: true, wink: false });
}

function cbor(cmd: number, params: Map<CborValue, CborValue>): Uint8Array {
  const body = encode(params);
  const out = new Uint8Array(1 + body.length);
  out[0] = cmd;
  out.set(body, 1);
  return out;
}

const makeCredential = (rpId: string, userName = 'alice@contoso.com') =>
  cbor(
    CTAP2_MAKE_CREDENTIAL,
    new Map<CborValue, CborValue>([
      [1, new Uint8Array(32)],
      [2, new Map<CborValue, CborValue>([['id', rpId]])],
      [3, new Map<CborValue, CborValue>([['id', new Uint8Array(8)], ['name', userName]])],
      [4, [new Map<CborValue, CborValue>([['alg', -7], ['type', 'public-key']])]],
    ]),
  );
const getAssertion = (rpId: string) =>
  cbor(CTAP2_GET_ASSERTION, new Map<CborValue, CborValue>([[1, rpId], [2, new Uint8Array(32)]]));

function u2fAuthenticate(appId: string, control = 0x03): Uint8Array {
  const data = new Uint8Array(32 + 32 + 1 + 16);
  data.set(rpIdHash(appId), 32);
  data[64] = 16;
  return Uint8Array.from([0x00, 0x02, control, 0x00, data.length, ...data]);
}

function ctx(): RequestContext {
  return { signal: new AbortController().signal, onStatus: () => {} };
}

function setup(policy: Partial<GatewayPolicy>, transport: 'soft' | 'hid' = 'hid', answer: PresenceOutcome = 'approved') {
  const inner = spy(transport);
  const audit: AuditRecord[] = [];
  const prompts: PresenceRequest[] = [];
  const state = new PolicyState();
  const deps = {
    audit: { record: (r: AuditRecord) => audit.push(r) },
    presence: new FakePresence((r) => (prompts.push(r), answer)),
    state,
  };
  const view = (fp: string, p: Partial<GatewayPolicy> = policy) =>
    withPolicy(inner, { ...defaultPolicy(fp), name: fp === FP_A ? 'customer-a' : 'customer-b', ...p }, deps);
  return { inner, audit, prompts, a: view(FP_A), b: view(FP_B), view };
}

describe('policy: RP allow-list', () => {
  it('refuses an RP outside allowRps on the agent, before the authenticator, and audits it', async () => {
    const { inner, audit, a } = setup({ allowRps: ['login.microsoft.com', '*.contoso.com'] });
    expect(await a.request('cbor', makeCredential('evil.example'), ctx())).toEqual(Uint8Array.of(CTAP2_ERR_OPERATION_DENIED));
    expect(await a.request('cbor', getAssertion('contoso.com'), ctx())).toEqual(Uint8Array.of(CTAP2_ERR_OPERATION_DENIED));
    expect(inner.calls).toHaveLength(0);
    expect(audit.map((r) => [r.decision, r.rpId, r.gatewayName])).toEqual([
      ['refused-by-policy', 'evil.example', 'customer-a'],
      ['refused-by-policy', 'contoso.com', 'customer-a'],
    ]);
    expect(audit[0]!.user).toBe('alice@contoso.com');
    expect(audit[0]!.status).toBe('0x27');
  });

  it('passes allowed RPs (exact and wildcard, any case) with the gateway as origin', async () => {
    const { inner, audit, a } = setup({ allowRps: ['login.microsoft.com', '*.contoso.com'] });
    expect(await a.request('cbor', makeCredential('Login.Microsoft.com'), ctx())).toEqual(Uint8Array.of(0));
    expect(await a.request('cbor', getAssertion('sso.contoso.com'), ctx())).toEqual(Uint8Array.of(0));
    expect(inner.calls).toHaveLength(2);
    expect(inner.calls[0]!.origin).toEqual({ gatewayFingerprint: FP_A, gatewayName: 'customer-a', credentialScope: FP_A });
    expect(audit.map((r) => r.decision)).toEqual(['allowed', 'allowed']);
  });

  it('matches U2F application parameters against the hash of each allowed RP', async () => {
    const { inner, a } = setup({ allowRps: ['login.microsoft.com', '*.contoso.com'] });
    expect(await a.request('msg', u2fAuthenticate('login.microsoft.com'), ctx())).toEqual(Uint8Array.of(0x90, 0x00));
    // A wildcard cannot be hashed: fail closed.
    expect(await a.request('msg', u2fAuthenticate('www.contoso.com'), ctx())).toEqual(Uint8Array.of(0x6a, 0x80));
    expect(inner.calls).toHaveLength(1);
  });

  it('answers malformed requests itself with the status the spec names, and refuses commands that touch every tenant', async () => {
    const { inner, audit, a } = setup({});
    expect(await a.request('cbor', Uint8Array.of(CTAP2_GET_ASSERTION, 0xa1), ctx())).toEqual(Uint8Array.of(CTAP2_ERR_INVALID_CBOR));
    expect(await a.request('cbor', Uint8Array.of(CTAP2_GET_ASSERTION, 0xa0), ctx())).toEqual(Uint8Array.of(CTAP2_ERR_MISSING_PARAMETER));
    expect(await a.request('cbor', cbor(CTAP2_GET_ASSERTION, new Map<CborValue, CborValue>([[1, 7]])), ctx())).toEqual(
      Uint8Array.of(CTAP2_ERR_CBOR_UNEXPECTED_TYPE),
    );
    expect(await a.request('msg', Uint8Array.of(0, U2F_AUTH_INS, 3, 0, 2, 1, 2), ctx())).toEqual(Uint8Array.of(0x67, 0x00));
    expect(await a.request('cbor', Uint8Array.of(CTAP2_RESET), ctx())).toEqual(Uint8Array.of(CTAP2_ERR_OPERATION_DENIED));
    expect(await a.request('cbor', Uint8Array.of(0x0d), ctx())).toEqual(Uint8Array.of(CTAP2_ERR_OPERATION_DENIED));
    expect(inner.calls).toHaveLength(0);
    expect(audit.map((r) => r.command)).toEqual(['getAssertion', 'getAssertion', 'getAssertion', 'u2fAuthenticate', 'reset', 'config']);
  });
});

describe('policy: scope and shared state', () => {
  it('tags requests with the gateway fingerprint only for per-gateway scope', async () => {
    const { inner, view } = setup({});
    await view(FP_A, { scope: 'shared' }).request('cbor', getAssertion('x.example'), ctx());
    expect(inner.calls[0]!.origin?.credentialScope).toBeUndefined();
  });

  it("refuses getNextAssertion continuing another gateway's getAssertion", async () => {
    const { inner, a, b } = setup({});
    // The key answers numberOfCredentials (0x05) = 2: A owns one continuation.
    inner.answer = (payload) =>
      payload[0] === CTAP2_GET_ASSERTION ? Uint8Array.of(0, ...encode(new Map<CborValue, CborValue>([[5, 2]]))) : Uint8Array.of(0);
    await a.request('cbor', getAssertion('a.example'), ctx());
    expect(await b.request('cbor', Uint8Array.of(CTAP2_GET_NEXT_ASSERTION), ctx())).toEqual(Uint8Array.of(CTAP2_ERR_NOT_ALLOWED));
    expect(await a.request('cbor', Uint8Array.of(CTAP2_GET_NEXT_ASSERTION), ctx())).toEqual(Uint8Array.of(0));
    expect(inner.calls).toHaveLength(2);
  });

  it('keeps credential management within allowRps on a hardware key', async () => {
    const { inner, a } = setup({ allowRps: ['a.example'] });
    const enumerateRps = cbor(CTAP2_CREDENTIAL_MANAGEMENT, new Map<CborValue, CborValue>([[1, 2]]));
    const enumerateCreds = (rp: string) =>
      cbor(CTAP2_CREDENTIAL_MANAGEMENT, new Map<CborValue, CborValue>([[1, 4], [2, new Map<CborValue, CborValue>([[1, rpIdHash(rp)]])]]));
    expect(await a.request('cbor', enumerateRps, ctx())).toEqual(Uint8Array.of(CTAP2_ERR_OPERATION_DENIED));
    expect(await a.request('cbor', enumerateCreds('b.example'), ctx())).toEqual(Uint8Array.of(CTAP2_ERR_OPERATION_DENIED));
    expect(await a.request('cbor', enumerateCreds('a.example'), ctx())).toEqual(Uint8Array.of(0));
    expect(inner.calls).toHaveLength(1);
  });
});

describe('policy: consent on the agent', () => {
  it('asks, naming the gateway, RP and user, when approve is "agent" on a hardware key', async () => {
    const { inner, prompts, a } = setup({ approve: 'agent' });
    await a.request('cbor', makeCredential('login.microsoft.com'), ctx());
    expect(prompts).toEqual([
      {
        action: 'makeCredential',
        rpId: 'login.microsoft.com',
        userName: 'alice@contoso.com',
        origin: { gatewayFingerprint: FP_A, gatewayName: 'customer-a', credentialScope: FP_A },
      },
    ]);
    expect(inner.calls).toHaveLength(1);
  });

  it('a denial never reaches the key and is audited as denied-by-user', async () => {
    const { inner, audit, a } = setup({ approve: 'agent' }, 'hid', 'denied');
    expect(await a.request('msg', u2fAuthenticate('x.example'), ctx())).toEqual(Uint8Array.of(0x6a, 0x80));
    expect(inner.calls).toHaveLength(0);
    expect(audit[0]!.decision).toBe('denied-by-user');
  });

  it('a consent nobody answered never reaches the key, answers the status the spec names, and is audited timed-out', async () => {
    const { inner, audit, a } = setup({ approve: 'agent' }, 'hid', 'timeout');
    // A prompt nobody answered is USER_ACTION_TIMEOUT, as a hardware key answers (agent/presence/outcome-status.ts).
    expect(await a.request('cbor', makeCredential('login.microsoft.com'), ctx())).toEqual(Uint8Array.of(CTAP2_ERR_USER_ACTION_TIMEOUT));
    expect(await a.request('msg', u2fAuthenticate('x.example'), ctx())).toEqual(Uint8Array.of(0x6a, 0x80));
    expect(inner.calls).toHaveLength(0);
    expect(audit.map((r) => [r.decision, r.status])).toEqual([
      ['timed-out', '0x2f'],
      ['timed-out', '0x6a80'],
    ]);
  });

  it('a consent cancelled by the client answers KEEPALIVE_CANCEL and is audited cancelled', async () => {
    const { inner, audit, a } = setup({ approve: 'agent' }, 'hid', 'cancelled');
    expect(await a.request('cbor', getAssertion('x.example'), ctx())).toEqual(Uint8Array.of(CTAP2_ERR_KEEPALIVE_CANCEL));
    expect(inner.calls).toHaveLength(0);
    expect(audit[0]!.decision).toBe('cancelled');
  });

  it('does not double-prompt for the soft authenticator, which confirms on the agent itself', async () => {
    const { prompts, a } = setup({ approve: 'agent' }, 'soft');
    await a.request('cbor', getAssertion('x.example'), ctx());
    expect(prompts).toHaveLength(0);
  });
});

describe('policy: silent signatures (finding 7)', () => {
  /** A getAssertion answer: credential, authenticator data with the given flags, signature (CTAP 2.1 §6.2). */
  const assertionAnswer = (flags: number) => {
    const authData = new Uint8Array(37);
    authData[32] = flags;
    const body = encode(
      new Map<CborValue, CborValue>([
        [1, new Map<CborValue, CborValue>([['id', new Uint8Array(16)], ['type', 'public-key']])],
        [2, authData],
        [3, new Uint8Array(70)],
      ]),
    );
    return Uint8Array.of(0, ...body);
  };

  it("audits an assertion signed without user presence (an up=false probe) as 'silent', one with presence as 'allowed'", async () => {
    const { inner, audit, a } = setup({});
    inner.answer = () => assertionAnswer(0x00);
    await a.request('cbor', getAssertion('contoso.com'), ctx());
    inner.answer = () => assertionAnswer(0x01);
    await a.request('cbor', getAssertion('contoso.com'), ctx());
    expect(audit.map((r) => r.decision)).toEqual(['silent', 'allowed']);
  });
});
