/**
 * keytunnel/testing end to end: WebAuthnTestClient over CTAPHID (loopback face) to the soft authenticator that
 * startSoftAuthenticator runs in this process, every ceremony verified by @simplewebauthn/server exactly as a
 * relying party would verify it.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  generateAuthenticationOptions,
  generateRegistrationOptions,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
  type WebAuthnCredential,
} from '@simplewebauthn/server';
import { afterEach, describe, expect, it } from 'vitest';
import { startSoftAuthenticator, WebAuthnError, WebAuthnTestClient, type SoftAuthenticatorHandle } from '../../testing/index.ts';

const RP_ID = 'example.com';
const ORIGIN = 'https://login.example.com';
const PIN = '1234';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(options: Parameters<typeof startSoftAuthenticator>[0] = {}, origin = ORIGIN): Promise<{ soft: SoftAuthenticatorHandle; client: WebAuthnTestClient }> {
  const soft = await startSoftAuthenticator(options);
  const client = new WebAuthnTestClient({ device: soft.device, origin });
  cleanups.push(() => soft.close(), () => client.close());
  return { soft, client };
}

type Uv = 'required' | 'preferred' | 'discouraged';

async function registerAndVerify(
  client: WebAuthnTestClient,
  o: { alg: number; residentKey: 'required' | 'discouraged'; uv: Uv; pin?: string; userName?: string; exclude?: string[] },
) {
  const options = await generateRegistrationOptions({
    rpName: 'Example',
    rpID: RP_ID,
    userName: o.userName ?? 'alice',
    supportedAlgorithmIDs: [o.alg],
    attestationType: 'direct',
    authenticatorSelection: { residentKey: o.residentKey, userVerification: o.uv },
    excludeCredentials: (o.exclude ?? []).map((id) => ({ id })),
    extensions: { credProps: true },
  });
  const response = await client.register(options, { pin: o.pin });
  const result = await verifyRegistrationResponse({
    response,
    expectedChallenge: options.challenge,
    expectedOrigin: ORIGIN,
    expectedRPID: RP_ID,
    requireUserVerification: o.uv === 'required',
    supportedAlgorithmIDs: [o.alg],
  });
  expect(result.verified).toBe(true);
  return { response, info: result.registrationInfo!, userId: options.user.id };
}

async function authenticateAndVerify(client: WebAuthnTestClient, credential: WebAuthnCredential, o: { uv: Uv; pin?: string; allow: boolean }) {
  const options = await generateAuthenticationOptions({
    rpID: RP_ID,
    userVerification: o.uv,
    allowCredentials: o.allow ? [{ id: credential.id }] : [],
  });
  const response = await client.authenticate(options, { pin: o.pin });
  const result = await verifyAuthenticationResponse({
    response,
    expectedChallenge: options.challenge,
    expectedOrigin: ORIGIN,
    expectedRPID: RP_ID,
    credential,
    requireUserVerification: o.uv === 'required',
  });
  expect(result.verified).toBe(true);
  return { response, info: result.authenticationInfo };
}

describe('WebAuthnTestClient against @simplewebauthn/server', () => {
  const cases = [
    { alg: -7, name: 'ES256' },
    { alg: -8, name: 'EdDSA' },
  ] as const;
  for (const { alg, name } of cases) {
    for (const residentKey of ['discouraged', 'required'] as const) {
      for (const withPin of [false, true]) {
        const uv: Uv = withPin ? 'required' : 'discouraged';
        it(`${name}, ${residentKey === 'required' ? 'resident' : 'non-resident'}, ${withPin ? 'PIN (userVerification required)' : 'no PIN'}`, async () => {
          const { client } = await setup(withPin ? { pin: PIN } : {});
          const pin = withPin ? PIN : undefined;
          const reg = await registerAndVerify(client, { alg, residentKey, uv, pin });
          expect(reg.response.response.publicKeyAlgorithm).toBe(alg);
          expect(reg.info.fmt).toBe('packed');
          expect(reg.info.userVerified).toBe(withPin);
          expect(reg.response.clientExtensionResults.credProps).toEqual({ rk: residentKey === 'required' });
          // A resident credential signs in from an empty allow list (username-less), with the user handle.
          const auth = await authenticateAndVerify(client, reg.info.credential, { uv, pin, allow: residentKey === 'discouraged' });
          expect(auth.info.userVerified).toBe(withPin);
          expect(auth.response.id).toBe(reg.info.credential.id);
          if (residentKey === 'required') expect(auth.response.response.userHandle).toBe(reg.userId);
          expect(auth.info.newCounter).toBeGreaterThan(reg.info.credential.counter);
        });
      }
    }
  }

  it('excludeCredentials naming a credential on the authenticator is InvalidStateError', async () => {
    const { client } = await setup();
    const reg = await registerAndVerify(client, { alg: -7, residentKey: 'discouraged', uv: 'discouraged' });
    const err = await registerAndVerify(client, { alg: -7, residentKey: 'discouraged', uv: 'discouraged', exclude: [reg.info.credential.id] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DOMException);
    expect((err as WebAuthnError).name).toBe('InvalidStateError');
    expect((err as WebAuthnError).ctapStatus).toBe(0x19);
  });

  it('an RP ID that is not the origin\'s domain (or a parent of it) is SecurityError, before the authenticator is asked', async () => {
    const { soft } = await setup();
    const evil = new WebAuthnTestClient({ device: soft.device, origin: 'https://login.example.org' });
    cleanups.push(() => evil.close());
    const options = await generateRegistrationOptions({ rpName: 'Example', rpID: RP_ID, userName: 'alice' });
    await expect(evil.register(options)).rejects.toMatchObject({ name: 'SecurityError' });
    const insecure = new WebAuthnTestClient({ device: soft.device, origin: 'http://login.example.com' });
    await expect(insecure.register(options)).rejects.toMatchObject({ name: 'SecurityError' });
    // A registrable parent domain is fine; the public suffix alone is not.
    const ok = new WebAuthnTestClient({ device: soft.device, origin: 'https://a.b.example.com' });
    cleanups.push(() => ok.close());
    await expect(ok.register(options)).resolves.toMatchObject({ type: 'public-key' });
    await expect(ok.register({ ...options, rp: { ...options.rp, id: 'com' } })).rejects.toMatchObject({ name: 'SecurityError' });
  });

  it('userVerification required: no PIN given is NotAllowedError, a wrong PIN NotAllowedError, no PIN set ConstraintError', async () => {
    const { client } = await setup({ pin: PIN });
    const options = await generateRegistrationOptions({ rpName: 'Example', rpID: RP_ID, userName: 'alice', authenticatorSelection: { userVerification: 'required' } });
    await expect(client.register(options)).rejects.toMatchObject({ name: 'NotAllowedError' });
    await expect(client.register(options, { pin: '9999' })).rejects.toMatchObject({ name: 'NotAllowedError', ctapStatus: 0x31 });
    const { client: noPin } = await setup();
    await expect(noPin.register(options, { pin: PIN })).rejects.toMatchObject({ name: 'ConstraintError' });
  });

  it('a user who refuses or lets the prompt time out gives NotAllowedError', async () => {
    const { client } = await setup({ presence: (r) => (r.action === 'makeCredential' ? false : 'timeout') });
    const options = await generateRegistrationOptions({ rpName: 'Example', rpID: RP_ID, userName: 'alice' });
    await expect(client.register(options)).rejects.toMatchObject({ name: 'NotAllowedError', ctapStatus: 0x27 });
  });

  it('an unknown credential in allowCredentials is NotAllowedError', async () => {
    const { client } = await setup();
    const options = await generateAuthenticationOptions({ rpID: RP_ID, allowCredentials: [{ id: 'AAAAAAAAAAAAAAAAAAAAAA' }] });
    await expect(client.authenticate(options)).rejects.toMatchObject({ name: 'NotAllowedError', ctapStatus: 0x2e });
  });

  it('several discoverable accounts: the chooser picks one (default: the most recent)', async () => {
    const { client } = await setup();
    const alice = await registerAndVerify(client, { alg: -7, residentKey: 'required', uv: 'discouraged', userName: 'alice' });
    const bob = await registerAndVerify(client, { alg: -8, residentKey: 'required', uv: 'discouraged', userName: 'bob' });
    const options = await generateAuthenticationOptions({ rpID: RP_ID, userVerification: 'discouraged' });
    const seen: string[][] = [];
    const chosen = await client.authenticate(options, {
      selectAccount: (accounts) => {
        seen.push(accounts.map((a) => a.credentialId));
        return accounts.findIndex((a) => a.userHandle === alice.userId);
      },
    });
    expect(seen).toEqual([[bob.info.credential.id, alice.info.credential.id]]);
    expect(chosen.id).toBe(alice.info.credential.id);
    const verified = await verifyAuthenticationResponse({
      response: chosen,
      expectedChallenge: options.challenge,
      expectedOrigin: ORIGIN,
      expectedRPID: RP_ID,
      credential: alice.info.credential,
      requireUserVerification: false,
    });
    expect(verified.verified).toBe(true);
    const options2 = await generateAuthenticationOptions({ rpID: RP_ID, userVerification: 'discouraged' });
    expect((await client.authenticate(options2)).id).toBe(bob.info.credential.id);
  });

  it('prf: enabled at registration, the same secret for the same input, another for another input', async () => {
    const { client } = await setup();
    const options = await generateRegistrationOptions({ rpName: 'Example', rpID: RP_ID, userName: 'alice', extensions: { prf: {} } });
    const reg = await client.register(options);
    expect(reg.clientExtensionResults.prf).toEqual({ enabled: true });
    const get = async (first: string, second?: string) =>
      client.authenticate({
        challenge: 'AAAA',
        rpId: RP_ID,
        allowCredentials: [{ id: reg.id, type: 'public-key' }],
        extensions: { prf: { eval: second === undefined ? { first } : { first, second } } },
      });
    const a = (await get('c2FsdC1h')).clientExtensionResults.prf?.results;
    const b = (await get('c2FsdC1h', 'c2FsdC1i')).clientExtensionResults.prf?.results;
    expect(a?.first).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(b?.first).toBe(a?.first);
    expect(b?.second).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(b?.second).not.toBe(a?.first);
  });

  it('stateDir keeps credentials across restarts', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'keytunnel-testing-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const first = await startSoftAuthenticator({ stateDir: dir });
    const client1 = new WebAuthnTestClient({ device: first.device, origin: ORIGIN });
    const reg = await registerAndVerify(client1, { alg: -7, residentKey: 'required', uv: 'discouraged' });
    await client1.close();
    await first.close();
    const { client } = await setup({ stateDir: dir });
    await authenticateAndVerify(client, reg.info.credential, { uv: 'discouraged', allow: false });
  });

  it('hmacCreateSecret / hmacGetSecret: 32-byte outputs, stable per salt; credProps reports residentKey preferred as discoverable', async () => {
    const { client } = await setup();
    const options = await generateRegistrationOptions({
      rpName: 'Example',
      rpID: RP_ID,
      userName: 'alice',
      authenticatorSelection: { residentKey: 'preferred', userVerification: 'discouraged' },
      extensions: { hmacCreateSecret: true, credProps: true },
    });
    const reg = await client.register(options);
    expect(reg.clientExtensionResults).toEqual({ hmacCreateSecret: true, credProps: { rk: true } });
    const salt1 = Buffer.alloc(32, 1).toString('base64url');
    const salt2 = Buffer.alloc(32, 2).toString('base64url');
    const get = async (ext: { salt1: string; salt2?: string }) =>
      (await client.authenticate({ challenge: 'AAAA', rpId: RP_ID, userVerification: 'discouraged', extensions: { hmacGetSecret: ext } })).clientExtensionResults.hmacGetSecret;
    const one = await get({ salt1 });
    const two = await get({ salt1, salt2 });
    expect(Buffer.from(one!.output1, 'base64url')).toHaveLength(32);
    expect(two!.output1).toBe(one!.output1);
    expect(two!.output2).not.toBe(one!.output1);
  });
});

describe('origin and RP ID rules (WebAuthn L3 §5.1.3)', () => {
  it('accepts https origins and http://localhost; refuses IP addresses, other schemes and non-origins', async () => {
    const { parseOrigin, checkRpId } = await import('../../testing/origin.ts');
    expect(parseOrigin('https://example.com').effectiveDomain).toBe('example.com');
    expect(parseOrigin('http://localhost:8080').effectiveDomain).toBe('localhost');
    for (const bad of ['http://example.com', 'https://127.0.0.1', 'https://[::1]', 'https://example.com/login', 'ftp://example.com', 'nonsense']) {
      expect(() => parseOrigin(bad), bad).toThrow(expect.objectContaining({ name: 'SecurityError' }));
    }
    const origin = parseOrigin('https://a.b.example.co.uk');
    expect(checkRpId(origin, undefined)).toBe('a.b.example.co.uk');
    expect(checkRpId(origin, 'example.co.uk')).toBe('example.co.uk');
    expect(() => checkRpId(origin, 'uk')).toThrow(expect.objectContaining({ name: 'SecurityError' }));
    expect(() => checkRpId(origin, 'ample.co.uk')).toThrow(expect.objectContaining({ name: 'SecurityError' }));
    expect(() => checkRpId(origin, 'other.example.co.uk')).toThrow(expect.objectContaining({ name: 'SecurityError' }));
  });
});
