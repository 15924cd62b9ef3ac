/**
 * keytunnel/testing: real WebAuthn ceremonies in a relying party's tests, without a browser or hardware.
 *
 *   const authenticator = await startSoftAuthenticator();              // a CTAPHID device on 127.0.0.1
 *   const client = new WebAuthnTestClient({ device: authenticator.device, origin: 'https://example.com' });
 *   const registration = await client.register(await rp.registrationOptions());   // RegistrationResponseJSON
 *   const assertion = await client.authenticate(await rp.authenticationOptions()); // AuthenticationResponseJSON
 *   await client.close(); await authenticator.close();
 */
export { WebAuthnTestClient, type Account, type AccountChooser, type CeremonyOptions, type CtapCommandPort, type WebAuthnTestClientOptions } from './webauthn-client.ts';
export {
  startSoftAuthenticator,
  TESTING_PASSPHRASE,
  type PresenceCallback,
  type PresenceDecision,
  type PresenceRequest,
  type SoftAuthenticatorHandle,
  type StartSoftAuthenticatorOptions,
} from './soft-authenticator.ts';
export { WebAuthnError, type WebAuthnErrorName } from './errors.ts';
export type { AuthenticatorInfo } from './ctap.ts';
export type * from './types.ts';
