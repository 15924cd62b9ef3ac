/**
 * The soft authenticator's persistent state and its CBOR serialisation (the bytes handed to the StateStore,
 * which encrypts them). One versioned CBOR map with text keys so the format is self-describing and can grow.
 *
 * What is persisted (and why):
 *   - deviceId: a public random identity → the stable AuthenticatorDescriptor.id; survives reset.
 *   - masterSecret: wraps non-resident credential ids / U2F key handles and derives hmac-secret CredRandom for
 *     them; rotated by authenticatorReset (so every old id becomes "not ours").
 *   - counterReserved: high-water mark of the global signature counter used by non-resident credentials
 *     (see counter.ts: values are handed out from blocks reserved — and saved — ahead of use).
 *   - PIN: LEFT(SHA-256(pin), 16) (CTAP 2.1 PS 2021-06-15 §6.5.5.5), its length in code points, pinRetries (8 max),
 *     minPinLength (4) and forcePinChange.
 *   - resident (discoverable) credentials with their user entity, key, options and per-credential counter.
 *   - the U2F batch attestation certificate + key (generated once).
 */
import { decode, encode, type CborMap, type CborValue } from '../../../protocol/cbor.ts';
import { isCredentialAlg, type CredentialAlg } from './crypto.ts';

export const STATE_FORMAT_VERSION = 1;
/** CTAP 2.1 §6.5.2: maximum PIN retries. */
export const MAX_PIN_RETRIES = 8;
/** CTAP 2.1 §6.4 / §7.4: default minimum PIN length in Unicode code points. */
export const DEFAULT_MIN_PIN_LENGTH = 4;

/** credProtect levels (CTAP 2.1 §12.1). */
export const CRED_PROTECT_UV_OPTIONAL = 1;
export const CRED_PROTECT_UV_OPTIONAL_WITH_ID_LIST = 2;
export const CRED_PROTECT_UV_REQUIRED = 3;
export type CredProtect = 1 | 2 | 3;

export interface ResidentCredential {
  /** The credential id (same wrapped format as non-resident ids, with the "resident" flag). */
  readonly id: Uint8Array;
  readonly rpId: string;
  rpName?: string;
  readonly userId: Uint8Array;
  userName?: string;
  userDisplayName?: string;
  readonly alg: CredentialAlg;
  readonly privateKey: Uint8Array;
  readonly credProtect: CredProtect;
  readonly credBlob?: Uint8Array;
  readonly hmacSecret: boolean;
  /** hmac-secret CredRandomWithoutUV || CredRandomWithUV (64 bytes) when hmacSecret (§12.5). */
  readonly credRandom?: Uint8Array;
  signCount: number;
  /** Creation time (clock ms) and a monotonic sequence number to order "most recent first" (§6.2.2 step 12). */
  readonly createdAt: number;
  readonly seq: number;
  /** Credential scope tag (per-gateway scoping); absent = shared. */
  readonly scope?: string;
  /** Time (clock ms) of the last signature; absent = never used (or a store written before this field existed). */
  lastUsedAt?: number;
  /**
   * The signature counter is always 0 and never moves: set for passkeys imported from a Credential Exchange
   * Format file (CXF v1.0: "Importers MUST set a zero value ... and MUST NOT increment them").
   */
  readonly zeroCounter?: boolean;
}

export interface PinRecord {
  /** LEFT(SHA-256(pin), 16). */
  readonly hash: Uint8Array;
  /** PIN length in Unicode code points (for the minPinLength / forcePinChange rules, §7.4). */
  readonly codePoints: number;
}

export interface U2fAttestation {
  /** DER X.509 self-signed batch certificate. */
  readonly certificate: Uint8Array;
  /** PKCS#8 DER of its P-256 private key. */
  readonly privateKey: Uint8Array;
}

