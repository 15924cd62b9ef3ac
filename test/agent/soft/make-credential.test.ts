import { createPublicKey, verify } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decode, encode, type CborMap } from '../../../protocol/cbor.ts';
import {
  CTAP1_ERR_INVALID_LENGTH,
  CTAP1_ERR_INVALID_PARAMETER,
  CTAP2_ERR_CBOR_UNEXPECTED_TYPE,
  CTAP2_ERR_CREDENTIAL_EXCLUDED,
  CTAP2_ERR_INVALID_CBOR,
  CTAP2_ERR_INVALID_OPTION,
  CTAP2_ERR_KEEPALIVE_CANCEL,
  CTAP2_ERR_KEY_STORE_FULL,
  CTAP2_ERR_LIMIT_EXCEEDED,
  CTAP2_ERR_MISSING_PARAMETER,
  CTAP2_ERR_OPERATION_DENIED,
  CTAP2_ERR_PIN_AUTH_INVALID,
  CTAP2_ERR_PIN_INVALID,
  CTAP2_ERR_PIN_NOT_SET,
  CTAP2_ERR_PUAT_REQUIRED,
  CTAP2_ERR_UNSUPPORTED_ALGORITHM,
} from '../../../protocol/ctap2.ts';
import { STATUS_UPNEEDED } from '../../../protocol/authenticator.ts';
import { KEYTUNNEL_AAGUID } from '../../../agent/authenticators/soft/soft-authenticator.ts';
import { ctap, m, makeHarness, mcParams, parseAuthData, PlatformPin, RP_ID, sha256 } from './helpers.ts';

const MC = 0x01;

function coseToKeyObject(cose: CborMap) {
  const kty = cose.get(1);
  if (kty === 2) {
    return createPublicKey({
      key: { kty: 'EC', crv: 'P-256', x: Buffer.from(cose.get(-2) as Uint8Array).toString('base64url'), y: Buffer.from(cose.get(-3) as Uint8Array).toString('base64url') },
      format: 'jwk',
    });
  }
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(cose.get(-2) as Uint8Array).toString('base64url') }, format: 'jwk' });
}

