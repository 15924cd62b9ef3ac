/**
 * The sample relying party of `keytunnel demo`: an in-memory WebAuthn server built on @simplewebauthn/server
 * (registration and authentication ceremonies, WebAuthn L2 §7.1 / §7.2, verified by that library exactly as a real
 * website would). One user, credentials kept in memory, challenges remembered per ceremony.
 *
 * @simplewebauthn/server is a devDependency (`npm ci` installs it); the demo command imports this module lazily so
 * the rest of the CLI works without dev dependencies.
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

/** COSE algorithm ids the demo RP accepts (RFC 9053): ES256 and EdDSA, what the soft authenticator makes. */
const SUPPORTED_ALGORITHMS = [-7, -8];

export interface RegisteredCredential {
  readonly credential: WebAuthnCredential;
  readonly fmt: string;
  readonly aaguid: string;
}

export class DemoRelyingParty {
  private readonly credentials = new Map<string, WebAuthnCredential>();
  private registrationChallenge: string | null = null;
  private authenticationChallenge: string | null = null;

  constructor(
    readonly rpID = 'localhost',
    readonly rpName = 'keytunnel demo RP',
    readonly origin = 'http://localhost:8080',
  ) {}

  async registrationOptions(userName: string): Promise<PublicKeyCredentialCreationOptionsJSON> {
    const options = await generateRegistrationOptions({
      rpName: this.rpName,
      rpID: this.rpID,
      userName,
      userDisplayName: userName,
      attestationType: 'direct',
      supportedAlgorithmIDs: SUPPORTED_ALGORITHMS,
      authenticatorSelection: { residentKey: 'discouraged', userVerification: 'discouraged' },
      excludeCredentials: [...this.credentials.values()].map((c) => ({ id: c.id })),
    });
    this.registrationChallenge = options.challenge;
    return options;
  }

  async verifyRegistration(response: RegistrationResponseJSON): Promise<RegisteredCredential> {
    const expectedChallenge = this.takeChallenge('registration');
    const result = await verifyRegistrationResponse({
      response,
      expectedChallenge,
      expectedOrigin: this.origin,
      expectedRPID: this.rpID,
      requireUserVerification: false,
      supportedAlgorithmIDs: SUPPORTED_ALGORITHMS,
    });
    if (!result.verified) throw new Error('registration was not verified');
    const info = result.registrationInfo;
    this.credentials.set(info.credential.id, info.credential);
    return { credential: info.credential, fmt: info.fmt, aaguid: info.aaguid };
  }

  async authenticationOptions(): Promise<PublicKeyCredentialRequestOptionsJSON> {
    const options = await generateAuthenticationOptions({
      rpID: this.rpID,
      userVerification: 'discouraged',
      allowCredentials: [...this.credentials.values()].map((c) => ({ id: c.id })),
    });
    this.authenticationChallenge = options.challenge;
    return options;
  }

  /** Verifies the assertion and stores the new signature counter; answers it. */
  async verifyAuthentication(response: AuthenticationResponseJSON): Promise<{ newCounter: number }> {
    const expectedChallenge = this.takeChallenge('authentication');
    const credential = this.credentials.get(response.id);
    if (credential === undefined) throw new Error(`unknown credential ${response.id}`);
    const result = await verifyAuthenticationResponse({
      response,
      expectedChallenge,
      expectedOrigin: this.origin,
      expectedRPID: this.rpID,
      credential,
      requireUserVerification: false,
    });
    if (!result.verified) throw new Error('authentication was not verified');
    this.credentials.set(credential.id, { ...credential, counter: result.authenticationInfo.newCounter });
    return { newCounter: result.authenticationInfo.newCounter };
  }

  private takeChallenge(kind: 'registration' | 'authentication'): string {
    const challenge = kind === 'registration' ? this.registrationChallenge : this.authenticationChallenge;
    if (challenge === null) throw new Error(`no ${kind} ceremony in progress`);
    if (kind === 'registration') this.registrationChallenge = null;
    else this.authenticationChallenge = null;
    return challenge;
  }
}
