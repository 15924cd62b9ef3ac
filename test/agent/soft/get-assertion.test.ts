import { createPublicKey, verify } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { CborMap } from '../../../protocol/cbor.ts';
import {
  CTAP1_ERR_INVALID_PARAMETER,
  CTAP2_ERR_CBOR_UNEXPECTED_TYPE,
  CTAP2_ERR_INVALID_OPTION,
  CTAP2_ERR_LIMIT_EXCEEDED,
  CTAP2_ERR_MISSING_PARAMETER,
  CTAP2_ERR_NO_CREDENTIALS,
  CTAP2_ERR_NOT_ALLOWED,
  CTAP2_ERR_PIN_AUTH_INVALID,
  CTAP2_ERR_PIN_NOT_SET,
  CTAP2_ERR_UNSUPPORTED_OPTION,
} from '../../../protocol/ctap2.ts';
import { ctap, m, makeHarness, mcParams, parseAuthData, PlatformPin, RP_ID, sha256, type Harness } from './helpers.ts';

const MC = 0x01;
const GA = 0x02;
const GNA = 0x08;

async function create(h: Harness, over: Parameters<typeof mcParams>[0] = {}, origin?: { credentialScope?: string }) {
  const r = await ctap(h, MC, mcParams(over), origin);
  expect(r.status).toBe(0);
  const ad = parseAuthData((r.body as CborMap).get(2) as Uint8Array);
  const cose = ad.publicKey as CborMap;
  const pub = createPublicKey({
    key: { kty: 'EC', crv: 'P-256', x: Buffer.from(cose.get(-2) as Uint8Array).toString('base64url'), y: Buffer.from(cose.get(-3) as Uint8Array).toString('base64url') },
    format: 'jwk',
  });
  return { id: ad.credentialId as Uint8Array, pub };
}

const desc = (id: Uint8Array) => m([['id', id], ['type', 'public-key']]);

