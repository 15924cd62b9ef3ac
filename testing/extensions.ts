/**
 * Client extension processing (WebAuthn L3 §9, §10): the JSON inputs a relying party sends become CTAP
 * authenticator extension inputs (CTAP 2.1 PS 2021-06-15 §12), and the authenticator's outputs become the JSON
 * clientExtensionResults. Handled: credProps (§10.1.3, computed by the client), prf (§10.1.4) and
 * hmacCreateSecret / hmacGetSecret on top of hmac-secret (CTAP 2.1 §12.5), credProtect (§12.1), credBlob /
 * getCredBlob (§12.2) and minPinLength (§12.4). Unknown inputs are ignored, as a browser does.
 */
import type { CborMap, CborValue } from '../protocol/cbor.ts';
import type { CtapCommandPort, AuthenticatorInfo } from './ctap.ts';
import { base64url, fromBase64url, sha256 } from './encoding.ts';
import { WebAuthnError } from './errors.ts';
import { authenticate, chooseProtocol, decrypt, encrypt, keyAgreement, type SharedSecret } from './pin-uv.ts';
import type { ClientExtensionInputsJSON, ClientExtensionResultsJSON, PrfInput, PrfValuesJSON } from './types.ts';

const HMAC_SECRET = 'hmac-secret';
const CRED_PROTECT_LEVELS = {
  userVerificationOptional: 1,
  userVerificationOptionalWithCredentialIDList: 2,
  userVerificationRequired: 3,
} as const;

function prfBytes(input: PrfInput, what: string): Uint8Array {
  if (typeof input === 'string') return fromBase64url(input, what);
  if (input instanceof ArrayBuffer) return new Uint8Array(input);
  if (ArrayBuffer.isView(input)) return new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
  throw new TypeError(`${what} is not base64url or bytes`);
}

/** §10.1.4: the hmac-secret salt for a PRF input is SHA-256("WebAuthn PRF" || 0x00 || input). */
export function prfSalt(input: Uint8Array): Uint8Array {
  return sha256(new TextEncoder().encode('WebAuthn PRF'), Uint8Array.of(0), input);
}

/** makeCredential extension inputs (the CTAP map), or undefined when there are none. */
export function registrationExtensionInputs(ext: ClientExtensionInputsJSON | undefined, info: AuthenticatorInfo): CborMap | undefined {
  if (ext === undefined) return undefined;
  const out = new Map<CborValue, CborValue>();
  const supported = (name: string): boolean => info.extensions.includes(name);
  if ((ext.hmacCreateSecret === true || ext.prf !== undefined) && supported(HMAC_SECRET)) out.set(HMAC_SECRET, true);
  if (ext.credentialProtectionPolicy !== undefined) {
    const level = CRED_PROTECT_LEVELS[ext.credentialProtectionPolicy];
    if (level === undefined) throw new TypeError(`unknown credentialProtectionPolicy ${JSON.stringify(ext.credentialProtectionPolicy)}`);
    if (supported('credProtect')) out.set('credProtect', level);
    else if (ext.enforceCredentialProtectionPolicy === true && level > 1) {
      throw new WebAuthnError('the authenticator does not support credProtect', 'NotAllowedError');
    }
  }
  if (ext.credBlob !== undefined && supported('credBlob')) out.set('credBlob', fromBase64url(ext.credBlob, 'extensions.credBlob'));
  if (ext.minPinLength === true && supported('minPinLength')) out.set('minPinLength', true);
  return out.size > 0 ? out : undefined;
}

/** clientExtensionResults of a registration. */
export function registrationExtensionResults(
  ext: ClientExtensionInputsJSON | undefined,
  outputs: CborMap | undefined,
  residentKey: boolean,
): ClientExtensionResultsJSON {
  const results: ClientExtensionResultsJSON = {};
  if (ext === undefined) return results;
  if (ext.credProps === true) results.credProps = { rk: residentKey };
  const hmac = outputs?.get(HMAC_SECRET) === true;
  if (ext.hmacCreateSecret === true) results.hmacCreateSecret = hmac;
  if (ext.prf !== undefined) results.prf = { enabled: hmac };
  if (ext.credBlob !== undefined) results.credBlob = outputs?.get('credBlob') === true;
  return results;
}