describe('authenticatorMakeCredential', () => {
  it('creates a non-resident ES256 credential with packed self attestation that verifies', async () => {
    const h = await makeHarness();
    const cdh = sha256('cd');
    const r = await ctap(h, MC, mcParams({ cdh }));
    expect(r.status).toBe(0);
    const body = r.body as CborMap;
    expect(body.get(1)).toBe('packed');
    const authData = body.get(2) as Uint8Array;
    const att = body.get(3) as CborMap;
    expect(att.get('alg')).toBe(-7);
    expect(att.has('x5c')).toBe(false);
    const ad = parseAuthData(authData);
    expect(Buffer.from(ad.rpIdHash)).toEqual(Buffer.from(sha256(RP_ID)));
    expect(ad.flags & 0x01).toBe(1); // UP
    expect(ad.flags & 0x04).toBe(0); // no UV
    expect(ad.flags & 0x40).toBe(0x40); // AT
    expect(Buffer.from(authData.subarray(37, 53))).toEqual(Buffer.from(KEYTUNNEL_AAGUID));
    const pub = coseToKeyObject(ad.publicKey as CborMap);
    expect(verify('sha256', Buffer.concat([authData, cdh]), pub, att.get('sig') as Uint8Array)).toBe(true);
    expect(h.presence.requests).toHaveLength(1);
    expect(h.presence.requests[0]).toMatchObject({ action: 'makeCredential', rpId: RP_ID, userName: 'alice' });
    expect(h.statuses).toContain(STATUS_UPNEEDED);
  });

  it('chooses the first supported algorithm (EdDSA when listed first) and rejects lists without one', async () => {
    const h = await makeHarness();
    const r = await ctap(h, MC, mcParams({ algs: [-257, -8, -7] }));
    expect(r.status).toBe(0);
    const att = (r.body as CborMap).get(3) as CborMap;
    expect(att.get('alg')).toBe(-8);
    const authData = (r.body as CborMap).get(2) as Uint8Array;
    const ad = parseAuthData(authData);
    expect((ad.publicKey as CborMap).get(1)).toBe(1); // OKP
    const pub = coseToKeyObject(ad.publicKey as CborMap);
    expect(verify(null, Buffer.concat([authData, sha256('client data')]), pub, att.get('sig') as Uint8Array)).toBe(true);
    expect((await ctap(h, MC, mcParams({ algs: [-257, -35] }))).status).toBe(CTAP2_ERR_UNSUPPORTED_ALGORITHM);
    expect((await ctap(h, MC, mcParams({ algs: [] }))).status).toBe(CTAP2_ERR_UNSUPPORTED_ALGORITHM);
  });

  it('honours attestationFormatsPreference "none" and returns an empty attStmt', async () => {
    const h = await makeHarness();
    const r = await ctap(h, MC, mcParams({ extra: [[0x0b, ['none', 'packed']]] }));
    expect(r.status).toBe(0);
    expect((r.body as CborMap).get(1)).toBe('none');
    expect(((r.body as CborMap).get(3) as CborMap).size).toBe(0);
  });

  it('rejects options up=false and uv=true (no built-in UV) with CTAP2_ERR_INVALID_OPTION', async () => {
    const h = await makeHarness();
    expect((await ctap(h, MC, mcParams({ options: m([['up', false]]) }))).status).toBe(CTAP2_ERR_INVALID_OPTION);
    expect((await ctap(h, MC, mcParams({ options: m([['uv', true]]) }))).status).toBe(CTAP2_ERR_INVALID_OPTION);
    expect((await ctap(h, MC, mcParams({ options: m([['rk', 1]]) }))).status).toBe(CTAP2_ERR_CBOR_UNEXPECTED_TYPE);
    expect(h.presence.requests).toHaveLength(0);
  });

  it('maps missing, mistyped and over-long parameters to their CTAP status and never prompts', async () => {
    const h = await makeHarness();
    const savesBefore = h.store.saves;
    for (const key of [1, 2, 3, 4]) {
      const p = mcParams();
      p.delete(key);
      expect((await ctap(h, MC, p)).status, `missing ${key}`).toBe(CTAP2_ERR_MISSING_PARAMETER);
    }
    const wrongType = mcParams();
    wrongType.set(1, 'not bytes');
    expect((await ctap(h, MC, wrongType)).status).toBe(CTAP2_ERR_CBOR_UNEXPECTED_TYPE);
    const shortHash = mcParams({ cdh: new Uint8Array(31) });
    expect((await ctap(h, MC, shortHash)).status).toBe(CTAP1_ERR_INVALID_LENGTH);
    expect((await ctap(h, MC, mcParams({ userId: new Uint8Array(65) }))).status).toBe(CTAP1_ERR_INVALID_LENGTH);
    const noRpId = mcParams();
    noRpId.set(2, m([['name', 'x']]));
    expect((await ctap(h, MC, noRpId)).status).toBe(CTAP2_ERR_MISSING_PARAMETER);
    const rpNotMap = mcParams();
    rpNotMap.set(2, ['example.com']);
    expect((await ctap(h, MC, rpNotMap)).status).toBe(CTAP2_ERR_CBOR_UNEXPECTED_TYPE);
    const longExclude = mcParams({ extra: [[5, Array.from({ length: 17 }, () => m([['id', new Uint8Array(16)], ['type', 'public-key']]))]] });
    expect((await ctap(h, MC, longExclude)).status).toBe(CTAP2_ERR_LIMIT_EXCEEDED);
    const badAlg = mcParams();
    badAlg.set(4, [m([['alg', 'ES256'], ['type', 'public-key']])]);
    expect((await ctap(h, MC, badAlg)).status).toBe(CTAP2_ERR_CBOR_UNEXPECTED_TYPE);
    expect((await ctap(h, MC, Uint8Array.of(0xa1, 0x01))).status).toBe(CTAP2_ERR_INVALID_CBOR);
    expect((await ctap(h, MC, encode([1, 2]))).status).toBe(CTAP2_ERR_CBOR_UNEXPECTED_TYPE);
    expect((await ctap(h, MC, mcParams({ extra: [[0x0a, 1]] }))).status).toBe(CTAP1_ERR_INVALID_PARAMETER);
    expect(h.presence.requests).toHaveLength(0);
    expect(h.store.saves).toBe(savesBefore);
  });

  it('truncates long rp/user names to 64 bytes for storage', async () => {
    const h = await makeHarness();
    const p = mcParams({ rk: true });
    p.set(3, m([['id', Uint8Array.of(9)], ['name', 'é'.repeat(40)], ['displayName', 'x'.repeat(100)]]));
    expect((await ctap(h, MC, p)).status).toBe(0);
    const r = await ctap(h, 0x02, m([[1, RP_ID], [2, sha256('x')]]));
    expect(r.status).toBe(0);
    // Without UV the name is not returned; check the stored state through credential management elsewhere.
    expect(((r.body as CborMap).get(4) as CborMap).get('id')).toEqual(Uint8Array.of(9));
  });

  it('presence denied → OPERATION_DENIED; host cancel → KEEPALIVE_CANCEL; no state change', async () => {
    const h = await makeHarness();
    const saves = h.store.saves;
    h.presence.answer = 'denied';
    expect((await ctap(h, MC, mcParams({ rk: true }))).status).toBe(CTAP2_ERR_OPERATION_DENIED);
    h.presence.answer = 'hang';
    const ac = new AbortController();
    const payload = Buffer.concat([Uint8Array.of(MC), encode(mcParams({ rk: true }))]);
    const pending = h.auth.request('cbor', payload, h.ctx(undefined, ac.signal));
    setTimeout(() => ac.abort(), 5);
    expect((await pending)[0]).toBe(CTAP2_ERR_KEEPALIVE_CANCEL);
    expect(h.store.saves).toBe(saves);
  });

  it('excludeList: an own credential → touch, then CREDENTIAL_EXCLUDED; foreign ids are ignored', async () => {
    const h = await makeHarness();
    const first = await ctap(h, MC, mcParams());
    const id = parseAuthData((first.body as CborMap).get(2) as Uint8Array).credentialId as Uint8Array;
    h.presence.requests.length = 0;
    const foreign = m([['id', new Uint8Array(70).fill(7)], ['type', 'public-key']]);
    const mine = m([['id', id], ['type', 'public-key']]);
    const r = await ctap(h, MC, mcParams({ extra: [[5, [foreign, mine]]] }));
    expect(r.status).toBe(CTAP2_ERR_CREDENTIAL_EXCLUDED);
    expect(h.presence.requests).toHaveLength(1);
    // Denied touch: still excluded.
    h.presence.answer = 'denied';
    expect((await ctap(h, MC, mcParams({ extra: [[5, [mine]]] }))).status).toBe(CTAP2_ERR_CREDENTIAL_EXCLUDED);
    h.presence.answer = 'approved';
    // Same id for another RP is not ours there.
    expect((await ctap(h, MC, mcParams({ rpId: 'other.example', extra: [[5, [mine]]] }))).status).toBe(0);
    expect((await ctap(h, MC, mcParams({ extra: [[5, [foreign]]] }))).status).toBe(0);
  });

  it('zero-length pinUvAuthParam probe: touch, then PIN_NOT_SET or PIN_INVALID', async () => {
    const h = await makeHarness();
    const probe = mcParams({ extra: [[8, new Uint8Array(0)], [9, 1]] });
    expect((await ctap(h, MC, probe)).status).toBe(CTAP2_ERR_PIN_NOT_SET);
    expect(h.presence.requests).toHaveLength(1);
    expect(await new PlatformPin(h, 2).setPin('1234')).toBe(0);
    expect((await ctap(h, MC, probe)).status).toBe(CTAP2_ERR_PIN_INVALID);
    h.presence.answer = 'denied';
    expect((await ctap(h, MC, probe)).status).toBe(CTAP2_ERR_OPERATION_DENIED);
  });

  it('with a PIN: rk needs a token (PUAT_REQUIRED), non-rk does not (makeCredUvNotRqd); token gives UV', async () => {
    const h = await makeHarness();
    const pin = new PlatformPin(h, 2);
    expect(await pin.setPin('1234')).toBe(0);
    expect((await ctap(h, MC, mcParams({ rk: true }))).status).toBe(CTAP2_ERR_PUAT_REQUIRED);
    expect((await ctap(h, MC, mcParams())).status).toBe(0);
    const { token } = await pin.token('1234', 0x01, RP_ID);
    const cdh = sha256('cd2');
    const withToken = mcParams({ rk: true, cdh, extra: [[8, pin.authenticate(token as Uint8Array, cdh)], [9, 2]] });
    const r = await ctap(h, MC, withToken);
    expect(r.status).toBe(0);
    expect(parseAuthData((r.body as CborMap).get(2) as Uint8Array).flags & 0x05).toBe(0x05);
    // The token's mc permission is consumed (CTAP 2.1 PS 2021-06-15 §6.1.2 step 14: clearPinUvAuthTokenPermissionsExceptLbw).
    expect((await ctap(h, MC, withToken)).status).toBe(CTAP2_ERR_PIN_AUTH_INVALID);
  });

  it('pinUvAuthParam errors: missing protocol, unsupported protocol, wrong MAC, wrong rpId binding', async () => {
    const h = await makeHarness();
    const pin = new PlatformPin(h, 1);
    expect(await pin.setPin('1234')).toBe(0);
    const { token } = await pin.token('1234', 0x01, 'bound.example');
    const cdh = sha256('client data');
    const param = pin.authenticate(token as Uint8Array, cdh);
    expect((await ctap(h, MC, mcParams({ extra: [[8, param]] }))).status).toBe(CTAP2_ERR_MISSING_PARAMETER);
    expect((await ctap(h, MC, mcParams({ extra: [[8, param], [9, 3]] }))).status).toBe(CTAP1_ERR_INVALID_PARAMETER);
    expect((await ctap(h, MC, mcParams({ extra: [[8, new Uint8Array(16)], [9, 1]] }))).status).toBe(CTAP2_ERR_PIN_AUTH_INVALID);
    expect((await ctap(h, MC, mcParams({ extra: [[8, param], [9, 1]] }))).status).toBe(CTAP2_ERR_PIN_AUTH_INVALID);
    expect((await ctap(h, MC, mcParams({ rpId: 'bound.example', extra: [[8, param], [9, 1]] }))).status).toBe(0);
  });

  it('extensions: credProtect, credBlob, hmac-secret outputs set the ED flag; bad types are rejected', async () => {
    const h = await makeHarness();
    const ext = m([['credProtect', 2], ['credBlob', Uint8Array.of(1, 2, 3)], ['hmac-secret', true], ['unknownExt', 'ignored']]);
    const r = await ctap(h, MC, mcParams({ rk: true, extra: [[6, ext]] }));
    expect(r.status).toBe(0);
    const ad = parseAuthData((r.body as CborMap).get(2) as Uint8Array);
    expect(ad.flags & 0x80).toBe(0x80);
    expect(ad.extensions).toEqual(m([['credBlob', true], ['credProtect', 2], ['hmac-secret', true]]));
    const tooLong = await ctap(h, MC, mcParams({ extra: [[6, m([['credBlob', new Uint8Array(33)]])]] }));
    expect(parseAuthData((tooLong.body as CborMap).get(2) as Uint8Array).extensions).toEqual(m([['credBlob', false]]));
    expect((await ctap(h, MC, mcParams({ extra: [[6, m([['hmac-secret', 1]])]] }))).status).toBe(CTAP2_ERR_CBOR_UNEXPECTED_TYPE);
    expect((await ctap(h, MC, mcParams({ extra: [[6, m([['credProtect', 4]])]] }))).status).toBe(CTAP1_ERR_INVALID_PARAMETER);
    const none = await ctap(h, MC, mcParams());
    expect(parseAuthData((none.body as CborMap).get(2) as Uint8Array).flags & 0x80).toBe(0);
  });

  it('minPinLength extension answers only for configured RP IDs', async () => {
    const h = await makeHarness({ minPinLengthRpIds: ['allowed.example'] });
    const ext: [number, CborMap][] = [[6, m([['minPinLength', true]])]];
    const ok = await ctap(h, MC, mcParams({ rpId: 'allowed.example', extra: ext }));
    expect(parseAuthData((ok.body as CborMap).get(2) as Uint8Array).extensions).toEqual(m([['minPinLength', 4]]));
    const other = await ctap(h, MC, mcParams({ extra: ext }));
    expect(parseAuthData((other.body as CborMap).get(2) as Uint8Array).extensions).toBeUndefined();
  });

  it('resident credential for the same rp + user id replaces the old one; KEY_STORE_FULL when full', async () => {
    const h = await makeHarness({ maxResidentCredentials: 2 });
    expect((await ctap(h, MC, mcParams({ rk: true, userId: Uint8Array.of(1) }))).status).toBe(0);
    expect((await ctap(h, MC, mcParams({ rk: true, userId: Uint8Array.of(1) }))).status).toBe(0);
    expect((await ctap(h, MC, mcParams({ rk: true, userId: Uint8Array.of(2) }))).status).toBe(0);
    expect((await ctap(h, MC, mcParams({ rk: true, userId: Uint8Array.of(3) }))).status).toBe(CTAP2_ERR_KEY_STORE_FULL);
    expect((await ctap(h, MC, mcParams({ rk: true, userId: Uint8Array.of(2) }))).status).toBe(0);
    const info = await ctap(h, 0x04);
    expect((info.body as CborMap).get(0x14)).toBe(0);
  });
});

describe('makeCredential under sustained load', () => {
  it('2000 back-to-back non-resident credentials all succeed with distinct ids (no key-generation stalls)', async () => {
    const h = await makeHarness();
    const payload = Uint8Array.from([MC, ...encode(mcParams())]);
    const ids = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const answer = await h.auth.request('cbor', payload, h.ctx());
      expect(answer[0]).toBe(0);
      const authData = (decode(answer.subarray(1)) as CborMap).get(2) as Uint8Array;
      ids.add(Buffer.from(parseAuthData(authData).credentialId as Uint8Array).toString('hex'));
    }
    expect(ids.size).toBe(2000);
  }, 60_000);
});
