/**
 * The relying party's tests with an in-process authenticator: keytunnel/testing starts the soft authenticator on
 * a loopback CTAPHID device in this process, and WebAuthnTestClient plays the browser.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSoftAuthenticator, WebAuthnTestClient, type SoftAuthenticatorHandle } from 'keytunnel/testing';
import { RelyingParty } from './rp.ts';

const config = { rpID: 'example.com', rpName: 'Example', origin: 'https://example.com' };

let authenticator: SoftAuthenticatorHandle;
let browser: WebAuthnTestClient;

beforeAll(async () => {
  authenticator = await startSoftAuthenticator({ pin: '246810' });
  browser = new WebAuthnTestClient({ device: authenticator.device, origin: config.origin });
});
afterAll(async () => {
  await browser.close();
  await authenticator.close();
});

describe('passkey sign-up and sign-in (in-process authenticator)', () => {
  it('registers a passkey and signs in with it, user verified by PIN', async () => {
    const rp = new RelyingParty(config);
    await rp.finishRegistration('alice', await browser.register(await rp.startRegistration('alice', { userVerification: 'required' }), { pin: '246810' }), {
      requireUserVerification: true,
    });
    const { options, ceremony } = await rp.startLogin();
    expect(await rp.finishLogin(ceremony, await browser.authenticate(options, { pin: '246810' }))).toBe('alice');
  });

  it('refuses a second passkey for the same user on the same authenticator (InvalidStateError)', async () => {
    const rp = new RelyingParty(config);
    await rp.finishRegistration('bob', await browser.register(await rp.startRegistration('bob'), { pin: '246810' }));
    await expect(browser.register(await rp.startRegistration('bob'), { pin: '246810' })).rejects.toMatchObject({ name: 'InvalidStateError' });
  });

  it('a response made for another origin fails verification', async () => {
    const rp = new RelyingParty(config);
    // A look-alike page on a subdomain: the browser allows the RP ID (a parent domain) but clientDataJSON carries
    // the page's origin, which the RP does not accept.
    const phishing = new WebAuthnTestClient({ device: authenticator.device, origin: 'https://login.evil.example.com' });
    try {
      const response = await phishing.register(await rp.startRegistration('carol'), { pin: '246810' });
      await expect(rp.finishRegistration('carol', response)).rejects.toThrow(/origin/i);
    } finally {
      await phishing.close();
    }
    // A page on an unrelated domain cannot even ask for this RP ID: the browser says SecurityError.
    const unrelated = new WebAuthnTestClient({ device: authenticator.device, origin: 'https://example.net' });
    await expect(unrelated.register(await rp.startRegistration('carol'))).rejects.toMatchObject({ name: 'SecurityError' });
  });
});
