/**
 * A minimal WebAuthn client (the part of a browser that talks CTAP2), for `keytunnel demo`: it turns a relying
 * party's PublicKeyCredentialCreationOptionsJSON / RequestOptionsJSON into authenticatorMakeCredential /
 * authenticatorGetAssertion requests (CTAP 2.1 §6.1, §6.2), builds clientDataJSON itself (WebAuthn L2 §5.8.1:
 * `type`, `challenge`, `origin`, `crossOrigin`), and packs the answers into the RegistrationResponseJSON /
 * AuthenticationResponseJSON shapes an RP server verifies (WebAuthn L3 §5.1 `toJSON()`).
 *
 * Deliberately small: user presence only (no PIN / UV), no extensions, ES256/EdDSA. It is a demo client, not a
 * browser; it talks to any `CtapCommandPort` (here: the CTAPHID client over the gateway's loopback face).
 */
import { createHash } from 'node:crypto';
import type {
  AuthenticationResponseJSON,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
  RegistrationResponseJSON,
} from '@simplewebauthn/server';
import { decode, encode, isCborMap, type CborMap, type CborValue } from '../../protocol/cbor.ts';
import { CTAP2_GET_ASSERTION, CTAP2_MAKE_CREDENTIAL, CTAP2_OK } from '../../protocol/ctap2.ts';

/** Sends one CTAP2 command (command byte + CBOR) and answers status byte + CBOR (a CTAPHID_CBOR round trip). */
export type CtapCommandPort = (request: Uint8Array) => Promise<Uint8Array>;

export class WebAuthnClientError extends Error {
  override readonly name = 'WebAuthnClientError';
  constructor(
    message: string,
    /** The CTAP2 status byte, when the authenticator answered with an error. */
    readonly ctapStatus?: number,
  ) {
    super(message);
  }
}

export function base64url(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64url');
}

export function fromBase64url(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text, 'base64url'));
}

function sha256(data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(data).digest());
}

/** WebAuthn §5.8.1 CollectedClientData, serialised the way browsers do (members in this order). */
export function clientDataJSON(type: 'webauthn.create' | 'webauthn.get', challenge: string, origin: string): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({ type, challenge, origin, crossOrigin: false }));
}

/** Run one CTAP2 command; a non-zero status byte is a WebAuthnClientError; the CBOR map is returned. */
async function command(port: CtapCommandPort, cmd: number, params: CborMap): Promise<CborMap> {
  const body = encode(params);
  const request = new Uint8Array(1 + body.length);
  request[0] = cmd;
  request.set(body, 1);
  const answer = await port(request);
  if (answer.length === 0) throw new WebAuthnClientError('empty CTAP2 answer');
  if (answer[0] !== CTAP2_OK) {
    throw new WebAuthnClientError(`authenticator answered CTAP2 status 0x${answer[0].toString(16).padStart(2, '0')}`, answer[0]);
  }
  const value = decode(answer.subarray(1), { canonical: false });
  if (!isCborMap(value)) throw new WebAuthnClientError('CTAP2 answer is not a CBOR map');
  return value;
}

function need<T extends CborValue>(map: CborMap, key: number, check: (v: CborValue) => v is T, what: string): T {
  const v = map.get(key);
  if (v === undefined || !check(v)) throw new WebAuthnClientError(`answer lacks a valid ${what} (key ${key})`);
  return v;
}
const isBytes = (v: CborValue): v is Uint8Array => v instanceof Uint8Array;
const isText = (v: CborValue): v is string => typeof v === 'string';

/** The credential id inside attested credential data (WebAuthn §6.5.1: after rpIdHash 32, flags 1, counter 4, aaguid 16). */
export function credentialIdFromAuthData(authData: Uint8Array): Uint8Array {
  const AT = 0x40;
  if (authData.length < 55 || (authData[32] & AT) === 0) throw new WebAuthnClientError('authData has no attested credential');
  const length = (authData[53] << 8) | authData[54];
  if (authData.length < 55 + length) throw new WebAuthnClientError('authData credential id truncated');
  return authData.slice(55, 55 + length);
}

