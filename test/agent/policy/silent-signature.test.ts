/**
 * Issue 11 finding 7: what the soft authenticator signs without a prompt, and how an observer (the policy's
 * audit) tells such a signature from the answer alone.
 *   - CTAP2 getAssertion with up=false: signed silently (UP flag clear), every getNextAssertion of that run too;
 *     isSilentSignature says so.
 *   - U2F_AUTHENTICATE 0x08 ("dont-enforce-user-presence-and-sign"): answered like 0x03 — a prompt, UP set; a
 *     denial signs nothing.
 */
import { describe, expect, it } from 'vitest';
import { encode, type CborMap } from '../../../protocol/cbor.ts';
import { SW_CONDITIONS_NOT_SATISFIED, SW_NO_ERROR } from '../../../protocol/u2f.ts';
import { isSilentSignature } from '../../../agent/policy/silent-signature.ts';
import { ctap, m, makeHarness, mcParams, parseAuthData, PlatformPin, RP_ID, sha256, type Harness } from '../soft/helpers.ts';

const MC = 0x01;
const GA = 0x02;
const GNA = 0x08;

/** Send a CTAP2 request and keep both sides, as the policy sees them. */
async function exchange(h: Harness, payload: Uint8Array) {
  const answer = await h.auth.request('cbor', payload, h.ctx());
  return { payload, answer, silent: isSilentSignature('cbor', payload, answer) };
}

const cbor = (command: number, params?: CborMap) => Uint8Array.from([command, ...(params === undefined ? [] : encode(params))]);

function u2fAuthenticate(p1: number, app: Uint8Array, keyHandle: Uint8Array): Uint8Array {
  const data = Buffer.concat([sha256('u2f challenge'), app, Uint8Array.of(keyHandle.length), keyHandle]);
  return Uint8Array.from([0x00, 0x02, p1, 0x00, data.length, ...data, 0x00]);
}
const swOf = (a: Uint8Array) => (a[a.length - 2] << 8) | a[a.length - 1];

describe('silent signatures (up=false) are possible only through CTAP2 and are recognisable', () => {
  it('getAssertion up=false: no prompt, UP clear, isSilentSignature; with presence: a prompt and not silent', async () => {
    const h = await makeHarness();
    const made = await ctap(h, MC, mcParams());
    const id = parseAuthData((made.body as CborMap).get(2) as Uint8Array).credentialId as Uint8Array;
    const allow = [m([['id', id], ['type', 'public-key']])];
    const prompts = h.presence.requests.length;
    const probe = await exchange(h, cbor(GA, m([[1, RP_ID], [2, sha256('probe')], [3, allow], [5, m([['up', false]])]])));
    expect(probe.answer[0]).toBe(0);
    expect(probe.silent).toBe(true);
    expect(h.presence.requests.length).toBe(prompts);
    const normal = await exchange(h, cbor(GA, m([[1, RP_ID], [2, sha256('login')], [3, allow]])));
    expect(normal.answer[0]).toBe(0);
    expect(normal.silent).toBe(false);
    expect(h.presence.requests.length).toBe(prompts + 1);
  });

  it('every getNextAssertion of an up=false run is silent too', async () => {
    const h = await makeHarness();
    for (const u of [1, 2]) expect((await ctap(h, MC, mcParams({ rk: true, userId: Uint8Array.of(u) }))).status).toBe(0);
    const first = await exchange(h, cbor(GA, m([[1, RP_ID], [2, sha256('probe')], [5, m([['up', false]])]])));
    expect(first.silent).toBe(true);
    const next = await exchange(h, cbor(GNA));
    expect(next.answer[0]).toBe(0);
    expect(next.silent).toBe(true);
  });

  it('answers without a signature or with presence are never silent', async () => {
    const h = await makeHarness();
    expect((await exchange(h, cbor(MC, mcParams()))).silent).toBe(false);
    expect((await exchange(h, cbor(GA, m([[1, 'none.example'], [2, sha256('x')]])))).silent).toBe(false);
    const pin = new PlatformPin(h, 2);
    expect(await pin.setPin('1234')).toBe(0);
    // A clientPIN token answer also carries a byte string as member 2: not authenticator data.
    const { cose, shared } = await pin.keyAgreement();
    const tokenRequest = cbor(0x06, m([[1, 2], [2, 5], [3, cose], [6, pin.encrypt(shared, sha256('1234').subarray(0, 16))]]));
    const tokenAnswer = await exchange(h, tokenRequest);
    expect(tokenAnswer.answer[0]).toBe(0);
    expect(tokenAnswer.silent).toBe(false);
    expect(isSilentSignature('cbor', Uint8Array.of(GA), Uint8Array.of(0, 0xff))).toBe(false);
    expect(isSilentSignature('msg', new Uint8Array(0), new Uint8Array(0))).toBe(false);
  });

  it('U2F 0x08 asks the user like 0x03 and sets UP; a denial signs nothing', async () => {
    const h = await makeHarness();
    const app = sha256('https://u2f.example');
    const reg = Buffer.from(await h.auth.request('msg', Uint8Array.from([0, 0x01, 0, 0, 64, ...sha256('r'), ...app, 0]), h.ctx()));
    expect(swOf(reg)).toBe(SW_NO_ERROR);
    const keyHandle = reg.subarray(67, 67 + reg[66]);
    const prompts = h.presence.requests.length;
    const request = u2fAuthenticate(0x08, app, keyHandle);
    const answer = await h.auth.request('msg', request, h.ctx());
    expect(swOf(answer)).toBe(SW_NO_ERROR);
    expect(answer[0]).toBe(0x01);
    expect(h.presence.requests.slice(prompts).map((r) => r.action)).toEqual(['u2fAuthenticate']);
    expect(isSilentSignature('msg', request, answer)).toBe(false);
    h.presence.answer = 'denied';
    const denied = await h.auth.request('msg', request, h.ctx());
    expect(denied.length).toBe(2);
    expect(swOf(denied)).toBe(SW_CONDITIONS_NOT_SATISFIED);
    // An authenticator that honours 0x08 (a real key) answers with the presence bit clear: that is silent.
    const honoured = Uint8Array.from([0x00, 0, 0, 0, 7, ...answer.subarray(5)]);
    expect(isSilentSignature('msg', request, honoured)).toBe(true);
  });
});
