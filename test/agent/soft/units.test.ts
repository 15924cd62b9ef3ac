/** Unit tests of the building blocks: credential-id wrapping, the pinUvAuthToken timers, parsing helpers. */
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CtapError } from '../../../agent/authenticators/soft/errors.ts';
import {
  MAX_CREDENTIAL_ID_LENGTH,
  unwrapCredentialId,
  visibleInScope,
  wrapCredentialId,
} from '../../../agent/authenticators/soft/credential-id.ts';
import { PinProtocolOne, PinProtocolTwo } from '../../../agent/authenticators/soft/pin-protocol.ts';
import { PinUvAuthToken } from '../../../agent/authenticators/soft/pin-token.ts';
import { decodeParams, truncateUtf8 } from '../../../agent/authenticators/soft/parse.ts';
import { sha256 } from './helpers.ts';

const key = randomBytes(32);
const rpIdHash = sha256('example.com');
const cred = { alg: -7 as const, secret: randomBytes(32), resident: false, hmacSecret: true, credProtect: 2 as const, credBlob: Uint8Array.of(1, 2) };

describe('credential ids', () => {
  it('round-trip with every field, bounded length', () => {
    const id = wrapCredentialId(key, randomBytes(12), rpIdHash, 'scope-x', { ...cred, credBlob: new Uint8Array(32) });
    expect(id.length).toBeLessThanOrEqual(MAX_CREDENTIAL_ID_LENGTH);
    expect(MAX_CREDENTIAL_ID_LENGTH).toBeLessThanOrEqual(128);
    const w = unwrapCredentialId(key, rpIdHash, id);
    expect(w).toMatchObject({ alg: -7, resident: false, hmacSecret: true, credProtect: 2 });
    expect(Buffer.from(w?.secret as Uint8Array)).toEqual(Buffer.from(cred.secret));
    expect(visibleInScope(w as NonNullable<typeof w>, 'scope-x')).toBe(true);
    expect(visibleInScope(w as NonNullable<typeof w>, 'scope-y')).toBe(false);
    expect(visibleInScope(w as NonNullable<typeof w>, undefined)).toBe(true);
    const shared = unwrapCredentialId(key, rpIdHash, wrapCredentialId(key, randomBytes(12), rpIdHash, undefined, cred));
    expect(visibleInScope(shared as NonNullable<typeof shared>, 'scope-x')).toBe(false);
  });

  it('any single-byte change, another key or another RP → not ours (null), never a throw', () => {
    const id = wrapCredentialId(key, randomBytes(12), rpIdHash, undefined, cred);
    expect(unwrapCredentialId(randomBytes(32), rpIdHash, id)).toBeNull();
    expect(unwrapCredentialId(key, sha256('other.example'), id)).toBeNull();
    fc.assert(
      fc.property(fc.integer({ min: 0, max: id.length - 1 }), fc.integer({ min: 1, max: 255 }), (i, x) => {
        const t = Uint8Array.from(id);
        t[i] ^= x;
        expect(unwrapCredentialId(key, rpIdHash, t)).toBeNull();
      }),
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (junk) => {
        expect(unwrapCredentialId(key, rpIdHash, junk)).toBeNull();
      }),
    );
    expect(unwrapCredentialId(key, rpIdHash, id.subarray(0, id.length - 1))).toBeNull();
  });
});

describe('pinUvAuthToken state', () => {
  const proto = new PinProtocolTwo({ bytes: (n) => randomBytes(n) });
  const msg = Uint8Array.of(1, 2, 3);

  it('initial usage limit 30 s; once used, valid until the 10-minute maximum', () => {
    const t = new PinUvAuthToken((n) => randomBytes(n));
    t.beginUsing(false, 0, 0x03, undefined);
    const mac = proto.authenticate(t.value(), msg);
    expect(t.verify(proto, msg, mac, 29_999)).toBe(true);
    expect(t.verify(proto, msg, mac, 9 * 60_000)).toBe(true);
    expect(t.verify(proto, msg, mac, 10 * 60_000)).toBe(false);
    const u = new PinUvAuthToken((n) => randomBytes(n));
    u.beginUsing(false, 0, 0x03, undefined);
    expect(u.verify(proto, msg, proto.authenticate(u.value(), msg), 30_000)).toBe(false);
  });

  it('flags and permissions: UP flag lapses after 30 s; clearing keeps only lbw', () => {
    const t = new PinUvAuthToken((n) => randomBytes(n));
    t.beginUsing(true, 0, 0x13, 'rp');
    expect(t.verify(proto, msg, proto.authenticate(t.value(), msg), 500)).toBe(true);
    expect(t.getUserPresentFlagValue(1000)).toBe(true);
    expect(t.getUserPresentFlagValue(30_000)).toBe(false);
    expect(t.hasPermission(0x01)).toBe(true);
    t.clearPermissionsExceptLbw();
    expect(t.hasPermission(0x01)).toBe(false);
    expect(t.hasPermission(0x10)).toBe(true);
    expect(t.boundRpId()).toBe('rp');
    const old = Uint8Array.from(t.value());
    t.reset();
    expect(Buffer.from(t.value())).not.toEqual(Buffer.from(old));
    expect(t.hasPermission(0x10)).toBe(false);
  });

  it('protocol one MACs are 16 bytes, protocol two 32; wrong lengths never verify', () => {
    const one = new PinProtocolOne();
    const k = randomBytes(32);
    expect(one.authenticate(k, msg)).toHaveLength(16);
    expect(proto.authenticate(k, msg)).toHaveLength(32);
    expect(one.verify(k, msg, proto.authenticate(k, msg))).toBe(false);
    expect(proto.verify(k, msg, one.authenticate(k, msg))).toBe(false);
    expect(one.decrypt(k, new Uint8Array(15))).toBeNull();
    expect(proto.decrypt(k, new Uint8Array(16))).toBeNull();
  });
});

describe('parsing helpers', () => {
  it('truncateUtf8 never splits a code point', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 60 }), fc.integer({ min: 0, max: 70 }), (s, max) => {
        const t = truncateUtf8(s, max);
        if (Buffer.byteLength(s) <= max) expect(t).toBe(s);
        else expect(Buffer.byteLength(t)).toBeLessThanOrEqual(max);
        expect(s.startsWith(t)).toBe(true); // a split code point would end t in U+FFFD
      }),
    );
  });

  it('decodeParams maps CBOR failures to CTAP statuses', () => {
    const status = (b: number[]) => {
      try {
        decodeParams(Uint8Array.from(b));
        return 0;
      } catch (e) {
        return (e as CtapError).status;
      }
    };
    expect(status([0xa0])).toBe(0);
    expect(status([0x80])).toBe(0x11);
    expect(status([0xff])).toBe(0x12);
    expect(status([0xa1, 0x01])).toBe(0x12);
    expect(status([0xa2, 0x01, 0x01, 0x01, 0x02])).toBe(0x12); // duplicate key
  });
});
