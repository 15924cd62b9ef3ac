/**
 * `WebAuthnTestClient`: what a browser does between a relying party's JSON options and a CTAP2 authenticator, for
 * tests. `register()` is navigator.credentials.create() (WebAuthn L3 §5.1.3) and `authenticate()` is
 * navigator.credentials.get() (§5.1.4), each answered in the L3 JSON form (§5.1.8 toJSON) that RP servers such as
 * @simplewebauthn/server verify directly:
 *
 *   origin / RP ID check (SecurityError) → clientDataJSON (§5.8.1) → authenticatorGetInfo
 *   (CTAP 2.1 PS 2021-06-15 §6.4) → PIN/UV: a pinUvAuthToken from the PIN the test passes (§6.5.5.7) →
 *   authenticatorMakeCredential (§6.1) /
 *   authenticatorGetAssertion (§6.2, + getNextAssertion §6.3 and an account choice when several credentials match)
 *   → extensions (credProps, prf / hmac-secret, credProtect, credBlob) → the JSON response.
 *
 * It talks to a CTAPHID device over the loopback face (`device: { host, port }`, from `startSoftAuthenticator()`
 * or `KeytunnelContainer.getDevice()`), or to any CTAP2 command port. Errors are WebAuthnErrors (DOMExceptions)
 * named as a browser names them: NotAllowedError, InvalidStateError (an excluded credential), SecurityError,
 * NotSupportedError, ConstraintError.
 */
import { CtaphidClient } from '../agent/authenticators/hardware/ctaphid-client.ts';
import { LoopbackTransport } from '../agent/authenticators/hardware/loopback-transport.ts';
import { encode, isCborMap, type CborMap, type CborValue } from '../protocol/cbor.ts';
import {
  CTAP2_GET_ASSERTION,
  CTAP2_GET_NEXT_ASSERTION,
  CTAP2_MAKE_CREDENTIAL,
  GET_ASSERTION_RESP_NUMBER_OF_CREDENTIALS,
} from '../protocol/ctap2.ts';
import { PERMISSION_GA, PERMISSION_MC } from '../protocol/client-pin.ts';
import { coseToSpki, parseAuthData } from './auth-data.ts';
import { ctapCommand, getInfo, isBytes, need, type AuthenticatorInfo, type CtapCommandPort } from './ctap.ts';
import { base64url, fromBase64url, sha256 } from './encoding.ts';
import { WebAuthnError } from './errors.ts';
import {
  authenticationExtensionInputs,
  authenticationExtensionResults,
  HMAC_SECRET_EXTENSION,
  prepareHmacSecret,
  registrationExtensionInputs,
  registrationExtensionResults,
  requestedSalts,
  type PreparedHmacSecret,
} from './extensions.ts';
import { checkRpId, collectedClientData, parseOrigin } from './origin.ts';
import { authenticate as pinAuthenticate, pinUvAuthToken, setPin, type PinUvAuthToken } from './pin-uv.ts';
import type {
  AuthenticationResponseJSON,
  DeviceAddress,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialDescriptorJSON,
  PublicKeyCredentialRequestOptionsJSON,
  RegistrationResponseJSON,
  UserVerificationRequirement,
} from './types.ts';

export type { CtapCommandPort } from './ctap.ts';

/** One account the authenticator offered (a discoverable credential), as a browser's account picker shows it. */
export interface Account {
  readonly credentialId: string;
  readonly userHandle?: string;
  readonly name?: string;
  readonly displayName?: string;
}

/** Picks one of several accounts (index into the list); the default takes the first, the most recently created. */
export type AccountChooser = (accounts: readonly Account[]) => number | Promise<number>;

