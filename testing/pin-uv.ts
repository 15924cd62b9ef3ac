/**
 * The platform side of PIN/UV auth protocols one and two (CTAP 2.1 PS 2021-06-15 §6.5.6, §6.5.7) and the client PIN
 * subcommands a WebAuthn client uses (§6.5.5): getKeyAgreement, getPinUvAuthTokenUsingPinWithPermissions (or the
 * older getPinToken), and setPIN for a test that wants one. Written on node:crypto directly, independently of
 * the soft authenticator's implementation, so the two check each other.
 */
import { createCipheriv, createDecipheriv, createECDH, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { isCborMap, type CborMap, type CborValue } from '../protocol/cbor.ts';
import {
  CLIENT_PIN_GET_KEY_AGREEMENT,
  CLIENT_PIN_GET_PIN_TOKEN,
  CLIENT_PIN_GET_PIN_UV_AUTH_TOKEN_USING_PIN_WITH_PERMISSIONS,
  CLIENT_PIN_SET_PIN,
} from '../protocol/client-pin.ts';
import { CTAP2_CLIENT_PIN } from '../protocol/ctap2.ts';
import { ctapCommand, isBytes, need, type AuthenticatorInfo, type CtapCommandPort } from './ctap.ts';
import { sha256 } from './encoding.ts';
import { WebAuthnError } from './errors.ts';

export type PinProtocolVersion = 1 | 2;

/** One key agreement with the authenticator: our COSE key to send, and the shared secret (§6.5.6 encapsulate). */
export interface SharedSecret {
  readonly protocol: PinProtocolVersion;
  readonly platformKey: CborMap;
  readonly secret: Uint8Array;
}

const HKDF_SALT = new Uint8Array(32);
const ZERO_IV = new Uint8Array(16);

/** The protocol to use: two when the authenticator lists it (§6.5.4: the platform picks the first it supports). */
export function chooseProtocol(info: AuthenticatorInfo): PinProtocolVersion {
  for (const p of info.pinUvAuthProtocols) if (p === 2 || p === 1) return p;
  return 1;
}

/** §6.5.5.4 getKeyAgreement, then ECDH with a fresh P-256 key of ours and the protocol's KDF. */
export async function keyAgreement(port: CtapCommandPort, protocol: PinProtocolVersion): Promise<SharedSecret> {
  const answer = await ctapCommand(
    port,
    CTAP2_CLIENT_PIN,
    new Map<CborValue, CborValue>([[0x01, protocol], [0x02, CLIENT_PIN_GET_KEY_AGREEMENT]]),
    'clientPIN getKeyAgreement',
  );
  const peer = answer.get(0x01);
  if (!isCborMap(peer) || !isBytes(peer.get(-2)) || !isBytes(peer.get(-3))) {
    throw new WebAuthnError('clientPIN getKeyAgreement: no key', 'UnknownError');
  }
  const ecdh = createECDH('prime256v1');
  ecdh.generateKeys();
  const z = ecdh.computeSecret(Buffer.concat([Uint8Array.of(4), peer.get(-2) as Uint8Array, peer.get(-3) as Uint8Array]));
  const pub = ecdh.getPublicKey();
  // COSE_Key: kty EC2 (2), alg ECDH-ES+HKDF-256 (-25), crv P-256 (1), x, y (§6.5.6 getPublicKey).
  const platformKey = new Map<CborValue, CborValue>([
    [1, 2],
    [3, -25],
    [-1, 1],
    [-2, new Uint8Array(pub.subarray(1, 33))],
    [-3, new Uint8Array(pub.subarray(33, 65))],
  ]);
  const secret =
    protocol === 1
      ? sha256(z)
      : new Uint8Array(
          Buffer.concat([
            Buffer.from(hkdfSync('sha256', z, HKDF_SALT, 'CTAP2 HMAC key', 32)),
            Buffer.from(hkdfSync('sha256', z, HKDF_SALT, 'CTAP2 AES key', 32)),
          ]),
        );
  return { protocol, platformKey, secret };
}

/** §6.5.6 / §6.5.7 encrypt (protocol two: a random IV first; the AES half of the secret). */
export function encrypt(protocol: PinProtocolVersion, key: Uint8Array, plaintext: Uint8Array): Uint8Array {
  const aesKey = protocol === 2 && key.length === 64 ? key.subarray(32) : key;
  const iv = protocol === 1 ? ZERO_IV : new Uint8Array(randomBytes(16));
  const c = createCipheriv('aes-256-cbc', aesKey, iv);
  c.setAutoPadding(false);
  const ct = Buffer.concat([c.update(plaintext), c.final()]);
  return new Uint8Array(protocol === 1 ? ct : Buffer.concat([iv, ct]));
}

export function decrypt(protocol: PinProtocolVersion, key: Uint8Array, data: Uint8Array): Uint8Array {
  const aesKey = protocol === 2 && key.length === 64 ? key.subarray(32) : key;
  const iv = protocol === 1 ? ZERO_IV : data.subarray(0, 16);
  const body = protocol === 1 ? data : data.subarray(16);
  if (body.length === 0 || body.length % 16 !== 0) throw new WebAuthnError('encrypted answer has a bad length', 'UnknownError');
  const d = createDecipheriv('aes-256-cbc', aesKey, iv);
  d.setAutoPadding(false);
  return new Uint8Array(Buffer.concat([d.update(body), d.final()]));
}

/** §6.5.6 authenticate: LEFT(HMAC-SHA-256, 16) for one; the full HMAC (keyed with the HMAC half) for two. */
export function authenticate(protocol: PinProtocolVersion, key: Uint8Array, message: Uint8Array): Uint8Array {
  const hmacKey = protocol === 2 && key.length === 64 ? key.subarray(0, 32) : key;
  const mac = new Uint8Array(createHmac('sha256', hmacKey).update(message).digest());
  return protocol === 1 ? mac.subarray(0, 16) : mac;
}

export interface PinUvAuthToken {
  readonly protocol: PinProtocolVersion;
  readonly token: Uint8Array;
}

/**
 * A pinUvAuthToken for `permissions` on `rpId`: getPinUvAuthTokenUsingPinWithPermissions (§6.5.5.7.2) when the
 * authenticator has the pinUvAuthToken option, else getPinToken (§6.5.5.7.1, CTAP 2.0).
 */
export async function pinUvAuthToken(
  port: CtapCommandPort,
  info: AuthenticatorInfo,
  pin: string,
  permissions: number,
  rpId: string,
): Promise<PinUvAuthToken> {
  const protocol = chooseProtocol(info);
  const shared = await keyAgreement(port, protocol);
  // §6.5.5.7: pinHashEnc = encrypt(shared, LEFT(SHA-256(pin), 16)).
  const pinHashEnc = encrypt(protocol, shared.secret, sha256(new TextEncoder().encode(pin)).subarray(0, 16));
  const withPermissions = info.options.get('pinUvAuthToken') === true;
  const params = new Map<CborValue, CborValue>([
    [0x01, protocol],
    [0x02, withPermissions ? CLIENT_PIN_GET_PIN_UV_AUTH_TOKEN_USING_PIN_WITH_PERMISSIONS : CLIENT_PIN_GET_PIN_TOKEN],
    [0x03, shared.platformKey],
    [0x06, pinHashEnc],
  ]);
  if (withPermissions) {
    params.set(0x09, permissions);
    params.set(0x0a, rpId);
  }
  const answer = await ctapCommand(port, CTAP2_CLIENT_PIN, params, 'clientPIN getPinUvAuthToken');
  const token = decrypt(protocol, shared.secret, need(answer, 0x02, isBytes, 'pinUvAuthToken'));
  return { protocol, token };
}

/** §6.5.5.5 setPIN (a fresh authenticator); the PIN is UTF-8, padded with zeros to 64 bytes. */
export async function setPin(port: CtapCommandPort, info: AuthenticatorInfo, pin: string): Promise<void> {
  const bytes = new TextEncoder().encode(pin);
  if (bytes.length > 63) throw new RangeError('a PIN is at most 63 bytes of UTF-8');
  const padded = new Uint8Array(64);
  padded.set(bytes);
  const protocol = chooseProtocol(info);
  const shared = await keyAgreement(port, protocol);
  const newPinEnc = encrypt(protocol, shared.secret, padded);
  await ctapCommand(
    port,
    CTAP2_CLIENT_PIN,
    new Map<CborValue, CborValue>([
      [0x01, protocol],
      [0x02, CLIENT_PIN_SET_PIN],
      [0x03, shared.platformKey],
      [0x04, authenticate(protocol, shared.secret, newPinEnc)],
      [0x05, newPinEnc],
    ]),
    'clientPIN setPIN',
  );
}
