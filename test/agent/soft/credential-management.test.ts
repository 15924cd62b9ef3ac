import { describe, expect, it } from 'vitest';
import { encode, type CborMap, type CborValue } from '../../../protocol/cbor.ts';
import type { RequestOrigin } from '../../../protocol/authenticator.ts';
import {
  CTAP1_ERR_INVALID_PARAMETER,
  CTAP2_ERR_INVALID_SUBCOMMAND,
  CTAP2_ERR_MISSING_PARAMETER,
  CTAP2_ERR_NO_CREDENTIALS,
  CTAP2_ERR_NOT_ALLOWED,
  CTAP2_ERR_PIN_AUTH_INVALID,
  CTAP2_ERR_PUAT_REQUIRED,
} from '../../../protocol/ctap2.ts';
import { ctap, m, makeHarness, mcParams, parseAuthData, PlatformPin, RP_ID, sha256, type Harness } from './helpers.ts';

async function setup(protocol: 1 | 2 = 2) {
  const h = await makeHarness();
  const pin = new PlatformPin(h, protocol);
  expect(await pin.setPin('1234')).toBe(0);
  const mk = async (rpId: string, userId: number, origin?: RequestOrigin) => {
    const { token } = await pin.token('1234', 0x01, rpId);
    const cdh = sha256(`mc-${rpId}-${userId}`);
    const p = mcParams({ rpId, rk: true, userId: Uint8Array.of(userId), cdh, extra: [[8, pin.authenticate(token as Uint8Array, cdh)], [9, protocol]] });
    const r = await ctap(h, 0x01, p, origin);
    expect(r.status).toBe(0);
    return parseAuthData((r.body as CborMap).get(2) as Uint8Array).credentialId as Uint8Array;
  };
  return { h, pin, mk, protocol };
}

/** Send a credMgmt subcommand authenticated with a fresh cm token (or with `token`). */
async function cm(
  s: { h: Harness; pin: PlatformPin; protocol: 1 | 2 },
  sub: number,
  subParams?: CborMap,
  opts: { token?: Uint8Array; command?: number; origin?: RequestOrigin; noAuth?: boolean } = {},
) {
  const params = m([[1, sub]]);
  if (subParams) params.set(2, subParams);
  if (!opts.noAuth) {
    const token = opts.token ?? ((await s.pin.token('1234', 0x04)).token as Uint8Array);
    const msg = subParams ? Buffer.concat([Uint8Array.of(sub), encode(subParams)]) : Uint8Array.of(sub);
    params.set(3, s.protocol);
    params.set(4, s.pin.authenticate(token, msg));
  }
  return ctap(s.h, opts.command ?? 0x0a, params, opts.origin);
}