export interface WebAuthnTestClientOptions {
  /** The origin the client acts for ("https://login.example.com"; http only for localhost). */
  readonly origin: string;
  /** The CTAPHID device's loopback face. */
  readonly device?: DeviceAddress;
  /** Instead of `device`: any CTAP2 command port (command byte + CBOR in, status + CBOR out). */
  readonly ctap?: CtapCommandPort;
  /** Account choice when several discoverable credentials match (per call: `authenticate(..., { selectAccount })`). */
  readonly selectAccount?: AccountChooser;
  /** Timeout of each authenticator command when the options carry none (default 30 s). */
  readonly timeoutMs?: number;
}

export interface CeremonyOptions {
  /** The PIN a user would type; used when user verification is required or preferred and the authenticator has a PIN. */
  readonly pin?: string;
  readonly selectAccount?: AccountChooser;
}

const DEFAULT_TIMEOUT_MS = 30_000;
/** §5.4.3: user.id is 1 to 64 bytes. */
const MAX_USER_ID_LENGTH = 64;
/** §5.1.3 step 10: with an empty pubKeyCredParams the client uses ES256 and RS256. */
const DEFAULT_ALGORITHMS = [-7, -257];

export class WebAuthnTestClient {
  readonly origin: string;
  private readonly device: DeviceAddress | undefined;
  private readonly port: CtapCommandPort | undefined;
  private readonly defaultChooser: AccountChooser | undefined;
  private readonly timeoutMs: number;
  private connection: Promise<CtaphidClient> | undefined;