export interface SoftState {
  readonly deviceId: Uint8Array;
  masterSecret: Uint8Array;
  counterReserved: number;
  pin?: PinRecord;
  pinRetries: number;
  minPinLength: number;
  forcePinChange: boolean;
  credentials: ResidentCredential[];
  nextSeq: number;
  u2fAttestation?: U2fAttestation;
}

export class SoftStateError extends Error {
  constructor(message: string) {
    super(`soft authenticator state: ${message}`);
    this.name = 'SoftStateError';
  }
}

export function newState(random: (n: number) => Uint8Array): SoftState {
  return {
    deviceId: random(16),
    masterSecret: random(32),
    counterReserved: 0,
    pinRetries: MAX_PIN_RETRIES,
    minPinLength: DEFAULT_MIN_PIN_LENGTH,
    forcePinChange: false,
    credentials: [],
    nextSeq: 1,
  };
}

function credToCbor(c: ResidentCredential): CborMap {
  const m = new Map<CborValue, CborValue>([
    ['id', c.id],
    ['rpId', c.rpId],
    ['userId', c.userId],
    ['alg', c.alg],
    ['key', c.privateKey],
    ['credProtect', c.credProtect],
    ['hmacSecret', c.hmacSecret],
    ['signCount', c.signCount],
    ['createdAt', c.createdAt],
    ['seq', c.seq],
  ]);
  if (c.rpName !== undefined) m.set('rpName', c.rpName);
  if (c.userName !== undefined) m.set('userName', c.userName);
  if (c.userDisplayName !== undefined) m.set('userDisplayName', c.userDisplayName);
  if (c.credBlob !== undefined) m.set('credBlob', c.credBlob);
  if (c.credRandom !== undefined) m.set('credRandom', c.credRandom);
  if (c.scope !== undefined) m.set('scope', c.scope);
  if (c.lastUsedAt !== undefined) m.set('lastUsedAt', c.lastUsedAt);
  if (c.zeroCounter === true) m.set('zeroCounter', true);
  return m;
}

export function serializeState(s: SoftState): Uint8Array {
  const m = new Map<CborValue, CborValue>([
    ['v', STATE_FORMAT_VERSION],
    ['deviceId', s.deviceId],
    ['masterSecret', s.masterSecret],
    ['counterReserved', s.counterReserved],
    ['pinRetries', s.pinRetries],
    ['minPinLength', s.minPinLength],
    ['forcePinChange', s.forcePinChange],
    ['nextSeq', s.nextSeq],
    ['credentials', s.credentials.map(credToCbor)],
  ]);
  if (s.pin !== undefined) m.set('pin', new Map<CborValue, CborValue>([['hash', s.pin.hash], ['codePoints', s.pin.codePoints]]));
  if (s.u2fAttestation !== undefined) {
    m.set(
      'u2f',
      new Map<CborValue, CborValue>([
        ['certificate', s.u2fAttestation.certificate],
        ['key', s.u2fAttestation.privateKey],
      ]),
    );
  }
  return encode(m);
}

class Reader {
  constructor(
    private readonly m: CborMap,
    private readonly where: string,
  ) {}
  private get(k: string): CborValue | undefined {
    return this.m.get(k);
  }
  bytes(k: string, len?: number): Uint8Array {
    const v = this.get(k);
    if (!(v instanceof Uint8Array) || (len !== undefined && v.length !== len)) throw new SoftStateError(`${this.where}.${k}`);
    return v;
  }
  optBytes(k: string): Uint8Array | undefined {
    return this.m.has(k) ? this.bytes(k) : undefined;
  }
  text(k: string): string {
    const v = this.get(k);
    if (typeof v !== 'string') throw new SoftStateError(`${this.where}.${k}`);
    return v;
  }
  optText(k: string): string | undefined {
    return this.m.has(k) ? this.text(k) : undefined;
  }
  optUint(k: string): number | undefined {
    return this.m.has(k) ? this.uint(k) : undefined;
  }
  optBool(k: string): boolean | undefined {
    return this.m.has(k) ? this.bool(k) : undefined;
  }
  uint(k: string): number {
    const v = this.get(k);
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new SoftStateError(`${this.where}.${k}`);
    return v;
  }
  int(k: string): number {
    const v = this.get(k);
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new SoftStateError(`${this.where}.${k}`);
    return v;
  }
  bool(k: string): boolean {
    const v = this.get(k);
    if (typeof v !== 'boolean') throw new SoftStateError(`${this.where}.${k}`);
    return v;
  }
  map(k: string): CborMap | undefined {
    const v = this.get(k);
    if (v === undefined) return undefined;
    if (!(v instanceof Map)) throw new SoftStateError(`${this.where}.${k}`);
    return v;
  }
  array(k: string): CborValue[] {
    const v = this.get(k);
    if (!Array.isArray(v)) throw new SoftStateError(`${this.where}.${k}`);
    return v;
  }
}