describe('authenticatorCredentialManagement', () => {
  for (const command of [0x0a, 0x41]) {
    it(`metadata, RP and credential enumeration (command 0x${command.toString(16)})`, async () => {
      const s = await setup();
      await s.mk('a.example', 1);
      await s.mk('a.example', 2);
      await s.mk('b.example', 3);
      const meta = await cm(s, 1, undefined, { command });
      expect(meta.status).toBe(0);
      expect((meta.body as CborMap).get(1)).toBe(3);
      expect((meta.body as CborMap).get(2)).toBe(253);
      const rps = await cm(s, 2, undefined, { command });
      expect(rps.status).toBe(0);
      expect((rps.body as CborMap).get(5)).toBe(2);
      const rp1 = ((rps.body as CborMap).get(3) as CborMap).get('id');
      const next = await cm(s, 3, undefined, { command, noAuth: true });
      expect(next.status).toBe(0);
      const rp2 = ((next.body as CborMap).get(3) as CborMap).get('id');
      expect(new Set([rp1, rp2])).toEqual(new Set(['a.example', 'b.example']));
      expect(Buffer.from((next.body as CborMap).get(4) as Uint8Array)).toEqual(Buffer.from(sha256(rp2 as string)));
      expect((await cm(s, 3, undefined, { command, noAuth: true })).status).toBe(CTAP2_ERR_NOT_ALLOWED);

      const creds = await cm(s, 4, m([[1, sha256('a.example')]]), { command });
      expect(creds.status).toBe(0);
      const c0 = creds.body as CborMap;
      expect(c0.get(9)).toBe(2);
      expect(c0.get(6)).toEqual(m([['id', Uint8Array.of(2)], ['name', 'alice'], ['displayName', 'Alice A.']]));
      expect((c0.get(8) as CborMap).get(3)).toBe(-7);
      expect(c0.get(10)).toBe(1);
      const c1 = await cm(s, 5, undefined, { command, noAuth: true });
      expect((c1.body as CborMap).get(6)).toEqual(m([['id', Uint8Array.of(1)], ['name', 'alice'], ['displayName', 'Alice A.']]));
      expect((await cm(s, 5, undefined, { command, noAuth: true })).status).toBe(CTAP2_ERR_NOT_ALLOWED);
      expect((await cm(s, 4, m([[1, sha256('none.example')]]), { command })).status).toBe(CTAP2_ERR_NO_CREDENTIALS);
    });
  }

  it('deleteCredential and updateUserInformation', async () => {
    const s = await setup(1);
    const id1 = await s.mk(RP_ID, 1);
    await s.mk(RP_ID, 2);
    const del = await cm(s, 6, m([[2, m([['id', id1], ['type', 'public-key']])]]));
    expect(del.status).toBe(0);
    expect((await cm(s, 6, m([[2, m([['id', id1], ['type', 'public-key']])]]))).status).toBe(CTAP2_ERR_NO_CREDENTIALS);
    // The deleted credential no longer signs, even with its id in an allowList.
    expect((await ctap(s.h, 0x02, m([[1, RP_ID], [2, sha256('x')], [3, [m([['id', id1], ['type', 'public-key']])]]]))).status).toBe(CTAP2_ERR_NO_CREDENTIALS);
    const creds = await cm(s, 4, m([[1, sha256(RP_ID)]]));
    const id2 = ((creds.body as CborMap).get(7) as CborMap).get('id') as Uint8Array;
    const upd = await cm(s, 7, m([[2, m([['id', id2], ['type', 'public-key']])], [3, m([['id', Uint8Array.of(2)], ['name', 'bob']])]]));
    expect(upd.status).toBe(0);
    const after = await cm(s, 4, m([[1, sha256(RP_ID)]]));
    expect((after.body as CborMap).get(6)).toEqual(m([['id', Uint8Array.of(2)], ['name', 'bob']]));
    const wrongUser = await cm(s, 7, m([[2, m([['id', id2], ['type', 'public-key']])], [3, m([['id', Uint8Array.of(9)], ['name', 'x']])]]));
    expect(wrongUser.status).toBe(CTAP1_ERR_INVALID_PARAMETER);
    // State survives a restart.
    const reopened = await makeHarness({ store: s.h.store, clock: s.h.clock });
    const s2 = { h: reopened, pin: new PlatformPin(reopened, 1), protocol: 1 as const };
    expect(((await cm(s2, 1)).body as CborMap).get(1)).toBe(1);
  });

  it('auth errors: no param → PUAT_REQUIRED, bad MAC, missing cm permission, rp-bound token', async () => {
    const s = await setup();
    await s.mk(RP_ID, 1);
    expect((await cm(s, 1, undefined, { noAuth: true })).status).toBe(CTAP2_ERR_PUAT_REQUIRED);
    expect((await ctap(s.h, 0x0a, m([[1, 1], [3, 2], [4, new Uint8Array(32)]]))).status).toBe(CTAP2_ERR_PIN_AUTH_INVALID);
    expect((await ctap(s.h, 0x0a, m([[1, 1], [4, new Uint8Array(32)]]))).status).toBe(CTAP2_ERR_MISSING_PARAMETER);
    const gaToken = (await s.pin.token('1234', 0x02)).token as Uint8Array;
    expect((await cm(s, 1, undefined, { token: gaToken })).status).toBe(CTAP2_ERR_PIN_AUTH_INVALID);
    const bound = (await s.pin.token('1234', 0x04, 'other.example')).token as Uint8Array;
    expect((await cm(s, 1, undefined, { token: bound })).status).toBe(CTAP2_ERR_PIN_AUTH_INVALID);
    expect((await cm(s, 4, m([[1, sha256(RP_ID)]]), { token: bound })).status).toBe(CTAP2_ERR_PIN_AUTH_INVALID);
    const boundOk = (await s.pin.token('1234', 0x04, RP_ID)).token as Uint8Array;
    expect((await cm(s, 4, m([[1, sha256(RP_ID)]]), { token: boundOk })).status).toBe(0);
    expect((await cm(s, 4)).status).toBe(CTAP2_ERR_MISSING_PARAMETER);
    expect((await cm(s, 0x10)).status).toBe(CTAP2_ERR_INVALID_SUBCOMMAND);
    expect((await cm(s, 3, undefined, { noAuth: true })).status).toBe(CTAP2_ERR_NOT_ALLOWED);
  });
});