  constructor(options: WebAuthnTestClientOptions) {
    if ((options.device === undefined) === (options.ctap === undefined)) throw new TypeError('WebAuthnTestClient needs one of device or ctap');
    this.origin = options.origin;
    this.device = options.device;
    this.port = options.ctap;
    this.defaultChooser = options.selectAccount;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /** navigator.credentials.create({ publicKey }) → RegistrationResponseJSON. */
  async register(options: PublicKeyCredentialCreationOptionsJSON, ceremony: CeremonyOptions = {}): Promise<RegistrationResponseJSON> {
    const caller = parseOrigin(this.origin);
    const rpId = checkRpId(caller, options.rp.id);
    const userId = fromBase64url(options.user.id, 'user.id');
    if (userId.length < 1 || userId.length > MAX_USER_ID_LENGTH) throw new TypeError(`user.id must be 1 to 64 bytes, got ${userId.length}`);
    fromBase64url(options.challenge, 'challenge');
    const requested = options.pubKeyCredParams.filter((p) => p.type === 'public-key').map((p) => p.alg);
    const algorithms = options.pubKeyCredParams.length === 0 ? DEFAULT_ALGORITHMS : requested;
    const timeoutMs = options.timeout ?? this.timeoutMs;

    const port = await this.ctapPort();
    const info = await getInfo(port);
    if (info.algorithms !== undefined && !algorithms.some((a) => info.algorithms!.includes(a))) {
      throw new WebAuthnError(`the authenticator supports none of the algorithms ${algorithms.join(', ')}`, 'NotSupportedError');
    }
    const residentKey = this.residentKeyWanted(options, info);
    const uv = options.authenticatorSelection?.userVerification ?? 'preferred';
    const clientData = collectedClientData('webauthn.create', options.challenge, caller);
    const clientDataHash = sha256(clientData);
    // CTAP 2.1 §6.1.2 step 6: without makeCredUvNotRqd, or for a discoverable credential, an authenticator with a
    // PIN wants a pinUvAuthParam even when the RP discouraged user verification.
    const pinNeeded = info.options.get('clientPin') === true && (residentKey || info.options.get('makeCredUvNotRqd') !== true);
    const token = await this.userVerification(port, info, uv, ceremony.pin, pinNeeded, PERMISSION_MC, rpId);

    const params: CborMap = new Map<CborValue, CborValue>([
      [0x01, clientDataHash],
      [0x02, new Map<CborValue, CborValue>([['id', rpId], ['name', options.rp.name]])],
      [
        0x03,
        new Map<CborValue, CborValue>([
          ['id', userId],
          ['name', options.user.name],
          ['displayName', options.user.displayName],
        ]),
      ],
      [0x04, algorithms.map((alg) => new Map<CborValue, CborValue>([['alg', alg], ['type', 'public-key']]))],
    ]);
    const exclude = descriptorList(options.excludeCredentials, info, 'excludeCredentials');
    if (exclude !== undefined) params.set(0x05, exclude);
    const extensions = registrationExtensionInputs(options.extensions, info);
    if (extensions !== undefined) params.set(0x06, extensions);
    if (residentKey) params.set(0x07, new Map<CborValue, CborValue>([['rk', true]]));
    if (token !== undefined) {
      params.set(0x08, pinAuthenticate(token.protocol, token.token, clientDataHash));
      params.set(0x09, token.protocol);
    }
    const answer = await ctapCommand(port, CTAP2_MAKE_CREDENTIAL, params, 'authenticatorMakeCredential', timeoutMs);
    const fmt = need(answer, 0x01, (v): v is string => typeof v === 'string', 'fmt');
    const authData = need(answer, 0x02, isBytes, 'authData');
    const attStmt = need(answer, 0x03, isCborMap, 'attStmt');
    const parsed = parseAuthData(authData);
    if (parsed.credentialId === undefined || parsed.credentialPublicKey === undefined) {
      throw new WebAuthnError('authenticatorMakeCredential: authData has no attested credential', 'UnknownError');
    }
    // §5.4.7: "none" (the default) replaces the attestation statement; the others pass it through.
    const conveyance = options.attestation ?? 'none';
    const attestation =
      conveyance === 'none'
        ? { fmt: 'none', attStmt: new Map<CborValue, CborValue>() }
        : { fmt, attStmt };
    // §6.5: the attestation object has text keys (CTAP's 1/2/3 are fmt/authData/attStmt).
    const attestationObject = encode(
      new Map<CborValue, CborValue>([
        ['fmt', attestation.fmt],
        ['attStmt', attestation.attStmt],
        ['authData', authData],
      ]),
    );
    const alg = parsed.credentialPublicKey.get(3);
    const spki = coseToSpki(parsed.credentialPublicKey);
    const id = base64url(parsed.credentialId);
    return {
      id,
      rawId: id,
      type: 'public-key',
      authenticatorAttachment: 'cross-platform',
      clientExtensionResults: registrationExtensionResults(options.extensions, parsed.extensions, residentKey),
      response: {
        clientDataJSON: base64url(clientData),
        attestationObject: base64url(attestationObject),
        authenticatorData: base64url(authData),
        transports: ['usb'],
        publicKeyAlgorithm: typeof alg === 'number' ? alg : 0,
        ...(spki !== undefined ? { publicKey: base64url(spki) } : {}),
      },
    };
  }

  /** navigator.credentials.get({ publicKey }) → AuthenticationResponseJSON. */
  async authenticate(options: PublicKeyCredentialRequestOptionsJSON, ceremony: CeremonyOptions = {}): Promise<AuthenticationResponseJSON> {
    const caller = parseOrigin(this.origin);
    const rpId = checkRpId(caller, options.rpId);
    fromBase64url(options.challenge, 'challenge');
    const timeoutMs = options.timeout ?? this.timeoutMs;
    const port = await this.ctapPort();
    const info = await getInfo(port);
    const uv = options.userVerification ?? 'preferred';
    const clientData = collectedClientData('webauthn.get', options.challenge, caller);
    const clientDataHash = sha256(clientData);
    const token = await this.userVerification(port, info, uv, ceremony.pin, false, PERMISSION_GA, rpId);

    const allowed = (options.allowCredentials ?? []).filter((c) => c.type === 'public-key');
    const params: CborMap = new Map<CborValue, CborValue>([
      [0x01, rpId],
      [0x02, clientDataHash],
    ]);
    const allowList = descriptorList(allowed, info, 'allowCredentials');
    if (allowList !== undefined) params.set(0x03, allowList);
    const extensions = authenticationExtensionInputs(options.extensions, info);
    const salts = requestedSalts(options.extensions, allowed.map((c) => c.id));
    let hmac: PreparedHmacSecret | undefined;
    if (salts !== undefined && info.extensions.includes(HMAC_SECRET_EXTENSION)) {
      hmac = await prepareHmacSecret(port, info, salts);
      extensions.set(HMAC_SECRET_EXTENSION, hmac.input);
    }
    if (extensions.size > 0) params.set(0x04, extensions);
    if (token !== undefined) {
      params.set(0x06, pinAuthenticate(token.protocol, token.token, clientDataHash));
      params.set(0x07, token.protocol);
    }

    const first = await ctapCommand(port, CTAP2_GET_ASSERTION, params, 'authenticatorGetAssertion', timeoutMs);
    const answers = [first];
    const count = first.get(GET_ASSERTION_RESP_NUMBER_OF_CREDENTIALS);
    if (typeof count === 'number' && count > 1) {
      // §6.3: the other matching credentials, one authenticatorGetNextAssertion each.
      for (let i = 1; i < count; i++) answers.push(await ctapCommand(port, CTAP2_GET_NEXT_ASSERTION, undefined, 'authenticatorGetNextAssertion', timeoutMs));
    }
    const accounts = answers.map((a) => toAccount(a, allowed));
    let chosen = 0;
    if (answers.length > 1) {
      const chooser = ceremony.selectAccount ?? this.defaultChooser;
      chosen = chooser === undefined ? 0 : await chooser(accounts);
      if (!Number.isInteger(chosen) || chosen < 0 || chosen >= answers.length) {
        throw new WebAuthnError(`selectAccount chose ${chosen} of ${answers.length} accounts`, 'NotAllowedError');
      }
    }
    const answer = answers[chosen];
    const account = accounts[chosen];
    const authData = need(answer, 0x02, isBytes, 'authData');
    const signature = need(answer, 0x03, isBytes, 'signature');
    const parsed = parseAuthData(authData);
    return {
      id: account.credentialId,
      rawId: account.credentialId,
      type: 'public-key',
      authenticatorAttachment: 'cross-platform',
      clientExtensionResults: authenticationExtensionResults(options.extensions, parsed.extensions, hmac),
      response: {
        clientDataJSON: base64url(clientData),
        authenticatorData: base64url(authData),
        signature: base64url(signature),
        ...(account.userHandle !== undefined ? { userHandle: account.userHandle } : {}),
      },
    };
  }

  /** Sets the authenticator's PIN (authenticatorClientPIN setPIN, §6.5.5.5): a fresh authenticator only. */
  async setPin(pin: string): Promise<void> {
    const port = await this.ctapPort();
    await setPin(port, await getInfo(port), pin);
  }

  /** The authenticator's getInfo (§6.4), as the client reads it. */
  async getInfo(): Promise<AuthenticatorInfo> {
    return getInfo(await this.ctapPort());
  }

  /** Closes the connection to the device (a later ceremony reconnects). */
  async close(): Promise<void> {
    const connection = this.connection;
    this.connection = undefined;
    if (connection !== undefined) await (await connection.catch(() => undefined))?.close();
  }

  // -------------------------------------------------------------------------------------------------------

  private async ctapPort(): Promise<CtapCommandPort> {
    if (this.port !== undefined) return this.port;
    const device = this.device!;
    this.connection ??= LoopbackTransport.connect(device.host, device.port).then((t) => CtaphidClient.open(t));
    let client: CtaphidClient;
    try {
      client = await this.connection;
    } catch (err) {
      this.connection = undefined;
      throw new WebAuthnError(`cannot reach the device at ${device.host}:${device.port}: ${(err as Error).message}`, 'NotAllowedError');
    }
    return (request, opts) => client.cbor(request, { timeoutMs: opts?.timeoutMs });
  }

  /**
   * §5.1.3 / §5.1.4 with CTAP 2.1 §6.5: a pinUvAuthToken when the ceremony wants user verification (required, or
   * preferred and a PIN was given) or the authenticator needs one anyway (`pinNeeded`). Required UV with no PIN to
   * give is NotAllowedError (the user dismissed the PIN prompt); with no PIN set on the authenticator,
   * ConstraintError (it cannot verify the user, §6.3.2 step 4).
   */
  private async userVerification(
    port: CtapCommandPort,
    info: AuthenticatorInfo,
    uv: UserVerificationRequirement,
    pin: string | undefined,
    pinNeeded: boolean,
    permission: number,
    rpId: string,
  ): Promise<PinUvAuthToken | undefined> {
    const hasPin = info.options.get('clientPin') === true;
    if (uv === 'required') {
      if (!hasPin) throw new WebAuthnError('userVerification is required but the authenticator has no PIN set', 'ConstraintError');
      if (pin === undefined) throw new WebAuthnError('userVerification is required: pass { pin } to the ceremony', 'NotAllowedError');
    }
    const use = hasPin && pin !== undefined && (uv !== 'discouraged' || pinNeeded);
    if (!use) return undefined;
    return pinUvAuthToken(port, info, pin!, permission, rpId);
  }

  private residentKeyWanted(options: PublicKeyCredentialCreationOptionsJSON, info: AuthenticatorInfo): boolean {
    const selection = options.authenticatorSelection;
    const requirement = selection?.residentKey ?? (selection?.requireResidentKey === true ? 'required' : 'discouraged');
    const supported = info.options.get('rk') === true;
    if (requirement === 'required') {
      if (!supported) throw new WebAuthnError('a discoverable credential is required but the authenticator cannot store one', 'ConstraintError');
      return true;
    }
    // "preferred": discoverable when the authenticator can still store one (as Chromium does).
    return requirement === 'preferred' && supported && (info.remainingDiscoverableCredentials ?? 1) > 0;
  }
}

/** An allow / exclude list as CTAP wants it; longer than the authenticator's maxCredentialCountInList is refused. */
function descriptorList(list: readonly PublicKeyCredentialDescriptorJSON[] | undefined, info: AuthenticatorInfo, what: string): CborValue[] | undefined {
  const credentials = (list ?? []).filter((c) => c.type === 'public-key');
  if (credentials.length === 0) return undefined;
  const max = info.maxCredentialCountInList;
  if (max !== undefined && credentials.length > max) {
    throw new WebAuthnError(`${what} has ${credentials.length} entries; the authenticator takes at most ${max}`, 'NotSupportedError');
  }
  return credentials.map((c) => new Map<CborValue, CborValue>([['id', fromBase64url(c.id, `${what} id`)], ['type', 'public-key']]));
}

/** The account a getAssertion answer names (§6.2: credential 0x01 may be omitted for a one-entry allow list). */
function toAccount(answer: CborMap, allowed: readonly PublicKeyCredentialDescriptorJSON[]): Account {
  const credential = answer.get(0x01);
  let credentialId: string;
  if (isCborMap(credential) && credential.get('id') instanceof Uint8Array) credentialId = base64url(credential.get('id') as Uint8Array);
  else if (allowed.length === 1) credentialId = allowed[0].id;
  else throw new WebAuthnError('authenticatorGetAssertion: the answer names no credential', 'UnknownError');
  const user = answer.get(0x04);
  if (!isCborMap(user)) return { credentialId };
  const text = (k: string): string | undefined => (typeof user.get(k) === 'string' ? (user.get(k) as string) : undefined);
  const id = user.get('id');
  return {
    credentialId,
    userHandle: id instanceof Uint8Array ? base64url(id) : undefined,
    name: text('name'),
    displayName: text('displayName'),
  };
}