describe('authenticatorGetAssertion', () => {
  it('signs with an allowList credential; counters increase; signature verifies', async () => {
    const h = await makeHarness();
    const { id, pub } = await create(h);
    let last = -1;
    for (let i = 0; i < 3; i++) {
      const cdh = sha256(`ga${i}`);
      const r = await ctap(h, GA, m([[1, RP_ID], [2, cdh], [3, [desc(new Uint8Array(40)), desc(id)]]]));
      expect(r.status).toBe(0);
      const body = r.body as CborMap;
      expect((body.get(1) as CborMap).get('id')).toEqual(id);
      expect(body.has(4)).toBe(false); // non-resident: no user
      expect(body.has(5)).toBe(false);
      const authData = body.get(2) as Uint8Array;
      const ad = parseAuthData(authData);
      expect(ad.flags).toBe(0x01);
      expect(ad.signCount).toBeGreaterThan(last);
      last = ad.signCount;
      expect(verify('sha256', Buffer.concat([authData, cdh]), pub, body.get(3) as Uint8Array)).toBe(true);
    }
  });

  it('no applicable credential → NO_CREDENTIALS without prompting (foreign, other RP, tampered ids)', async () => {
    const h = await makeHarness();
    const { id } = await create(h);
    h.presence.requests.length = 0;
    const tampered = Uint8Array.from(id);
    tampered[20] ^= 1;
    for (const allow of [[desc(tampered)], [desc(new Uint8Array(200))], [desc(Uint8Array.of())]]) {
      expect((await ctap(h, GA, m([[1, RP_ID], [2, sha256('x')], [3, allow]]))).status).toBe(CTAP2_ERR_NO_CREDENTIALS);
    }
    expect((await ctap(h, GA, m([[1, 'other.example'], [2, sha256('x')], [3, [desc(id)]]]))).status).toBe(CTAP2_ERR_NO_CREDENTIALS);
    expect((await ctap(h, GA, m([[1, RP_ID], [2, sha256('x')]]))).status).toBe(CTAP2_ERR_NO_CREDENTIALS);
    expect(h.presence.requests).toHaveLength(0);
  });

  it('silent assertion (up=false): no prompt, UP flag clear', async () => {
    const h = await makeHarness();
    const { id } = await create(h);
    h.presence.requests.length = 0;
    const r = await ctap(h, GA, m([[1, RP_ID], [2, sha256('x')], [3, [desc(id)]], [5, m([['up', false]])]]));
    expect(r.status).toBe(0);
    expect(parseAuthData((r.body as CborMap).get(2) as Uint8Array).flags & 0x01).toBe(0);
    expect(h.presence.requests).toHaveLength(0);
  });

  it('options: uv=true → INVALID_OPTION, rk → UNSUPPORTED_OPTION; parameter errors', async () => {
    const h = await makeHarness();
    expect((await ctap(h, GA, m([[1, RP_ID], [2, sha256('x')], [5, m([['uv', true]])]]))).status).toBe(CTAP2_ERR_INVALID_OPTION);
    expect((await ctap(h, GA, m([[1, RP_ID], [2, sha256('x')], [5, m([['rk', true]])]]))).status).toBe(CTAP2_ERR_UNSUPPORTED_OPTION);
    expect((await ctap(h, GA, m([[2, sha256('x')]]))).status).toBe(CTAP2_ERR_MISSING_PARAMETER);
    expect((await ctap(h, GA, m([[1, RP_ID]]))).status).toBe(CTAP2_ERR_MISSING_PARAMETER);
    expect((await ctap(h, GA, m([[1, 5], [2, sha256('x')]]))).status).toBe(CTAP2_ERR_CBOR_UNEXPECTED_TYPE);
    expect((await ctap(h, GA, m([[1, RP_ID], [2, sha256('x')], [3, 'list']]))).status).toBe(CTAP2_ERR_CBOR_UNEXPECTED_TYPE);
    expect((await ctap(h, GA, m([[1, RP_ID], [2, sha256('x')], [3, [m([['type', 'public-key']])]]]))).status).toBe(CTAP2_ERR_MISSING_PARAMETER);
    const many = Array.from({ length: 17 }, () => desc(new Uint8Array(16)));
    expect((await ctap(h, GA, m([[1, RP_ID], [2, sha256('x')], [3, many]]))).status).toBe(CTAP2_ERR_LIMIT_EXCEEDED);
    expect((await ctap(h, GA, m([[1, RP_ID], [2, sha256('x')], [6, new Uint8Array(16)]]))).status).toBe(CTAP2_ERR_MISSING_PARAMETER);
    expect((await ctap(h, GA, m([[1, RP_ID], [2, sha256('x')], [6, new Uint8Array(16)], [7, 9]]))).status).toBe(CTAP1_ERR_INVALID_PARAMETER);
    expect((await ctap(h, GA, m([[1, RP_ID], [2, sha256('x')], [6, new Uint8Array(16)], [7, 1]]))).status).toBe(CTAP2_ERR_PIN_NOT_SET);
  });

  it('discoverable credentials: most recent first, numberOfCredentials, getNextAssertion, user ids only without UV', async () => {
    const h = await makeHarness();
    for (const u of [1, 2, 3]) await create(h, { rk: true, userId: Uint8Array.of(u) });
    await create(h, { rk: true, rpId: 'other.example', userId: Uint8Array.of(9) });
    const cdh = sha256('disc');
    const first = await ctap(h, GA, m([[1, RP_ID], [2, cdh]]));
    expect(first.status).toBe(0);
    const b0 = first.body as CborMap;
    expect(b0.get(5)).toBe(3);
    expect(b0.get(4)).toEqual(m([['id', Uint8Array.of(3)]]));
    const n1 = await ctap(h, GNA);
    expect(n1.status).toBe(0);
    expect((n1.body as CborMap).get(4)).toEqual(m([['id', Uint8Array.of(2)]]));
    expect((n1.body as CborMap).has(5)).toBe(false);
    const n2 = await ctap(h, GNA);
    expect((n2.body as CborMap).get(4)).toEqual(m([['id', Uint8Array.of(1)]]));
    expect((await ctap(h, GNA)).status).toBe(CTAP2_ERR_NOT_ALLOWED);
    // Only one prompt for the whole sequence.
    expect(h.presence.requests.filter((r) => r.action === 'getAssertion')).toHaveLength(1);
  });

  it('getNextAssertion: NOT_ALLOWED without state, after 30 s, or after another command', async () => {
    const h = await makeHarness();
    expect((await ctap(h, GNA)).status).toBe(CTAP2_ERR_NOT_ALLOWED);
    for (const u of [1, 2, 3]) await create(h, { rk: true, userId: Uint8Array.of(u) });
    expect((await ctap(h, GA, m([[1, RP_ID], [2, sha256('a')]]))).status).toBe(0);
    h.clock.advance(29_000);
    expect((await ctap(h, GNA)).status).toBe(0);
    h.clock.advance(30_001);
    expect((await ctap(h, GNA)).status).toBe(CTAP2_ERR_NOT_ALLOWED);
    expect((await ctap(h, GA, m([[1, RP_ID], [2, sha256('a')]]))).status).toBe(0);
    expect((await ctap(h, 0x04)).status).toBe(0);
    expect((await ctap(h, GNA)).status).toBe(CTAP2_ERR_NOT_ALLOWED);
  });

  it('with UV and several accounts, names are returned; single account returns the id only', async () => {
    const h = await makeHarness();
    const pin = new PlatformPin(h, 2);
    expect(await pin.setPin('1234')).toBe(0);
    const mk = async (u: number) => {
      const { token } = await pin.token('1234', 0x01, RP_ID);
      const cdh = sha256(`mc${u}`);
      await create(h, { rk: true, userId: Uint8Array.of(u), cdh, extra: [[8, pin.authenticate(token as Uint8Array, cdh)], [9, 2]] });
    };
    await mk(1);
    const ga = async () => {
      const { token } = await pin.token('1234', 0x02, RP_ID);
      const cdh = sha256('ga');
      return ctap(h, GA, m([[1, RP_ID], [2, cdh], [6, pin.authenticate(token as Uint8Array, cdh)], [7, 2]]));
    };
    const single = await ga();
    expect(single.status).toBe(0);
    expect((single.body as CborMap).get(4)).toEqual(m([['id', Uint8Array.of(1)]]));
    expect(parseAuthData((single.body as CborMap).get(2) as Uint8Array).flags & 0x05).toBe(0x05);
    await mk(2);
    const multi = await ga();
    expect((multi.body as CborMap).get(4)).toEqual(m([['id', Uint8Array.of(2)], ['name', 'alice'], ['displayName', 'Alice A.']]));
    const next = await ctap(h, GNA);
    expect((next.body as CborMap).get(4)).toEqual(m([['id', Uint8Array.of(1)], ['name', 'alice'], ['displayName', 'Alice A.']]));
    expect(parseAuthData((next.body as CborMap).get(2) as Uint8Array).flags & 0x05).toBe(0x05);
  });

  it('credProtect: level 2 needs an allowList or UV; level 3 needs UV', async () => {
    const h = await makeHarness();
    const l2 = await create(h, { rk: true, userId: Uint8Array.of(2), extra: [[6, m([['credProtect', 2]])]] });
    const l3 = await create(h, { rk: true, userId: Uint8Array.of(3), extra: [[6, m([['credProtect', 3]])]] });
    const nr3 = await create(h, { extra: [[6, m([['credProtect', 3]])]] });
    const cdh = sha256('cp');
    expect((await ctap(h, GA, m([[1, RP_ID], [2, cdh]]))).status).toBe(CTAP2_ERR_NO_CREDENTIALS);
    expect((await ctap(h, GA, m([[1, RP_ID], [2, cdh], [3, [desc(l2.id)]]]))).status).toBe(0);
    expect((await ctap(h, GA, m([[1, RP_ID], [2, cdh], [3, [desc(l3.id)]]]))).status).toBe(CTAP2_ERR_NO_CREDENTIALS);
    expect((await ctap(h, GA, m([[1, RP_ID], [2, cdh], [3, [desc(nr3.id)]]]))).status).toBe(CTAP2_ERR_NO_CREDENTIALS);
    // Excluding a level-3 credential without UV does not reveal it.
    expect((await ctap(h, MC, mcParams({ extra: [[5, [desc(nr3.id)]]] }))).status).toBe(0);
    const pin = new PlatformPin(h, 1);
    expect(await pin.setPin('1234')).toBe(0);
    const withUv = async (allow?: Uint8Array) => {
      const { token } = await pin.token('1234');
      const p = m([[1, RP_ID], [2, cdh], [6, pin.authenticate(token as Uint8Array, cdh)], [7, 1]]);
      if (allow) p.set(3, [desc(allow)]);
      return ctap(h, GA, p);
    };
    const disc = await withUv();
    expect(disc.status).toBe(0);
    expect((disc.body as CborMap).get(5)).toBe(2);
    expect((await withUv(l3.id)).status).toBe(0);
    expect((await withUv(nr3.id)).status).toBe(0);
  });

  it('credBlob is returned for the credential (resident and non-resident)', async () => {
    const h = await makeHarness();
    const blob = Uint8Array.of(7, 7, 7);
    const rk = await create(h, { rk: true, extra: [[6, m([['credBlob', blob]])]] });
    const nr = await create(h, { extra: [[6, m([['credBlob', Uint8Array.of(5)]])]] });
    const plain = await create(h, { userId: Uint8Array.of(8) });
    for (const [id, expected] of [[rk.id, blob], [nr.id, Uint8Array.of(5)], [plain.id, new Uint8Array(0)]] as const) {
      const r = await ctap(h, GA, m([[1, RP_ID], [2, sha256('b')], [3, [desc(id)]], [4, m([['credBlob', true]])]]));
      expect(r.status).toBe(0);
      expect(parseAuthData((r.body as CborMap).get(2) as Uint8Array).extensions).toEqual(m([['credBlob', expected]]));
    }
  });

  for (const protocol of [1, 2] as const) {
    it(`hmac-secret over PIN protocol ${protocol}: stable per credential and salt, differs with UV`, async () => {
      const h = await makeHarness();
      const nr = await create(h, { extra: [[6, m([['hmac-secret', true]])]] });
      const rk = await create(h, { rk: true, extra: [[6, m([['hmac-secret', true]])]] });
      const plain = await create(h, { userId: Uint8Array.of(4) });
      const client = new PlatformPin(h, protocol);
      const salt1 = sha256('salt1');
      const salt2 = sha256('salt2');
      const run = async (id: Uint8Array, salts: Uint8Array, extra: [number, unknown][] = []) => {
        const { cose, shared } = await client.keyAgreement();
        const saltEnc = client.encrypt(shared, salts);
        const hs = m([[1, cose], [2, saltEnc], [3, client.authenticate(shared, saltEnc)], [4, protocol]]);
        const p = m([[1, RP_ID], [2, sha256('h')], [3, [desc(id)]], [4, m([['hmac-secret', hs]])]]);
        for (const [k, v] of extra) p.set(k, v as never);
        const r = await ctap(h, GA, p);
        expect(r.status).toBe(0);
        const ext = parseAuthData((r.body as CborMap).get(2) as Uint8Array).extensions;
        const out = ext?.get('hmac-secret') as Uint8Array | undefined;
        return out === undefined ? undefined : client.decrypt(shared, out);
      };
      for (const id of [nr.id, rk.id]) {
        const a = await run(id, salt1);
        const b = await run(id, Buffer.concat([salt1, salt2]));
        expect(a).toHaveLength(32);
        expect(b).toHaveLength(64);
        expect(Buffer.from((b as Uint8Array).subarray(0, 32))).toEqual(Buffer.from(a as Uint8Array));
      }
      expect(Buffer.from((await run(nr.id, salt1)) as Uint8Array)).not.toEqual(Buffer.from((await run(rk.id, salt1)) as Uint8Array));
      expect(await run(plain.id, salt1)).toBeUndefined();
      // Bad saltAuth → PIN_AUTH_INVALID; wrong salt length → INVALID_LENGTH.
      const { cose, shared } = await client.keyAgreement();
      const saltEnc = client.encrypt(shared, salt1);
      const bad = m([[1, cose], [2, saltEnc], [3, new Uint8Array(protocol === 1 ? 16 : 32)], [4, protocol]]);
      expect((await ctap(h, GA, m([[1, RP_ID], [2, sha256('h')], [3, [desc(nr.id)]], [4, m([['hmac-secret', bad]])]]))).status).toBe(CTAP2_ERR_PIN_AUTH_INVALID);
      const shortEnc = client.encrypt(shared, new Uint8Array(48));
      const short = m([[1, cose], [2, shortEnc], [3, client.authenticate(shared, shortEnc)], [4, protocol]]);
      expect((await ctap(h, GA, m([[1, RP_ID], [2, sha256('h')], [3, [desc(nr.id)]], [4, m([['hmac-secret', short]])]]))).status).toBe(0x02);
      // CTAP 2.1 PS 2021-06-15 §12.5: hmac-secret on a silent (up=false) assertion is refused.
      const good = m([[1, cose], [2, saltEnc], [3, client.authenticate(shared, saltEnc)], [4, protocol]]);
      const silent = m([[1, RP_ID], [2, sha256('h')], [3, [desc(nr.id)]], [4, m([['hmac-secret', good]])], [5, m([['up', false]])]]);
      expect((await ctap(h, GA, silent)).status).toBe(0x2b);
      // With UV the output differs (CredRandomWithUV).
      expect(await client.setPin('1234')).toBe(0);
      const withoutUv = await run(rk.id, salt1);
      const { token } = await client.token('1234');
      const cdh = sha256('h');
      const withUv = await run(rk.id, salt1, [[6, client.authenticate(token as Uint8Array, cdh)], [7, protocol]]);
      expect(Buffer.from(withUv as Uint8Array)).not.toEqual(Buffer.from(withoutUv as Uint8Array));
    });
  }

  it('resident credential counters persist across restarts and never go backwards', async () => {
    const h = await makeHarness();
    const { id } = await create(h, { rk: true });
    const nr = await create(h);
    const counts: number[] = [];
    const nrCounts: number[] = [];
    let cur = h;
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 2; i++) {
        const r = await ctap(cur, GA, m([[1, RP_ID], [2, sha256('c')], [3, [desc(id)]]]));
        counts.push(parseAuthData((r.body as CborMap).get(2) as Uint8Array).signCount);
        const r2 = await ctap(cur, GA, m([[1, RP_ID], [2, sha256('c')], [3, [desc(nr.id)]]]));
        nrCounts.push(parseAuthData((r2.body as CborMap).get(2) as Uint8Array).signCount);
      }
      cur = await makeHarness({ store: h.store, clock: h.clock });
    }
    expect(counts).toEqual([1, 2, 3, 4, 5, 6]);
    for (let i = 1; i < nrCounts.length; i++) expect(nrCounts[i]).toBeGreaterThan(nrCounts[i - 1]);
  });
});
