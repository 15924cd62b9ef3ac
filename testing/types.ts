/**
 * The WebAuthn Level 3 JSON forms the test client takes and returns (W3C WebAuthn L3 §5.1.8 / §5.1.9 / §5.1.11
 * `toJSON()`): PublicKeyCredentialCreationOptionsJSON / RequestOptionsJSON in, RegistrationResponseJSON /
 * AuthenticationResponseJSON out. Binary members are base64url strings. Declared here (not imported from a
 * relying-party library) so `keytunnel/testing` has no dependency of its own; they are structurally compatible
 * with @simplewebauthn/server's types, so its options go in and our responses go to its verify functions as is.
 */

export type Base64URLString = string;
export type UserVerificationRequirement = 'required' | 'preferred' | 'discouraged';
export type ResidentKeyRequirement = 'required' | 'preferred' | 'discouraged';
export type AttestationConveyancePreference = 'none' | 'indirect' | 'direct' | 'enterprise';
export type AuthenticatorTransport = 'ble' | 'cable' | 'hybrid' | 'internal' | 'nfc' | 'smart-card' | 'usb';

/** A PRF input: base64url in the JSON form; raw bytes are accepted too. */
export type PrfInput = Base64URLString | ArrayBuffer | ArrayBufferView;

export interface PrfValuesJSON {
  first: PrfInput;
  second?: PrfInput;
}

/**
 * Client extension inputs the test client acts on (WebAuthn L3 §10, CTAP 2.1 PS 2021-06-15 §12). Others are ignored.
 */
export interface ClientExtensionInputsJSON {
  appid?: string;
  /** §10.1.3: report whether the credential is discoverable. */
  credProps?: boolean;
  /** CTAP 2.1 §12.5 hmac-secret at registration (Chrome's / Firefox's hmacCreateSecret). */
  hmacCreateSecret?: boolean;
  /** hmac-secret at authentication (Firefox's hmacGetSecret): 32-byte salts, base64url. */
  hmacGetSecret?: { salt1: Base64URLString; salt2?: Base64URLString };
  /** §10.1.4 PRF, on top of hmac-secret. */
  prf?: { eval?: PrfValuesJSON; evalByCredential?: Record<string, PrfValuesJSON> };
  /** CTAP 2.1 §12.1 credProtect (the WebAuthn credentialProtectionPolicy names). */
  credentialProtectionPolicy?: 'userVerificationOptional' | 'userVerificationOptionalWithCredentialIDList' | 'userVerificationRequired';
  enforceCredentialProtectionPolicy?: boolean;
  /** CTAP 2.1 §12.2 credBlob: bytes to store (registration), base64url. */
  credBlob?: Base64URLString;
  /** CTAP 2.1 §12.2: read the credBlob back (authentication). */
  getCredBlob?: boolean;
  minPinLength?: boolean;
}

export interface ClientExtensionResultsJSON {
  credProps?: { rk?: boolean };
  hmacCreateSecret?: boolean;
  hmacGetSecret?: { output1: Base64URLString; output2?: Base64URLString };
  prf?: { enabled?: boolean; results?: { first: any; second?: any } };
  credProtect?: number;
  credBlob?: boolean;
  getCredBlob?: Base64URLString;
}

export interface PublicKeyCredentialDescriptorJSON {
  id: Base64URLString;
  type: string;
  transports?: string[];
}

export interface PublicKeyCredentialCreationOptionsJSON {
  rp: { id?: string; name: string };
  user: { id: Base64URLString; name: string; displayName: string };
  challenge: Base64URLString;
  pubKeyCredParams: { alg: number; type: string }[];
  timeout?: number;
  excludeCredentials?: PublicKeyCredentialDescriptorJSON[];
  authenticatorSelection?: {
    authenticatorAttachment?: string;
    requireResidentKey?: boolean;
    residentKey?: ResidentKeyRequirement;
    userVerification?: UserVerificationRequirement;
  };
  hints?: string[];
  attestation?: AttestationConveyancePreference;
  attestationFormats?: string[];
  extensions?: ClientExtensionInputsJSON;
}

export interface PublicKeyCredentialRequestOptionsJSON {
  challenge: Base64URLString;
  timeout?: number;
  rpId?: string;
  allowCredentials?: PublicKeyCredentialDescriptorJSON[];
  userVerification?: UserVerificationRequirement;
  hints?: string[];
  extensions?: ClientExtensionInputsJSON;
}

export interface RegistrationResponseJSON {
  id: Base64URLString;
  rawId: Base64URLString;
  type: 'public-key';
  authenticatorAttachment: 'cross-platform';
  clientExtensionResults: ClientExtensionResultsJSON;
  response: {
    clientDataJSON: Base64URLString;
    attestationObject: Base64URLString;
    authenticatorData: Base64URLString;
    transports: AuthenticatorTransport[];
    publicKeyAlgorithm: number;
    /** SubjectPublicKeyInfo DER of the credential key (L3 §5.2.1.1 getPublicKey()). */
    publicKey?: Base64URLString;
  };
}

export interface AuthenticationResponseJSON {
  id: Base64URLString;
  rawId: Base64URLString;
  type: 'public-key';
  authenticatorAttachment: 'cross-platform';
  clientExtensionResults: ClientExtensionResultsJSON;
  response: {
    clientDataJSON: Base64URLString;
    authenticatorData: Base64URLString;
    signature: Base64URLString;
    userHandle?: Base64URLString;
  };
}

/** Where a CTAPHID device listens: a loopback face (64 raw bytes per HID report over TCP). */
export interface DeviceAddress {
  readonly host: string;
  readonly port: number;
}
