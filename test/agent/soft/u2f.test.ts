import { createPublicKey, verify, X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { CborMap } from '../../../protocol/cbor.ts';
import { ctap, m, makeHarness, mcParams, parseAuthData, sha256, type Harness } from './helpers.ts';

const SW_NO_ERROR = 0x9000;
const SW_CONDITIONS_NOT_SATISFIED = 0x6985;
const SW_WRONG_DATA = 0x6a80;
const SW_WRONG_LENGTH = 0x6700;
const SW_CLA_NOT_SUPPORTED = 0x6e00;
const SW_INS_NOT_SUPPORTED = 0x6d00;

function apdu(ins: number, p1: number, data: Uint8Array, extended = false, le = true): Uint8Array {
  const head = [0x00, ins, p1, 0x00];
  if (extended) {
    const lc = data.length > 0 ? [0x00, data.length >> 8, data.length & 0xff] : [0x00];
    return Uint8Array.from([...head, ...lc, ...data, ...(le ? [0x00, 0x00] : [])]);
  }
  return Uint8Array.from([...head, ...(data.length > 0 ? [data.length] : []), ...data, ...(le ? [0x00] : [])]);
}

async function send(h: Harness, bytes: Uint8Array): Promise<{ sw: number; data: Buffer }> {
  const r = Buffer.from(await h.auth.request('msg', bytes, h.ctx()));
  return { sw: r.readUInt16BE(r.length - 2), data: r.subarray(0, r.length - 2) };
}

function parseRegister(data: Buffer) {
  expect(data[0]).toBe(0x05);
  const publicKey = data.subarray(1, 66);
  const khLen = data[66];
  const keyHandle = data.subarray(67, 67 + khLen);
  const rest = data.subarray(67 + khLen);
  // Certificate length from its DER header (30 82 LL LL).
  const certLen = 4 + rest.readUInt16BE(2);
  const cert = rest.subarray(0, certLen);
  const signature = rest.subarray(certLen);
  return { publicKey, keyHandle, cert, signature };
}

function p256FromRaw(raw: Uint8Array) {
  return createPublicKey({
    key: { kty: 'EC', crv: 'P-256', x: Buffer.from(raw.subarray(1, 33)).toString('base64url'), y: Buffer.from(raw.subarray(33, 65)).toString('base64url') },
    format: 'jwk',
  });
}

describe('CTAP1/U2F over CTAPHID_MSG', () => {
  it('U2F_VERSION answers U2F_V2 (short and extended encodings)', async () => {
    const h = await makeHarness();
    for (const ext of [false, true]) {
      const r = await send(h, apdu(0x03, 0, new Uint8Array(0), ext));
      expect(r.sw).toBe(SW_NO_ERROR);
      expect(r.data.toString()).toBe('U2F_V2');
    }
    expect((await send(h, Uint8Array.of(0, 3, 0, 0))).sw).toBe(SW_NO_ERROR);
    // Extended form with an explicit Lc = 0 and Le (how python-fido2 and libfido2 send it).
    expect((await send(h, Uint8Array.of(0, 3, 0, 0, 0, 0, 0, 0, 0))).sw).toBe(SW_NO_ERROR);
    expect((await send(h, apdu(0x03, 0, Uint8Array.of(1)))).sw).toBe(SW_WRONG_LENGTH);
  });

  it('register + authenticate: attestation cert parses, signatures verify, counter increases', async () => {
    const h = await makeHarness();
    const challenge = sha256('challenge');
    const app = sha256('https://u2f.example');
    const reg = await send(h, apdu(0x01, 0, Buffer.concat([challenge, app]), true));
    expect(reg.sw).toBe(SW_NO_ERROR);
    const { publicKey, keyHandle, cert, signature } = parseRegister(reg.data);
    const x509 = new X509Certificate(cert);
    expect(x509.subject).toContain('keytunnel');
    expect(verify('sha256', Buffer.concat([Uint8Array.of(0), app, challenge, keyHandle, publicKey]), x509.publicKey, signature)).toBe(true);
    expect(h.presence.requests.at(-1)?.action).toBe('u2fRegister');
    // The certificate is generated once and kept.
    const reg2 = await send(h, apdu(0x01, 0, Buffer.concat([challenge, app])));
    expect(Buffer.compare(parseRegister(reg2.data).cert, cert)).toBe(0);
    const reopened = await makeHarness({ store: h.store, clock: h.clock });
    const reg3 = await send(reopened, apdu(0x01, 0, Buffer.concat([challenge, app])));
    expect(Buffer.compare(parseRegister(reg3.data).cert, cert)).toBe(0);

    const pub = p256FromRaw(publicKey);
    const authData = (p1: number) => Buffer.concat([sha256('c2'), app, Uint8Array.of(keyHandle.length), keyHandle]);
    let lastCounter = -1;
    // 0x08 ("dont-enforce-user-presence-and-sign") is answered like 0x03: a prompt, UP set (issue 11 finding 7).
    for (const p1 of [0x03, 0x08]) {
      const prompts = reopened.presence.requests.length;
      const r = await send(reopened, apdu(0x02, p1, authData(p1)));
      expect(r.sw).toBe(SW_NO_ERROR);
      expect(r.data[0]).toBe(1);
      expect(reopened.presence.requests.slice(prompts).map((q) => q.action)).toEqual(['u2fAuthenticate']);
      const counter = r.data.readUInt32BE(1);
      expect(counter).toBeGreaterThan(lastCounter);
      lastCounter = counter;
      expect(verify('sha256', Buffer.concat([app, r.data.subarray(0, 5), sha256('c2')]), pub, r.data.subarray(5))).toBe(true);
    }
    expect((await send(reopened, apdu(0x02, 0x07, authData(7)))).sw).toBe(SW_CONDITIONS_NOT_SATISFIED);
  });

  it('foreign / other-app / tampered key handles → SW_WRONG_DATA (also for check-only)', async () => {
    const h = await makeHarness();
    const app = sha256('app');
    const reg = await send(h, apdu(0x01, 0, Buffer.concat([sha256('c'), app])));
    const { keyHandle } = parseRegister(reg.data);
    const tampered = Buffer.from(keyHandle);
    tampered[30] ^= 0xff;
    for (const [kh, a] of [[tampered, app], [keyHandle, sha256('other')], [Buffer.alloc(64, 1), app]] as const) {
      for (const p1 of [0x07, 0x03]) {
        expect((await send(h, apdu(0x02, p1, Buffer.concat([sha256('c'), a, Uint8Array.of(kh.length), kh])))).sw).toBe(SW_WRONG_DATA);
      }
    }
  });

  it('presence denied → SW_CONDITIONS_NOT_SATISFIED for register and authenticate', async () => {
    const h = await makeHarness();
    const app = sha256('app');
    const reg = await send(h, apdu(0x01, 0, Buffer.concat([sha256('c'), app])));
    const { keyHandle } = parseRegister(reg.data);
    h.presence.answer = 'denied';
    expect((await send(h, apdu(0x01, 0, Buffer.concat([sha256('c'), app])))).sw).toBe(SW_CONDITIONS_NOT_SATISFIED);
    expect((await send(h, apdu(0x02, 0x03, Buffer.concat([sha256('c'), app, Uint8Array.of(keyHandle.length), keyHandle])))).sw).toBe(SW_CONDITIONS_NOT_SATISFIED);
  });

  it('bad CLA, unknown INS, inconsistent lengths', async () => {
    const h = await makeHarness();
    const bad = apdu(0x03, 0, new Uint8Array(0));
    bad[0] = 0x80;
    expect((await send(h, bad)).sw).toBe(SW_CLA_NOT_SUPPORTED);
    expect((await send(h, apdu(0x44, 0, new Uint8Array(0)))).sw).toBe(SW_INS_NOT_SUPPORTED);
    expect((await send(h, Uint8Array.of(0, 1, 0))).sw).toBe(SW_WRONG_LENGTH);
    expect((await send(h, Uint8Array.of(0, 1, 0, 0, 10, 1, 2))).sw).toBe(SW_WRONG_LENGTH);
    expect((await send(h, Uint8Array.of(0, 1, 0, 0, 0, 0, 5, 1))).sw).toBe(SW_WRONG_LENGTH);
    expect((await send(h, Uint8Array.of(0, 3, 0, 0, 0, 0, 0, 0))).sw).toBe(SW_WRONG_LENGTH);
    expect((await send(h, apdu(0x01, 0, new Uint8Array(63)))).sw).toBe(SW_WRONG_LENGTH);
    expect((await send(h, apdu(0x02, 0x03, new Uint8Array(64)))).sw).toBe(SW_WRONG_LENGTH);
    expect((await send(h, apdu(0x02, 0x03, Buffer.concat([new Uint8Array(64), Uint8Array.of(10), new Uint8Array(3)])))).sw).toBe(SW_WRONG_LENGTH);
  });

  it('CTAP2 ↔ U2F (§10): a U2F registration works with getAssertion, a CTAP2 ES256 credential with U2F', async () => {
    const h = await makeHarness();
    const rpId = 'u2f.example';
    const app = sha256(rpId);
    const reg = await send(h, apdu(0x01, 0, Buffer.concat([sha256('c'), app])));
    const { keyHandle, publicKey } = parseRegister(reg.data);
    const cdh = sha256('ga');
    const ga = await ctap(h, 0x02, m([[1, rpId], [2, cdh], [3, [m([['id', keyHandle], ['type', 'public-key']])]]]));
    expect(ga.status).toBe(0);
    const authData = (ga.body as CborMap).get(2) as Uint8Array;
    expect(verify('sha256', Buffer.concat([authData, cdh]), p256FromRaw(publicKey), (ga.body as CborMap).get(3) as Uint8Array)).toBe(true);

    const mc = await ctap(h, 0x01, mcParams({ rpId }));
    const id = parseAuthData((mc.body as CborMap).get(2) as Uint8Array).credentialId as Uint8Array;
    const auth = await send(h, apdu(0x02, 0x03, Buffer.concat([sha256('c'), app, Uint8Array.of(id.length), id])));
    expect(auth.sw).toBe(SW_NO_ERROR);
  });
});
