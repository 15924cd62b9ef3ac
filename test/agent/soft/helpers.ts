/**
 * Test helpers for the soft authenticator: the shared fake clock, the presence fake (agent/presence/fake.ts), a request context, a CBOR
 * command helper, and a platform-side PIN/UV auth protocol client (protocols 1 and 2) written independently of
 * the authenticator's implementation (node:crypto directly), so PIN tests check the wire format, not a mirror.
 */
import { createCipheriv, createDecipheriv, createECDH, createHash, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import type { RequestContext, RequestOrigin } from '../../../protocol/authenticator.ts';
import { decode, encode, type CborMap, type CborValue } from '../../../protocol/cbor.ts';
import { MemoryStateStore } from '../../../agent/authenticators/soft/memory-store.ts';
import { FakePresence } from '../../../agent/presence/fake.ts';
import { SoftAuthenticator, type SoftAuthenticatorOptions } from '../../../agent/authenticators/soft/soft-authenticator.ts';
import { FakeClock } from '../../support/fake-clock.ts';

export { FakeClock };

export interface Harness {
  auth: SoftAuthenticator;
  store: MemoryStateStore;
  clock: FakeClock;
  presence: FakePresence;
  statuses: number[];
  ctx: (origin?: RequestOrigin, signal?: AbortSignal) => RequestContext;
}

export async function makeHarness(opts: Partial<SoftAuthenticatorOptions> & { store?: MemoryStateStore; clock?: FakeClock } = {}): Promise<Harness> {
  const store = opts.store ?? new MemoryStateStore();
  const clock = opts.clock ?? new FakeClock();
  const presence = (opts.presence as FakePresence | undefined) ?? new FakePresence();
  const auth = await SoftAuthenticator.open({ ...opts, store, clock, presence });
  const statuses: number[] = [];
  const ctx = (origin?: RequestOrigin, signal?: AbortSignal): RequestContext => ({
    signal: signal ?? new AbortController().signal,
    onStatus: (s) => statuses.push(s),
    origin,
  });
  return { auth, store, clock, presence, statuses, ctx };
}

export interface CtapAnswer {
  status: number;
  body: CborMap | undefined;
}

/** Send CTAP2 `command` with CBOR parameters (a Map, raw bytes, or nothing). */
export async function ctap(h: Harness, command: number, params?: CborMap | Uint8Array, origin?: RequestOrigin): Promise<CtapAnswer> {
  const bytes = params === undefined ? new Uint8Array(0) : params instanceof Uint8Array ? params : encode(params);
  const payload = new Uint8Array(1 + bytes.length);
  payload[0] = command;
  payload.set(bytes, 1);
  const answer = await h.auth.request('cbor', payload, h.ctx(origin));
  const body = answer.length > 1 ? (decode(answer.subarray(1)) as CborMap) : undefined;
  return { status: answer[0], body };
}

export function m(entries: [CborValue, CborValue][]): CborMap {
  return new Map(entries);
}

export function sha256(data: Uint8Array | string): Uint8Array {
  return createHash('sha256').update(data).digest();
}

export const RP_ID = 'example.com';

export function mcParams(over: { rpId?: string; userId?: Uint8Array; rk?: boolean; extra?: [CborValue, CborValue][]; options?: CborMap; algs?: number[]; cdh?: Uint8Array } = {}): CborMap {
  const params = m([
    [1, over.cdh ?? sha256('client data')],
    [2, m([['id', over.rpId ?? RP_ID], ['name', 'Example']])],
    [3, m([['id', over.userId ?? Uint8Array.of(1, 2, 3)], ['name', 'alice'], ['displayName', 'Alice A.']])],
    [4, (over.algs ?? [-7]).map((alg) => m([['alg', alg], ['type', 'public-key']]))],
  ]);
  const options = over.options ?? (over.rk ? m([['rk', true]]) : undefined);
  if (options) params.set(7, options);
  for (const [k, v] of over.extra ?? []) params.set(k, v);
  return params;
}

/** Parse authenticator data (WebAuthn §6.1). */
export function parseAuthData(ad: Uint8Array): {
  rpIdHash: Uint8Array;
  flags: number;
  signCount: number;
  credentialId?: Uint8Array;
  publicKey?: CborMap;
  extensions?: CborMap;
} {
  const rpIdHash = ad.subarray(0, 32);
  const flags = ad[32];
  const signCount = Buffer.from(ad).readUInt32BE(33);
  let o = 37;
  let credentialId: Uint8Array | undefined;
  let publicKey: CborMap | undefined;
  if (flags & 0x40) {
    const len = (ad[o + 16] << 8) | ad[o + 17];
    o += 18;
    credentialId = ad.subarray(o, o + len);
    o += len;
    // The COSE key is followed (maybe) by the extensions map: decode the key by trying increasing lengths.
    for (let end = o + 1; end <= ad.length; end++) {
      try {
        publicKey = decode(ad.subarray(o, end)) as CborMap;
        o = end;
        break;
      } catch {
        /* keep going */
      }
    }
  }
  const extensions = flags & 0x80 ? (decode(ad.subarray(o)) as CborMap) : undefined;
  return { rpIdHash, flags, signCount, credentialId, publicKey, extensions };
}

/** Platform side of PIN/UV auth protocols 1 and 2 (CTAP 2.1 PS 2021-06-15 §6.5.6/§6.5.7). */
export class PlatformPin {
  constructor(
    private readonly h: Harness,
    readonly protocol: 1 | 2,
  ) {}

  async keyAgreement(): Promise<{ cose: CborMap; shared: Uint8Array }> {
    const r = await ctap(this.h, 0x06, m([[1, this.protocol], [2, 2]]));
    if (r.status !== 0 || !r.body) throw new Error(`getKeyAgreement failed ${r.status}`);
    const peer = r.body.get(1) as CborMap;
    const ecdh = createECDH('prime256v1');
    ecdh.generateKeys();
    const point = Buffer.concat([Uint8Array.of(4), peer.get(-2) as Uint8Array, peer.get(-3) as Uint8Array]);
    const z = ecdh.computeSecret(point);
    const pub = ecdh.getPublicKey();
    const cose = m([[1, 2], [3, -25], [-1, 1], [-2, pub.subarray(1, 33)], [-3, pub.subarray(33)]]);
    let shared: Uint8Array;
    if (this.protocol === 1) shared = createHash('sha256').update(z).digest();
    else {
      const salt = Buffer.alloc(32);
      shared = Buffer.concat([
        Buffer.from(hkdfSync('sha256', z, salt, 'CTAP2 HMAC key', 32)),
        Buffer.from(hkdfSync('sha256', z, salt, 'CTAP2 AES key', 32)),
      ]);
    }
    return { cose, shared };
  }

  encrypt(shared: Uint8Array, data: Uint8Array): Uint8Array {
    if (this.protocol === 1) {
      const c = createCipheriv('aes-256-cbc', shared, Buffer.alloc(16));
      c.setAutoPadding(false);
      return Buffer.concat([c.update(data), c.final()]);
    }
    const iv = randomBytes(16);
    const c = createCipheriv('aes-256-cbc', shared.subarray(32), iv);
    c.setAutoPadding(false);
    return Buffer.concat([iv, c.update(data), c.final()]);
  }

  decrypt(shared: Uint8Array, data: Uint8Array): Uint8Array {
    const key = this.protocol === 1 ? shared : shared.subarray(32);
    const iv = this.protocol === 1 ? Buffer.alloc(16) : data.subarray(0, 16);
    const d = createDecipheriv('aes-256-cbc', key, iv);
    d.setAutoPadding(false);
    return Buffer.concat([d.update(this.protocol === 1 ? data : data.subarray(16)), d.final()]);
  }

  authenticate(key: Uint8Array, message: Uint8Array): Uint8Array {
    const k = this.protocol === 2 && key.length === 64 ? key.subarray(0, 32) : key;
    const mac = createHmac('sha256', k).update(message).digest();
    return this.protocol === 1 ? mac.subarray(0, 16) : mac;
  }

  static pad(pin: string): Uint8Array {
    const b = Buffer.alloc(64);
    Buffer.from(pin, 'utf8').copy(b);
    return b;
  }

  async setPin(pin: string | Uint8Array): Promise<number> {
    const { cose, shared } = await this.keyAgreement();
    const newPinEnc = this.encrypt(shared, typeof pin === 'string' ? PlatformPin.pad(pin) : pin);
    const r = await ctap(this.h, 0x06, m([[1, this.protocol], [2, 3], [3, cose], [4, this.authenticate(shared, newPinEnc)], [5, newPinEnc]]));
    return r.status;
  }

  async changePin(oldPin: string, newPin: string): Promise<number> {
    const { cose, shared } = await this.keyAgreement();
    const newPinEnc = this.encrypt(shared, PlatformPin.pad(newPin));
    const pinHashEnc = this.encrypt(shared, sha256(oldPin).subarray(0, 16));
    const r = await ctap(
      this.h,
      0x06,
      m([[1, this.protocol], [2, 4], [3, cose], [4, this.authenticate(shared, Buffer.concat([newPinEnc, pinHashEnc]))], [5, newPinEnc], [6, pinHashEnc]]),
    );
    return r.status;
  }

  /** getPinToken (permissions undefined) or getPinUvAuthTokenUsingPinWithPermissions. */
  async token(pin: string, permissions?: number, rpId?: string): Promise<{ status: number; token?: Uint8Array }> {
    const { cose, shared } = await this.keyAgreement();
    const pinHashEnc = this.encrypt(shared, sha256(pin).subarray(0, 16));
    const params = m([[1, this.protocol], [2, permissions === undefined ? 5 : 9], [3, cose], [6, pinHashEnc]]);
    if (permissions !== undefined) params.set(9, permissions);
    if (rpId !== undefined) params.set(10, rpId);
    const r = await ctap(this.h, 0x06, params);
    if (r.status !== 0 || !r.body) return { status: r.status };
    return { status: 0, token: this.decrypt(shared, r.body.get(2) as Uint8Array) };
  }
}
