/**
 * Issue 11, finding 8: the authenticator sees exactly what the policy judged. The policy forwards the CTAP2
 * canonical re-encoding of what it parsed, refuses map keys a firmware could read as another key, accepts only
 * valid RP IDs before any allow-list match, and answers unknown credential-management subcommands itself.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { encode, type CborMap, type CborValue } from '../../../protocol/cbor.ts';
import type { Authenticator, RequestContext, RequestKind } from '../../../protocol/authenticator.ts';
import {
  CTAP1_ERR_INVALID_LENGTH,
  CTAP2_CLIENT_PIN,
  CTAP2_CREDENTIAL_MANAGEMENT,
  CTAP2_CREDENTIAL_MANAGEMENT_PRE,
  CTAP2_ERR_CBOR_UNEXPECTED_TYPE,
  CTAP2_ERR_INVALID_SUBCOMMAND,
  CTAP2_ERR_MISSING_PARAMETER,
  CTAP2_ERR_OPERATION_DENIED,
  CTAP2_GET_ASSERTION,
  CTAP2_MAKE_CREDENTIAL,
} from '../../../protocol/ctap2.ts';
import type { AuditRecord } from '../../../agent/policy/audit.ts';
import { defaultPolicy, type GatewayPolicy } from '../../../agent/policy/config.ts';
import { PolicyState, withPolicy } from '../../../agent/policy/policy-authenticator.ts';
import { rpIdHash } from '../../../agent/policy/request-summary.ts';
import { isDomainName, rpIdProblem } from '../../../agent/policy/rp-id.ts';
import { rpAllowed, rpHashAllowed, validateRpPattern } from '../../../agent/policy/rp-match.ts';
import { FakePresence } from '../../../agent/presence/fake.ts';

const FP = 'cc'.repeat(32).match(/../g)!.join(':');

class Spy implements Authenticator {
  readonly descriptor = { id: 'spy', label: 'spy', transport: 'hid' as const, ctap1: true, wink: false };
  readonly reached: Uint8Array[] = [];
  async request(_kind: RequestKind, payload: Uint8Array, _ctx: RequestContext): Promise<Uint8Array> {
    this.reached.push(payload);
    return Uint8Array.of(0);
  }
}

function setup(policy: Partial<GatewayPolicy> = {}) {
  const inner = new Spy();
  const audit: AuditRecord[] = [];
  const view = withPolicy(inner, { ...defaultPolicy(FP), name: 'customer', ...policy }, {
    audit: { record: (r) => audit.push(r) },
    presence: new FakePresence(),
    state: new PolicyState(),
  });
  const send = (payload: Uint8Array) => view.request('cbor', payload, { signal: new AbortController().signal, onStatus: () => {} });
  return { inner, audit, send };
}

const hex = (h: string) => Uint8Array.from(Buffer.from(h.replace(/\s+/g, ''), 'hex'));
const text = (s: string) => {
  const b = Buffer.from(s, 'utf8');
  if (b.length > 23) throw new Error('short strings only');
  return Buffer.concat([Uint8Array.of(0x60 + b.length), b]).toString('hex');
};
const bytes = (b: Uint8Array) => {
  if (b.length > 255) throw new Error('short byte strings only');
  return Buffer.concat([b.length < 24 ? Uint8Array.of(0x40 + b.length) : Uint8Array.of(0x58, b.length), b]).toString('hex');
};
const CDH = new Uint8Array(32).fill(7);
const cmd = (command: number, params: CborMap) => Uint8Array.of(command, ...encode(params));
const m = (entries: [CborValue, CborValue][]): CborMap => new Map(entries);
const getAssertion = (rpId: string) => cmd(CTAP2_GET_ASSERTION, m([[1, rpId], [2, CDH]]));
const makeCredential = (rp: CborMap) =>
  cmd(CTAP2_MAKE_CREDENTIAL, m([[1, CDH], [2, rp], [3, m([['id', Uint8Array.of(1)], ['name', 'u']])], [4, [m([['alg', -7], ['type', 'public-key']])]]]));

describe('the authenticator sees exactly what the policy judged', () => {
  it("refuses an rp map with a byte-string key h'6964' beside the text key \"id\"", async () => {
    const { inner, send } = setup({ allowRps: ['a.example'] });
    // {1: cdh, 2: {h'6964': "evil.example", "id": "a.example"}, ...}: canonical order puts the byte string first.
    const rp = `a2 ${bytes(Buffer.from('id'))} ${text('evil.example')} ${text('id')} ${text('a.example')}`;
    const payload = hex(`01 a3 01 ${bytes(CDH)} 02 ${rp} 03 a1 ${text('name')} ${text('u')}`);
    expect(await send(payload)).toEqual(Uint8Array.of(CTAP2_ERR_CBOR_UNEXPECTED_TYPE));
    expect(inner.reached).toHaveLength(0);
  });

  it('refuses other keys a firmware could confuse: "id\\0", non-ASCII text, text or negative keys at the top level', async () => {
    const { inner, send } = setup({ allowRps: ['*'] });
    expect(await send(makeCredential(m([['id', 'a.example'], ['id\u0000', 'evil.example']])))).toEqual(Uint8Array.of(CTAP2_ERR_CBOR_UNEXPECTED_TYPE));
    expect(await send(makeCredential(m([['id', 'a.example'], ['\u0131d', 'evil.example']])))).toEqual(Uint8Array.of(CTAP2_ERR_CBOR_UNEXPECTED_TYPE));
    expect(await send(cmd(CTAP2_GET_ASSERTION, m([[1, 'a.example'], [2, CDH], ['1', 'evil.example']])))).toEqual(
      Uint8Array.of(CTAP2_ERR_CBOR_UNEXPECTED_TYPE),
    );
    expect(await send(cmd(CTAP2_GET_ASSERTION, m([[1, 'a.example'], [2, CDH], [-1, 'evil.example']])))).toEqual(
      Uint8Array.of(CTAP2_ERR_CBOR_UNEXPECTED_TYPE),
    );
    expect(inner.reached).toHaveLength(0);
  });

  it('forwards the canonical re-encoding of a non-canonical request, and a canonical request byte for byte', async () => {
    const { inner, send } = setup({ allowRps: ['a.example'] });
    // getAssertion {2: cdh, 1: "a.example"} with unsorted keys and 1 encoded in two bytes (0x18 0x01).
    const sloppy = hex(`02 a2 02 ${bytes(CDH)} 18 01 ${text('a.example')}`);
    expect(await send(sloppy)).toEqual(Uint8Array.of(0));
    const canonical = getAssertion('a.example');
    expect(Buffer.from(inner.reached[0]!).toString('hex')).toBe(Buffer.from(canonical).toString('hex'));
    await send(canonical);
    expect(inner.reached[1]).toEqual(canonical);
    // A makeCredential with options, extensions and COSE-keyed members survives unchanged.
    const mc = cmd(
      CTAP2_MAKE_CREDENTIAL,
      m([
        [1, CDH],
        [2, m([['id', 'a.example'], ['name', 'A']])],
        [3, m([['id', Uint8Array.of(1)], ['name', 'u'], ['displayName', 'U']])],
        [4, [m([['alg', -7], ['type', 'public-key']]), m([['alg', -8], ['type', 'public-key']])]],
        [6, m([['credProtect', 2], ['hmac-secret', true]])],
        [7, m([['rk', true]])],
        [8, new Uint8Array(32)],
        [9, 2],
      ]),
    );
    await send(mc);
    expect(inner.reached[2]).toEqual(mc);
  });

  it('judges the credential-management rpIDHash the authenticator will use, and nothing else', async () => {
    const { inner, send } = setup({ allowRps: ['a.example'] });
    const begin = (sub: CborValue | undefined) =>
      cmd(CTAP2_CREDENTIAL_MANAGEMENT, m(sub === undefined ? [[1, 4]] : [[1, 4], [2, sub]]));
    // A text string where the hash belongs, that a lenient firmware might read as bytes.
    const asText = String.fromCharCode(...rpIdHash('b.example').map((b) => 0x20 + (b % 0x5f)));
    expect(await send(begin(m([[1, asText]])))).toEqual(Uint8Array.of(CTAP2_ERR_CBOR_UNEXPECTED_TYPE));
    expect(await send(begin(m([[1, rpIdHash('a.example').subarray(0, 31)]])))).toEqual(Uint8Array.of(CTAP1_ERR_INVALID_LENGTH));
    expect(await send(begin(undefined))).toEqual(Uint8Array.of(CTAP2_ERR_MISSING_PARAMETER));
    expect(await send(begin('not a map'))).toEqual(Uint8Array.of(CTAP2_ERR_CBOR_UNEXPECTED_TYPE));
    expect(inner.reached).toHaveLength(0);
    expect(await send(begin(m([[1, rpIdHash('a.example')]])))).toEqual(Uint8Array.of(0));
    expect(inner.reached).toHaveLength(1);
  });

  it('answers unknown credential-management subcommands itself (CTAP2_ERR_INVALID_SUBCOMMAND)', async () => {
    const { inner, audit, send } = setup({ allowRps: ['*'] });
    for (const command of [CTAP2_CREDENTIAL_MANAGEMENT, CTAP2_CREDENTIAL_MANAGEMENT_PRE]) {
      for (const sub of [0, 8, 0x99, -1]) {
        expect(await send(cmd(command, m([[1, sub]])))).toEqual(Uint8Array.of(CTAP2_ERR_INVALID_SUBCOMMAND));
      }
    }
    expect(inner.reached).toHaveLength(0);
    expect(audit.every((r) => r.decision === 'refused-by-policy' && r.status === '0x3e')).toBe(true);
  });
});

describe('RP IDs are valid domain names before any allow-list match', () => {
  const invalid = [
    'a.example/evil',
    'a.example\u0000.b.example',
    'a example',
    ' a.example',
    'a.example.',
    '.a.example',
    'a..example',
    '-a.example',
    'a-.example',
    'a_b.example',
    'ü.example',
    '127.0.0.1',
    '10.0.0.0x1f',
    '[::1]',
    '::1',
    'https://a.example',
    '',
    `${'a'.repeat(64)}.example`,
    `${'a.'.repeat(126)}ab`, // 254 characters
    'ssh:a b',
    'ssh:/evil',
  ];
  const valid = ['a.example', 'A.Example', 'localhost', 'xn--bcher-kva.example', '1password.com', 'a-b.c0.example', `${'a'.repeat(63)}.example`];

  it('refuses invalid ones even for a gateway allowed every RP, without reaching the authenticator', async () => {
    const { inner, audit, send } = setup({ allowRps: ['*'] });
    for (const rpId of invalid) {
      expect(await send(getAssertion(rpId)), rpId).toEqual(Uint8Array.of(CTAP2_ERR_OPERATION_DENIED));
      expect(await send(makeCredential(m([['id', rpId]]))), rpId).toEqual(Uint8Array.of(CTAP2_ERR_OPERATION_DENIED));
      expect(await send(cmd(CTAP2_CLIENT_PIN, m([[1, 2], [2, 9], [10, rpId]]))), rpId).toEqual(Uint8Array.of(CTAP2_ERR_OPERATION_DENIED));
    }
    expect(inner.reached).toHaveLength(0);
    expect(audit.map((r) => r.reason)).toEqual(audit.map(() => 'the RP ID is not a valid domain name'));
  });

  it('passes valid ones, localhost included', async () => {
    const { inner, send } = setup({ allowRps: ['*'] });
    for (const rpId of valid) expect(await send(getAssertion(rpId)), rpId).toEqual(Uint8Array.of(0));
    expect(inner.reached).toHaveLength(valid.length);
  });

  it('validates independently of the allow-list syntax', () => {
    for (const rpId of invalid) expect(rpIdProblem(rpId), rpId).toBeDefined();
    for (const rpId of valid) expect(rpIdProblem(rpId), rpId).toBeUndefined();
    expect(isDomainName(`${'a'.repeat(61)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(63)}`)).toBe(true); // 253
    expect(() => validateRpPattern('127.0.0.1')).toThrow(/not an RP ID pattern/);
    expect(() => validateRpPattern('*.a.example')).not.toThrow();
  });

  it('lets OpenSSH "ssh:" applications through "*" only, never through a domain entry', async () => {
    expect(rpAllowed(['*'], 'ssh:')).toBe(true);
    expect(rpAllowed(['*'], 'ssh:work.contoso.com')).toBe(true);
    expect(rpAllowed(['*.contoso.com', 'contoso.com'], 'ssh:work.contoso.com')).toBe(false);
    expect(rpAllowed(['*.contoso.com'], 'sso.contoso.com')).toBe(true);
    const { inner, send } = setup({ allowRps: ['*.contoso.com'] });
    expect(await send(makeCredential(m([['id', 'ssh:x.contoso.com']])))).toEqual(Uint8Array.of(CTAP2_ERR_OPERATION_DENIED));
    expect(inner.reached).toHaveLength(0);
  });

  it('judges a U2F APDU only when its length fields account for every byte, as the authenticator parses it', async () => {
    const inner = new Spy();
    const view = withPolicy(inner, { ...defaultPolicy(FP), name: 'customer', allowRps: ['a.example'] }, {
      audit: { record: () => {} },
      presence: new FakePresence(),
      state: new PolicyState(),
    });
    const send = (apdu: Uint8Array) => view.request('msg', apdu, { signal: new AbortController().signal, onStatus: () => {} });
    // U2F_REGISTER (INS 0x01): challenge (32) || application (32), short encoding then Le.
    const register = (application: Uint8Array, ...after: number[]) =>
      Uint8Array.from([0x00, 0x01, 0x00, 0x00, 64, ...new Uint8Array(32), ...application, ...after]);
    expect(await send(register(rpIdHash('a.example'), 0x00))).toEqual(Uint8Array.of(0));
    expect(inner.reached).toHaveLength(1);
    // A byte after Le: a lenient parser would still read a.example's hash; the authenticator's parser refuses it,
    // and so does the policy, itself (SW_WRONG_LENGTH), forwarding nothing.
    expect(await send(register(rpIdHash('a.example'), 0x00, 0x00))).toEqual(Uint8Array.of(0x67, 0x00));
    expect(await send(register(rpIdHash('b.example'), 0x00))).toEqual(Uint8Array.of(0x6a, 0x80));
    expect(inner.reached).toHaveLength(1);
  });

  it('matches hashes with node:crypto SHA-256', () => {
    const h = new Uint8Array(createHash('sha256').update('a.example').digest());
    expect(rpIdHash('a.example')).toEqual(h);
    expect(rpHashAllowed(['a.example'], h)).toBe(true);
    expect(rpHashAllowed(['b.example', '*.a.example'], h)).toBe(false);
    expect(rpHashAllowed(['a.example'], h.subarray(0, 16))).toBe(false);
  });
});
