/**
 * Relying-party interop: registration and authentication responses produced by the soft authenticator are
 * verified by @simplewebauthn/server exactly as a relying party would (clientDataJSON → hash → CTAP command →
 * RegistrationResponseJSON / AuthenticationResponseJSON).
 */
import { verifyAuthenticationResponse, verifyRegistrationResponse } from '@simplewebauthn/server';
import { describe, expect, it } from 'vitest';
import { encode, type CborMap } from '../../../protocol/cbor.ts';
import { ctap, m, makeHarness, parseAuthData, PlatformPin, sha256, type Harness } from './helpers.ts';

const RP = 'login.example.org';
const ORIGIN = `https://${RP}`;
const b64u = (b: Uint8Array) => Buffer.from(b).toString('base64url');

function clientData(type: 'webauthn.create' | 'webauthn.get', challenge: string): Buffer {
  return Buffer.from(JSON.stringify({ type, challenge, origin: ORIGIN, crossOrigin: false }));
}

async function register(h: Harness, alg: number, opts: { rk?: boolean; pinToken?: { pin: PlatformPin; token: Uint8Array } } = {}) {
  const challenge = b64u(sha256(`reg-${alg}-${Math.random()}`));
  const cdj = clientData('webauthn.create', challenge);
  const cdh = sha256(cdj);
  const params = m([
    [1, cdh],
    [2, m([['id', RP], ['name', 'Example']])],
    [3, m([['id', Uint8Array.of(1, 2, 3, 4)], ['name', 'alice@example.org'], ['displayName', 'Alice']])],
    [4, [m([['alg', alg], ['type', 'public-key']])]],
  ]);
  if (opts.rk) params.set(7, m([['rk', true]]));
  if (opts.pinToken) {
    params.set(8, opts.pinToken.pin.authenticate(opts.pinToken.token, cdh));
    params.set(9, opts.pinToken.pin.protocol);
  }
  const r = await ctap(h, 0x01, params);
  expect(r.status).toBe(0);
  const body = r.body as CborMap;
  const attestationObject = encode(m([['fmt', body.get(1) as string], ['attStmt', body.get(3) as CborMap], ['authData', body.get(2) as Uint8Array]]));
  const credentialId = parseAuthData(body.get(2) as Uint8Array).credentialId as Uint8Array;
  const verification = await verifyRegistrationResponse({
    response: {
      id: b64u(credentialId),
      rawId: b64u(credentialId),
      type: 'public-key',
      response: { clientDataJSON: b64u(cdj), attestationObject: b64u(attestationObject), transports: ['usb'] },
      clientExtensionResults: {},
    },
    expectedChallenge: challenge,
    expectedOrigin: ORIGIN,
    expectedRPID: RP,
    requireUserVerification: opts.pinToken !== undefined,
    supportedAlgorithmIDs: [-7, -8],
  });
  return { verification, credentialId };
}

async function authenticate(h: Harness, reg: Awaited<ReturnType<typeof register>>, counter: number, allow = true) {
  const challenge = b64u(sha256(`auth-${Math.random()}`));
  const cdj = clientData('webauthn.get', challenge);
  const params = m([[1, RP], [2, sha256(cdj)]]);
  if (allow) params.set(3, [m([['id', reg.credentialId], ['type', 'public-key']])]);
  const r = await ctap(h, 0x02, params);
  expect(r.status).toBe(0);
  const body = r.body as CborMap;
  const info = reg.verification.registrationInfo;
  if (!info) throw new Error('no registration info');
  const user = body.get(4) as CborMap | undefined;
  return verifyAuthenticationResponse({
    response: {
      id: b64u(reg.credentialId),
      rawId: b64u(reg.credentialId),
      type: 'public-key',
      response: {
        clientDataJSON: b64u(cdj),
        authenticatorData: b64u(body.get(2) as Uint8Array),
        signature: b64u(body.get(3) as Uint8Array),
        userHandle: user ? b64u(user.get('id') as Uint8Array) : undefined,
      },
      clientExtensionResults: {},
    },
    expectedChallenge: challenge,
    expectedOrigin: ORIGIN,
    expectedRPID: RP,
    credential: { id: info.credential.id, publicKey: info.credential.publicKey, counter },
    requireUserVerification: false,
  });
}

describe('relying-party verification with @simplewebauthn/server', () => {
  for (const [name, alg] of [['ES256', -7], ['EdDSA', -8]] as const) {
    it(`${name}: packed self attestation registration and two authentications verify`, async () => {
      const h = await makeHarness();
      const reg = await register(h, alg);
      expect(reg.verification.verified).toBe(true);
      const info = reg.verification.registrationInfo;
      expect(info?.fmt).toBe('packed');
      expect(info?.aaguid).toBe('70829c58-064f-4078-b3c7-8dc3b4c185b1');
      expect(info?.credential.id).toBe(b64u(reg.credentialId));
      const first = await authenticate(h, reg, info?.credential.counter ?? 0);
      expect(first.verified).toBe(true);
      const second = await authenticate(h, reg, first.authenticationInfo.newCounter);
      expect(second.verified).toBe(true);
      expect(second.authenticationInfo.newCounter).toBeGreaterThan(first.authenticationInfo.newCounter);
    });
  }

  it('discoverable credential with PIN (UV) registration and usernameless authentication verify', async () => {
    const h = await makeHarness();
    const pin = new PlatformPin(h, 2);
    expect(await pin.setPin('4321')).toBe(0);
    const token = (await pin.token('4321', 0x01, RP)).token as Uint8Array;
    const reg = await register(h, -7, { rk: true, pinToken: { pin, token } });
    expect(reg.verification.verified).toBe(true);
    expect(reg.verification.registrationInfo?.userVerified).toBe(true);
    const auth = await authenticate(h, reg, 0, false);
    expect(auth.verified).toBe(true);
  });
});