describe('credentialMgmtPreview (0x41) for platforms that know only getPinToken (issue 11 finding 9b)', () => {
  it('0x41 accepts a getPinToken token (mc+ga by default); 0x0A still needs cm', async () => {
    const s = await setup();
    await s.mk('a.example', 1);
    await s.mk('a.example', 2);
    const legacy = (await s.pin.token('1234')).token as Uint8Array;
    expect((await cm(s, 1, undefined, { token: legacy, command: 0x0a })).status).toBe(CTAP2_ERR_PIN_AUTH_INVALID);
    const meta = await cm(s, 1, undefined, { token: legacy, command: 0x41 });
    expect(meta.status).toBe(0);
    expect((meta.body as CborMap).get(1)).toBe(2);
    const creds = await cm(s, 4, m([[1, sha256('a.example')]]), { token: legacy, command: 0x41 });
    expect(creds.status).toBe(0);
    expect((await cm(s, 5, undefined, { command: 0x41, noAuth: true })).status).toBe(0);
    // A permissions token without cm is not a legacy token: 0x41 refuses it.
    const gaToken = (await s.pin.token('1234', 0x02)).token as Uint8Array;
    expect((await cm(s, 1, undefined, { token: gaToken, command: 0x41 })).status).toBe(CTAP2_ERR_PIN_AUTH_INVALID);
  });

  it('a getPinToken token used for an assertion with user presence loses the grant with its permissions', async () => {
    const s = await setup();
    await s.mk(RP_ID, 1);
    const legacy = (await s.pin.token('1234')).token as Uint8Array;
    const cdh = sha256('ga');
    const ga = await ctap(s.h, 0x02, m([[1, RP_ID], [2, cdh], [6, s.pin.authenticate(legacy, cdh)], [7, s.protocol]]));
    expect(ga.status).toBe(0);
    expect((await cm(s, 1, undefined, { token: legacy, command: 0x41 })).status).toBe(CTAP2_ERR_PIN_AUTH_INVALID);
  });
});

describe('credential scope (per-gateway scoping)', () => {
  it('tags new credentials and shows each scope only its own; the shared view sees all', async () => {
    const s = await setup();
    const gwA: RequestOrigin = { credentialScope: 'gw-a' };
    const gwB: RequestOrigin = { credentialScope: 'gw-b' };
    const idA = await s.mk(RP_ID, 1, gwA);
    const idB = await s.mk(RP_ID, 2, gwB);
    await s.mk(RP_ID, 3);
    // Non-resident credential made in scope A.
    const nr = await ctap(s.h, 0x01, mcParams({ userId: Uint8Array.of(4) }), gwA);
    const nrId = parseAuthData((nr.body as CborMap).get(2) as Uint8Array).credentialId as Uint8Array;

    const ga = (origin: RequestOrigin | undefined, allow?: Uint8Array) => {
      const p = m([[1, RP_ID], [2, sha256('x')]]);
      if (allow) p.set(3, [m([['id', allow], ['type', 'public-key']])] as CborValue);
      return ctap(s.h, 0x02, p, origin);
    };
    expect((await ga(gwA, idA)).status).toBe(0);
    expect((await ga(gwB, idA)).status).toBe(CTAP2_ERR_NO_CREDENTIALS);
    expect((await ga(undefined, idA)).status).toBe(0);
    expect((await ga(gwA, nrId)).status).toBe(0);
    expect((await ga(gwB, nrId)).status).toBe(CTAP2_ERR_NO_CREDENTIALS);
    expect((await ga(undefined, nrId)).status).toBe(0); // the shared view sees every credential
    const discA = await ga(gwA);
    expect(discA.status).toBe(0);
    expect((discA.body as CborMap).has(5)).toBe(false);
    expect(((discA.body as CborMap).get(4) as CborMap).get('id')).toEqual(Uint8Array.of(1));
    const discAll = await ga(undefined);
    expect((discAll.body as CborMap).get(5)).toBe(3);

    expect(((await cm(s, 1, undefined, { origin: gwA })).body as CborMap).get(1)).toBe(1);
    expect(((await cm(s, 1, undefined, { origin: undefined })).body as CborMap).get(1)).toBe(3);
    const credsB = await cm(s, 4, m([[1, sha256(RP_ID)]]), { origin: gwB });
    expect((credsB.body as CborMap).get(9)).toBe(1);
    // Scope B cannot delete A's credential; the shared view can.
    expect((await cm(s, 6, m([[2, m([['id', idA], ['type', 'public-key']])]]), { origin: gwB })).status).toBe(CTAP2_ERR_NO_CREDENTIALS);
    expect((await cm(s, 6, m([[2, m([['id', idB], ['type', 'public-key']])]]), { origin: gwB })).status).toBe(0);
    expect((await cm(s, 6, m([[2, m([['id', idA], ['type', 'public-key']])]]))).status).toBe(0);
    // Excluding in another scope does not reveal the credential.
    expect((await ctap(s.h, 0x01, mcParams({ userId: Uint8Array.of(5), extra: [[5, [m([['id', nrId], ['type', 'public-key']])]]] }), gwB)).status).toBe(0);
  });
});
