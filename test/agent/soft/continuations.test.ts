/**
 * Issue 11 finding 2 (soft side): a getNextAssertion sequence or a credential enumeration belongs to the
 * credential scope and gateway whose request began it. Another scope's or gateway's GetNext gets
 * CTAP2_ERR_NOT_ALLOWED and ends it; any other request — even one refused for its subcommand or its size —
 * ends it too (CTAP 2.1 PS 2021-06-15 §6.3, §6.8.3, §6.8.4).
 */
import { describe, expect, it } from 'vitest';
import type { RequestOrigin } from '../../../protocol/authenticator.ts';
import { encode, type CborMap } from '../../../protocol/cbor.ts';
import { CTAP2_ERR_INVALID_SUBCOMMAND, CTAP2_ERR_NOT_ALLOWED, CTAP2_ERR_REQUEST_TOO_LARGE } from '../../../protocol/ctap2.ts';
import { MAX_MESSAGE_SIZE } from '../../../protocol/ctaphid.ts';
import { ctap, m, makeHarness, mcParams, PlatformPin, sha256, type Harness } from './helpers.ts';

const MC = 0x01;
const GA = 0x02;
const GNA = 0x08;
const CM = 0x0a;
const ENUMERATE_CREDENTIALS_BEGIN = 0x04;
const ENUMERATE_CREDENTIALS_GET_NEXT = 0x05;
const ENUMERATE_RPS_BEGIN = 0x02;
const ENUMERATE_RPS_GET_NEXT = 0x03;

/** Two VMs with per-gateway scopes, and two with the shared (unscoped) view. */
const A: RequestOrigin = { gatewayFingerprint: 'fp-a', gatewayName: 'vm-a', credentialScope: 'fp-a' };
const B: RequestOrigin = { gatewayFingerprint: 'fp-b', gatewayName: 'vm-b', credentialScope: 'fp-b' };
const SHARED_A: RequestOrigin = { gatewayFingerprint: 'fp-a', gatewayName: 'vm-a' };
const SHARED_B: RequestOrigin = { gatewayFingerprint: 'fp-b', gatewayName: 'vm-b' };

async function setup() {
  const h = await makeHarness();
  const pin = new PlatformPin(h, 2);
  expect(await pin.setPin('1234')).toBe(0);
  const mk = async (rpId: string, user: number, name: string, origin: RequestOrigin) => {
    const { token } = await pin.token('1234', 0x01, rpId);
    const cdh = sha256(`mc-${rpId}-${user}`);
    const params = mcParams({ rpId, rk: true, userId: Uint8Array.of(user), cdh, extra: [[8, pin.authenticate(token as Uint8Array, cdh)], [9, 2]] });
    (params.get(3) as CborMap).set('name', name);
    expect((await ctap(h, MC, params, origin)).status).toBe(0);
  };
  return { h, pin, mk };
}

/** credentialManagement with a fresh cm token (the clientPIN round trip happens before, as platforms do). */
async function cmAuthed(h: Harness, pin: PlatformPin, sub: number, subParams: CborMap | undefined, origin: RequestOrigin) {
  const { token } = await pin.token('1234', 0x04);
  const msg = subParams ? Buffer.concat([Uint8Array.of(sub), encode(subParams)]) : Uint8Array.of(sub);
  const params = m([[1, sub], [3, 2], [4, pin.authenticate(token as Uint8Array, msg)]]);
  if (subParams) params.set(2, subParams);
  return ctap(h, CM, params, origin);
}

const getNext = (h: Harness, sub: number, origin?: RequestOrigin) => ctap(h, CM, m([[1, sub]]), origin);
const userName = (body: CborMap | undefined) => ((body as CborMap).get(6) as CborMap).get('name');

