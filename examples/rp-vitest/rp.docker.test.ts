/**
 * The same relying party against the keytunnel container (keytunnel/testcontainers): the image built with
 * `docker build -t keytunnel .` (KEYTUNNEL_IMAGE names another tag). testcontainers' reaper is off
 * (TESTCONTAINERS_RYUK_DISABLED=true where its image cannot be pulled), so afterAll stops the container.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KeytunnelContainer, type StartedKeytunnelContainer } from 'keytunnel/testcontainers';
import { WebAuthnTestClient } from 'keytunnel/testing';
import { RelyingParty } from './rp.ts';

const config = { rpID: 'example.com', rpName: 'Example', origin: 'https://example.com' };

let container: StartedKeytunnelContainer;
let browser: WebAuthnTestClient;

beforeAll(async () => {
  // withHostNetwork(): CI runners without a bridge network. Drop it to publish the device port instead.
  container = await new KeytunnelContainer(process.env.KEYTUNNEL_IMAGE ?? 'keytunnel:latest').withHostNetwork().start();
  browser = new WebAuthnTestClient({ device: container.getDevice(), origin: config.origin });
});
afterAll(async () => {
  await browser?.close();
  await container?.stop();
});

describe('passkey sign-up and sign-in (keytunnel container)', () => {
  it('registers a passkey and signs in with it', async () => {
    const rp = new RelyingParty(config);
    await rp.finishRegistration('dave', await browser.register(await rp.startRegistration('dave')));
    const { options, ceremony } = await rp.startLogin();
    expect(await rp.finishLogin(ceremony, await browser.authenticate(options))).toBe('dave');
  });

  it('a response made for another origin fails verification', async () => {
    const rp = new RelyingParty(config);
    const phishing = new WebAuthnTestClient({ device: container.getDevice(), origin: 'https://login.evil.example.com' });
    try {
      await expect(rp.finishRegistration('erin', await phishing.register(await rp.startRegistration('erin')))).rejects.toThrow(/origin/i);
    } finally {
      await phishing.close();
    }
  });
});