/** navigator.credentials.create(): authenticatorMakeCredential (CTAP 2.1 §6.1) + attestationObject. */
export async function createCredential(
  port: CtapCommandPort,
  options: PublicKeyCredentialCreationOptionsJSON,
  origin: string,
): Promise<RegistrationResponseJSON> {
  const clientData = clientDataJSON('webauthn.create', options.challenge, origin);
  const params: CborMap = new Map<CborValue, CborValue>([
    [1, sha256(clientData)],
    [2, new Map<CborValue, CborValue>([['id', options.rp.id ?? new URL(origin).hostname], ['name', options.rp.name]])],
    [
      3,
      new Map<CborValue, CborValue>([
        ['id', fromBase64url(options.user.id)],
        ['name', options.user.name],
        ['displayName', options.user.displayName],
      ]),
    ],
    [4, options.pubKeyCredParams.map((p) => new Map<CborValue, CborValue>([['alg', p.alg], ['type', p.type]]))],
  ]);
  if (options.excludeCredentials !== undefined && options.excludeCredentials.length > 0) {
    params.set(
      5,
      options.excludeCredentials.map((c) => new Map<CborValue, CborValue>([['id', fromBase64url(c.id)], ['type', 'public-key']])),
    );
  }
  if (options.authenticatorSelection?.residentKey === 'required') {
    params.set(7, new Map<CborValue, CborValue>([['rk', true]]));
  }
  const answer = await command(port, CTAP2_MAKE_CREDENTIAL, params);
  const fmt = need(answer, 1, isText, 'fmt');
  const authData = need(answer, 2, isBytes, 'authData');
  const attStmt = need(answer, 3, isCborMap, 'attStmt');
  // WebAuthn §6.5: the attestation object uses text keys (CTAP's integer keys 1/2/3 are fmt/authData/attStmt).
  const attestationObject = encode(
    new Map<CborValue, CborValue>([
      ['fmt', fmt],
      ['attStmt', attStmt],
      ['authData', authData],
    ]),
  );
  const id = base64url(credentialIdFromAuthData(authData));
  return {
    id,
    rawId: id,
    type: 'public-key',
    clientExtensionResults: {},
    authenticatorAttachment: 'cross-platform',
    response: {
      clientDataJSON: base64url(clientData),
      attestationObject: base64url(attestationObject),
      transports: ['usb'],
    },
  };
}

/** navigator.credentials.get(): authenticatorGetAssertion (CTAP 2.1 §6.2). */
export async function getAssertion(
  port: CtapCommandPort,
  options: PublicKeyCredentialRequestOptionsJSON,
  origin: string,
): Promise<AuthenticationResponseJSON> {
  const clientData = clientDataJSON('webauthn.get', options.challenge, origin);
  const params: CborMap = new Map<CborValue, CborValue>([
    [1, options.rpId ?? new URL(origin).hostname],
    [2, sha256(clientData)],
  ]);
  if (options.allowCredentials !== undefined && options.allowCredentials.length > 0) {
    params.set(
      3,
      options.allowCredentials.map((c) => new Map<CborValue, CborValue>([['id', fromBase64url(c.id)], ['type', 'public-key']])),
    );
  }
  const answer = await command(port, CTAP2_GET_ASSERTION, params);
  const authData = need(answer, 2, isBytes, 'authData');
  const signature = need(answer, 3, isBytes, 'signature');
  // §6.2: the credential (key 1) may be omitted when the allowList had exactly one entry.
  let credentialId: Uint8Array;
  const credential = answer.get(1);
  if (isCborMap(credential) && credential.get('id') instanceof Uint8Array) {
    credentialId = credential.get('id') as Uint8Array;
  } else if (options.allowCredentials?.length === 1) {
    credentialId = fromBase64url(options.allowCredentials[0].id);
  } else {
    throw new WebAuthnClientError('answer lacks the credential');
  }
  const user = answer.get(4);
  const userHandle = isCborMap(user) && user.get('id') instanceof Uint8Array ? base64url(user.get('id') as Uint8Array) : undefined;
  const id = base64url(credentialId);
  return {
    id,
    rawId: id,
    type: 'public-key',
    clientExtensionResults: {},
    authenticatorAttachment: 'cross-platform',
    response: {
      clientDataJSON: base64url(clientData),
      authenticatorData: base64url(authData),
      signature: base64url(signature),
      ...(userHandle !== undefined ? { userHandle } : {}),
    },
  };
}