describe('soft authenticator continuations are tied to the scope and gateway that began them', () => {
  it("getNextAssertion from another scope gets NOT_ALLOWED, not A's next account, and ends A's sequence", async () => {
    const { h, mk } = await setup();
    await mk('a.example', 1, 'alice@tenant-a', A);
    await mk('a.example', 2, 'arthur@tenant-a', A);
    const first = await ctap(h, GA, m([[1, 'a.example'], [2, sha256('ga')]]), A);
    expect(first.status).toBe(0);
    expect((first.body as CborMap).get(5)).toBe(2);
    const stolen = await ctap(h, GNA, undefined, B);
    expect(stolen.status).toBe(CTAP2_ERR_NOT_ALLOWED);
    expect(stolen.body).toBeUndefined();
    // The attempt ended the sequence for A too (as any other command would have).
    expect((await ctap(h, GNA, undefined, A)).status).toBe(CTAP2_ERR_NOT_ALLOWED);
  });

  it('the same owner continues a sequence; a gateway with the shared view cannot continue another one', async () => {
    const { h, mk } = await setup();
    await mk('a.example', 1, 'alice', SHARED_A);
    await mk('a.example', 2, 'arthur', SHARED_A);
    await mk('a.example', 3, 'anne', SHARED_A);
    expect((await ctap(h, GA, m([[1, 'a.example'], [2, sha256('ga')]]), SHARED_A)).status).toBe(0);
    expect((await ctap(h, GNA, undefined, SHARED_A)).status).toBe(0);
    // Same (absent) scope, another gateway.
    expect((await ctap(h, GNA, undefined, SHARED_B)).status).toBe(CTAP2_ERR_NOT_ALLOWED);
    expect((await ctap(h, GNA, undefined, SHARED_A)).status).toBe(CTAP2_ERR_NOT_ALLOWED);
  });

  it("enumerateCredentials GetNext from another scope gets NOT_ALLOWED and ends A's enumeration", async () => {
    const { h, pin, mk } = await setup();
    await mk('a.example', 1, 'alice@tenant-a', A);
    await mk('a.example', 2, 'arthur@tenant-a', A);
    const begin = await cmAuthed(h, pin, ENUMERATE_CREDENTIALS_BEGIN, m([[1, sha256('a.example')]]), A);
    expect(begin.status).toBe(0);
    expect((begin.body as CborMap).get(9)).toBe(2);
    const stolen = await getNext(h, ENUMERATE_CREDENTIALS_GET_NEXT, B);
    expect(stolen.status).toBe(CTAP2_ERR_NOT_ALLOWED);
    expect(stolen.body).toBeUndefined();
    expect((await getNext(h, ENUMERATE_CREDENTIALS_GET_NEXT, A)).status).toBe(CTAP2_ERR_NOT_ALLOWED);
  });

  it("enumerateRPs GetNext from another gateway gets NOT_ALLOWED", async () => {
    const { h, pin, mk } = await setup();
    await mk('a.example', 1, 'alice', SHARED_A);
    await mk('a2.example', 2, 'alice', SHARED_A);
    expect((await cmAuthed(h, pin, ENUMERATE_RPS_BEGIN, undefined, SHARED_A)).status).toBe(0);
    expect((await getNext(h, ENUMERATE_RPS_GET_NEXT, SHARED_B)).status).toBe(CTAP2_ERR_NOT_ALLOWED);
    expect((await getNext(h, ENUMERATE_RPS_GET_NEXT, SHARED_A)).status).toBe(CTAP2_ERR_NOT_ALLOWED);
  });

  it("the issue's decoy: an unknown subCommand (INVALID_SUBCOMMAND) ends the enumeration, for everyone", async () => {
    const { h, pin, mk } = await setup();
    await mk('a.example', 1, 'alice@tenant-a', SHARED_A);
    await mk('a.example', 2, 'arthur@tenant-a', SHARED_A);
    await mk('a.example', 3, 'anne@tenant-a', SHARED_A);
    expect((await cmAuthed(h, pin, ENUMERATE_CREDENTIALS_BEGIN, m([[1, sha256('a.example')]]), SHARED_A)).status).toBe(0);
    const next = await getNext(h, ENUMERATE_CREDENTIALS_GET_NEXT, SHARED_A);
    expect(next.status).toBe(0);
    expect(userName(next.body)).toBe('arthur@tenant-a');
    expect((await ctap(h, CM, m([[1, 0x99]]), SHARED_B)).status).toBe(CTAP2_ERR_INVALID_SUBCOMMAND);
    expect((await getNext(h, ENUMERATE_CREDENTIALS_GET_NEXT, SHARED_B)).status).toBe(CTAP2_ERR_NOT_ALLOWED);
    // Even the owner's own decoy ends it: §6.8.4 state lives only until another command arrives.
    expect((await cmAuthed(h, pin, ENUMERATE_CREDENTIALS_BEGIN, m([[1, sha256('a.example')]]), SHARED_A)).status).toBe(0);
    expect((await ctap(h, CM, m([[1, 0x99]]), SHARED_A)).status).toBe(CTAP2_ERR_INVALID_SUBCOMMAND);
    expect((await getNext(h, ENUMERATE_CREDENTIALS_GET_NEXT, SHARED_A)).status).toBe(CTAP2_ERR_NOT_ALLOWED);
  });

  it('a request refused for its size (or an empty one) ends a getNextAssertion sequence', async () => {
    const { h, mk } = await setup();
    for (const u of [1, 2, 3]) await mk('a.example', u, `u${u}`, SHARED_A);
    expect((await ctap(h, GA, m([[1, 'a.example'], [2, sha256('ga')]]), SHARED_A)).status).toBe(0);
    const tooLarge = new Uint8Array(MAX_MESSAGE_SIZE + 1).fill(0);
    tooLarge[0] = GA;
    expect((await h.auth.request('cbor', tooLarge, h.ctx(SHARED_B)))[0]).toBe(CTAP2_ERR_REQUEST_TOO_LARGE);
    expect((await ctap(h, GNA, undefined, SHARED_A)).status).toBe(CTAP2_ERR_NOT_ALLOWED);

    expect((await ctap(h, GA, m([[1, 'a.example'], [2, sha256('ga')]]), SHARED_A)).status).toBe(0);
    await h.auth.request('cbor', new Uint8Array(0), h.ctx(SHARED_B));
    expect((await ctap(h, GNA, undefined, SHARED_A)).status).toBe(CTAP2_ERR_NOT_ALLOWED);
  });

  it('a malformed credentialManagement request (no subCommand) ends an enumeration', async () => {
    const { h, pin, mk } = await setup();
    await mk('a.example', 1, 'alice', SHARED_A);
    await mk('a.example', 2, 'arthur', SHARED_A);
    expect((await cmAuthed(h, pin, ENUMERATE_CREDENTIALS_BEGIN, m([[1, sha256('a.example')]]), SHARED_A)).status).toBe(0);
    expect((await ctap(h, CM, m([[2, m([])]]), SHARED_A)).status).not.toBe(0);
    expect((await getNext(h, ENUMERATE_CREDENTIALS_GET_NEXT, SHARED_A)).status).toBe(CTAP2_ERR_NOT_ALLOWED);
  });
});