/** The hmac-secret salts an authentication asks for: from prf (eval, or evalByCredential for a lone allowed id) or hmacGetSecret. */
export function requestedSalts(
  ext: ClientExtensionInputsJSON | undefined,
  allowedIds: readonly string[],
): { kind: 'prf' | 'hmacGetSecret'; salt1: Uint8Array; salt2?: Uint8Array } | undefined {
  if (ext?.prf !== undefined) {
    const byCredential = ext.prf.evalByCredential;
    if (byCredential !== undefined && Object.keys(byCredential).length > 0 && allowedIds.length === 0) {
      // §10.1.4: evalByCredential needs an allow list.
      throw new WebAuthnError('prf.evalByCredential without allowCredentials', 'NotSupportedError');
    }
    let values: PrfValuesJSON | undefined = ext.prf.eval;
    if (byCredential !== undefined && allowedIds.length === 1 && byCredential[allowedIds[0]] !== undefined) values = byCredential[allowedIds[0]];
    if (values === undefined) return undefined;
    return {
      kind: 'prf',
      salt1: prfSalt(prfBytes(values.first, 'prf first')),
      salt2: values.second === undefined ? undefined : prfSalt(prfBytes(values.second, 'prf second')),
    };
  }
  if (ext?.hmacGetSecret !== undefined) {
    const salt1 = fromBase64url(ext.hmacGetSecret.salt1, 'hmacGetSecret.salt1');
    const salt2 = ext.hmacGetSecret.salt2 === undefined ? undefined : fromBase64url(ext.hmacGetSecret.salt2, 'hmacGetSecret.salt2');
    if (salt1.length !== 32 || (salt2 !== undefined && salt2.length !== 32)) throw new TypeError('hmacGetSecret salts are 32 bytes');
    return { kind: 'hmacGetSecret', salt1, salt2 };
  }
  return undefined;
}

export interface PreparedHmacSecret {
  readonly kind: 'prf' | 'hmacGetSecret';
  readonly shared: SharedSecret;
  readonly input: CborMap;
}

/** CTAP 2.1 §12.5 getAssertion input: keyAgreement, saltEnc, saltAuth, pinUvAuthProtocol. */
export async function prepareHmacSecret(
  port: CtapCommandPort,
  info: AuthenticatorInfo,
  salts: { kind: 'prf' | 'hmacGetSecret'; salt1: Uint8Array; salt2?: Uint8Array },
): Promise<PreparedHmacSecret> {
  const protocol = chooseProtocol(info);
  const shared = await keyAgreement(port, protocol);
  const plain = new Uint8Array(salts.salt2 === undefined ? 32 : 64);
  plain.set(salts.salt1, 0);
  if (salts.salt2 !== undefined) plain.set(salts.salt2, 32);
  const saltEnc = encrypt(protocol, shared.secret, plain);
  const input = new Map<CborValue, CborValue>([
    [0x01, shared.platformKey],
    [0x02, saltEnc],
    [0x03, authenticate(protocol, shared.secret, saltEnc)],
    [0x04, protocol],
  ]);
  return { kind: salts.kind, shared, input };
}

/** clientExtensionResults of an authentication. */
export function authenticationExtensionResults(
  ext: ClientExtensionInputsJSON | undefined,
  outputs: CborMap | undefined,
  hmac: PreparedHmacSecret | undefined,
): ClientExtensionResultsJSON {
  const results: ClientExtensionResultsJSON = {};
  if (ext === undefined) return results;
  const encrypted = outputs?.get(HMAC_SECRET);
  if (hmac !== undefined && encrypted instanceof Uint8Array) {
    const plain = decrypt(hmac.shared.protocol, hmac.shared.secret, encrypted);
    const first = base64url(plain.subarray(0, 32));
    const second = plain.length >= 64 ? base64url(plain.subarray(32, 64)) : undefined;
    if (hmac.kind === 'prf') results.prf = { results: second === undefined ? { first } : { first, second } };
    else results.hmacGetSecret = second === undefined ? { output1: first } : { output1: first, output2: second };
  } else if (ext.prf !== undefined) {
    results.prf = {};
  }
  if (ext.getCredBlob === true) {
    const blob = outputs?.get('credBlob');
    results.getCredBlob = base64url(blob instanceof Uint8Array ? blob : new Uint8Array(0));
  }
  return results;
}

/** getAssertion extension inputs besides hmac-secret (which needs a key agreement first). */
export function authenticationExtensionInputs(ext: ClientExtensionInputsJSON | undefined, info: AuthenticatorInfo): CborMap {
  const out = new Map<CborValue, CborValue>();
  if (ext?.getCredBlob === true && info.extensions.includes('credBlob')) out.set('credBlob', true);
  return out;
}

export const HMAC_SECRET_EXTENSION = HMAC_SECRET;