function credFromCbor(v: CborValue, i: number): ResidentCredential {
  if (!(v instanceof Map)) throw new SoftStateError(`credentials[${i}]`);
  const r = new Reader(v, `credentials[${i}]`);
  const alg = r.int('alg');
  if (!isCredentialAlg(alg)) throw new SoftStateError(`credentials[${i}].alg`);
  const credProtect = r.uint('credProtect');
  if (credProtect < 1 || credProtect > 3) throw new SoftStateError(`credentials[${i}].credProtect`);
  return {
    id: r.bytes('id'),
    rpId: r.text('rpId'),
    rpName: r.optText('rpName'),
    userId: r.bytes('userId'),
    userName: r.optText('userName'),
    userDisplayName: r.optText('userDisplayName'),
    alg,
    privateKey: r.bytes('key', 32),
    credProtect: credProtect as CredProtect,
    credBlob: r.optBytes('credBlob'),
    hmacSecret: r.bool('hmacSecret'),
    credRandom: r.optBytes('credRandom'),
    signCount: r.uint('signCount'),
    createdAt: r.uint('createdAt'),
    seq: r.uint('seq'),
    scope: r.optText('scope'),
    // Added later: absent in older stores, which stay readable (members are optional, the version unchanged).
    lastUsedAt: r.optUint('lastUsedAt'),
    zeroCounter: r.optBool('zeroCounter'),
  };
}

/** Parse serialised state; throws SoftStateError for anything malformed (never returns a half-valid state). */
export function deserializeState(bytes: Uint8Array): SoftState {
  let v: CborValue;
  try {
    v = decode(bytes);
  } catch (e) {
    throw new SoftStateError(`not CBOR (${(e as Error).message})`);
  }
  if (!(v instanceof Map)) throw new SoftStateError('not a map');
  const r = new Reader(v, 'state');
  if (r.uint('v') !== STATE_FORMAT_VERSION) throw new SoftStateError('unsupported format version');
  const pinMap = r.map('pin');
  const u2fMap = r.map('u2f');
  const pin = pinMap ? new Reader(pinMap, 'pin') : undefined;
  const u2f = u2fMap ? new Reader(u2fMap, 'u2f') : undefined;
  const pinRetries = r.uint('pinRetries');
  if (pinRetries > MAX_PIN_RETRIES) throw new SoftStateError('state.pinRetries');
  return {
    deviceId: r.bytes('deviceId', 16),
    masterSecret: r.bytes('masterSecret', 32),
    counterReserved: r.uint('counterReserved'),
    pin: pin ? { hash: pin.bytes('hash', 16), codePoints: pin.uint('codePoints') } : undefined,
    pinRetries,
    minPinLength: r.uint('minPinLength'),
    forcePinChange: r.bool('forcePinChange'),
    nextSeq: r.uint('nextSeq'),
    credentials: r.array('credentials').map(credFromCbor),
    u2fAttestation: u2f ? { certificate: u2f.bytes('certificate'), privateKey: u2f.bytes('key') } : undefined,
  };
}
