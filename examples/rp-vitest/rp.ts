/**
 * A tiny relying party: the server half of a passkey login, as an application would write it with
 * @simplewebauthn/server. Users and credentials live in memory; one pending challenge per user and ceremony.
 * Nothing here knows about keytunnel: the tests next to it drive it with keytunnel/testing's WebAuthnTestClient.
 */
import {
  generateAuthenticationOptions,
  generateRegistrationOptions,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
  type AuthenticationResponseJSON,
  type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON,
  type RegistrationResponseJSON,
  type WebAuthnCredential,
} from '@simplewebauthn/server';

export interface RelyingPartyConfig {
  readonly rpID: string;
  readonly rpName: string;
  /** The origin the login page is served from. */
  readonly origin: string;
}

interface User {
  readonly name: string;
  readonly credentials: WebAuthnCredential[];
  registrationChallenge?: string;
  authenticationChallenge?: string;
}

export class RelyingParty {
  private readonly users = new Map<string, User>();

  constructor(readonly config: RelyingPartyConfig) {}

  private user(name: string): User {
    let user = this.users.get(name);
    if (user === undefined) {
      user = { name, credentials: [] };
      this.users.set(name, user);
    }
    return user;
  }

  async startRegistration(userName: string, opts: { userVerification?: 'required' | 'preferred' | 'discouraged' } = {}): Promise<PublicKeyCredentialCreationOptionsJSON> {
    const user = this.user(userName);
    const options = await generateRegistrationOptions({
      rpName: this.config.rpName,
      rpID: this.config.rpID,
      userName,
      authenticatorSelection: { residentKey: 'required', userVerification: opts.userVerification ?? 'preferred' },
      excludeCredentials: user.credentials.map((c) => ({ id: c.id })),
    });
    user.registrationChallenge = options.challenge;
    return options;
  }

  /** Verifies and stores the new credential; throws when the response does not verify. */
  async finishRegistration(userName: string, response: RegistrationResponseJSON, opts: { requireUserVerification?: boolean } = {}): Promise<void> {
    const user = this.user(userName);
    const expectedChallenge = user.registrationChallenge;
    user.registrationChallenge = undefined;
    if (expectedChallenge === undefined) throw new Error('no registration in progress');
    const result = await verifyRegistrationResponse({
      response,
      expectedChallenge,
      expectedOrigin: this.config.origin,
      expectedRPID: this.config.rpID,
      requireUserVerification: opts.requireUserVerification ?? false,
    });
    if (!result.verified) throw new Error('registration not verified');
    user.credentials.push(result.registrationInfo.credential);
  }

  /** Username-less sign-in: the authenticator offers its discoverable credential for this RP. */
  async startLogin(): Promise<{ options: PublicKeyCredentialRequestOptionsJSON; ceremony: string }> {
    const options = await generateAuthenticationOptions({ rpID: this.config.rpID, userVerification: 'preferred' });
    return { options, ceremony: options.challenge };
  }

  /** Verifies the assertion against the stored credential; answers the signed-in user's name. */
  async finishLogin(ceremony: string, response: AuthenticationResponseJSON): Promise<string> {
    for (const user of this.users.values()) {
      const credential = user.credentials.find((c) => c.id === response.id);
      if (credential === undefined) continue;
      const result = await verifyAuthenticationResponse({
        response,
        expectedChallenge: ceremony,
        expectedOrigin: this.config.origin,
        expectedRPID: this.config.rpID,
        credential,
        requireUserVerification: false,
      });
      if (!result.verified) throw new Error('authentication not verified');
      credential.counter = result.authenticationInfo.newCounter;
      return user.name;
    }
    throw new Error('unknown credential');
  }
}
