/**
 * Property tests for protocol/cbor.ts (fast-check, >= 10,000 runs each): round trip of random CTAP-shaped
 * values up to the CTAP 2.1 PS 2021-06-15 §8 nesting limit, canonical form independent of map insertion order,
 * agreement with the strict decoder, and that arbitrary or mutated input only ever fails with CborError.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CborError, type CborValue, decode, encode } from '../../protocol/cbor.ts';

const RUNS = 10_000;
const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER);
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

const key: fc.Arbitrary<number | string> = fc.oneof(
  fc.integer({ min: -30, max: 30 }),
  fc.integer({ min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }),
  fc.string({ unit: 'binary', maxLength: 12 }),
);

const leaf: fc.Arbitrary<CborValue> = fc.oneof(
  fc.integer({ min: -30, max: 30 }),
  fc.integer({ min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }),
  fc.constantFrom(23, 24, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, -24, -25, -256, -257, -65536, -65537),
  // bigints only outside the safe range: inside it the decoder (by design) returns numbers
  fc.bigInt({ min: MAX_SAFE + 1n, max: 2n ** 64n - 1n }),
  fc.bigInt({ min: -(2n ** 64n), max: MIN_SAFE - 1n }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ maxLength: 40 }),
  fc.uint8Array({ maxLength: 80 }),
  fc.boolean(),
  fc.constant(null),
);

function valueOfDepth(depth: number): fc.Arbitrary<CborValue> {
  if (depth === 0) return leaf;
  const inner = valueOfDepth(depth - 1);
  return fc.oneof(
    { weight: 3, arbitrary: leaf },
    { weight: 1, arbitrary: fc.array(inner, { maxLength: 5 }) },
    {
      weight: 1,
      arbitrary: fc
        .uniqueArray(fc.tuple(key, inner), { selector: ([k]) => `${typeof k}:${String(k)}`, maxLength: 5 })
        .map((entries) => new Map<CborValue, CborValue>(entries)),
    },
  );
}

/** Any value within CTAP's nesting limit of 4 (CTAP 2.1 §8). */
const value = valueOfDepth(4);

function onlyCborError(run: () => unknown): void {
  try {
    run();
  } catch (e) {
    if (!(e instanceof CborError)) throw e;
  }
}

describe('cbor properties', () => {
  it('decode(encode(v)) deep-equals v', () => {
    fc.assert(
      fc.property(value, (v) => {
        expect(decode(encode(v))).toEqual(v);
      }),
      { numRuns: RUNS },
    );
  });

  it('encoding is canonical: re-encoding a decoded value gives the same bytes', () => {
    fc.assert(
      fc.property(value, (v) => {
        const once = encode(v);
        expect(Buffer.from(encode(decode(once))).equals(Buffer.from(once))).toBe(true);
      }),
      { numRuns: RUNS },
    );
  });

  it('map encoding does not depend on insertion order', () => {
    const entries = fc.uniqueArray(fc.tuple(key, valueOfDepth(2)), {
      selector: ([k]) => `${typeof k}:${String(k)}`,
      maxLength: 10,
    });
    fc.assert(
      fc.property(entries, fc.infiniteStream(fc.nat()), (es, rnd) => {
        const shuffled = [...es];
        const it = rnd[Symbol.iterator]();
        for (let i = shuffled.length - 1; i > 0; i--) {
          const j = (it.next().value as number) % (i + 1);
          [shuffled[i], shuffled[j]] = [shuffled[j], shuffled[i]];
        }
        const a = encode(new Map<CborValue, CborValue>(es));
        const b = encode(new Map<CborValue, CborValue>(shuffled));
        expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
      }),
      { numRuns: RUNS },
    );
  });

  it('strict and lenient decoding agree on canonical input', () => {
    fc.assert(
      fc.property(value, (v) => {
        const enc = encode(v);
        expect(decode(enc, { canonical: false })).toEqual(decode(enc));
      }),
      { numRuns: RUNS },
    );
  });

  it('random bytes decode or throw only CborError (strict and lenient)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        onlyCborError(() => decode(bytes));
        onlyCborError(() => decode(bytes, { canonical: false }));
      }),
      { numRuns: RUNS },
    );
  });

  it('random bytes with a container-heavy prefix decode or throw only CborError', () => {
    const structural = fc.constantFrom(0x81, 0x82, 0x9f, 0xa1, 0xa2, 0xbf, 0x5f, 0x7f, 0xff, 0x18, 0x19, 0x1b, 0x5b, 0x7b, 0x9b, 0xbb, 0xc0, 0xf9, 0xf7, 0x62, 0x42);
    fc.assert(
      fc.property(fc.array(fc.oneof(structural, fc.integer({ min: 0, max: 255 })), { maxLength: 64 }), (arr) => {
        const bytes = Uint8Array.from(arr);
        onlyCborError(() => decode(bytes));
        onlyCborError(() => decode(bytes, { canonical: false, maxDepth: 64 }));
      }),
      { numRuns: RUNS },
    );
  });

  it('mutated valid encodings decode or throw only CborError, and any accepted strict decode re-encodes to the same bytes', () => {
    fc.assert(
      fc.property(value, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.nat(), (v, pos, byte, cut) => {
        const enc = encode(v);
        const mutated = enc.slice();
        if (mutated.length > 0) mutated[pos % mutated.length] = byte;
        let decoded: CborValue | undefined;
        try {
          decoded = decode(mutated);
        } catch (e) {
          if (!(e instanceof CborError)) throw e;
        }
        if (decoded !== undefined) {
          // The strict decoder only accepts canonical input, so re-encoding must reproduce it exactly.
          expect(Buffer.from(encode(decoded)).equals(Buffer.from(mutated))).toBe(true);
        }
        // Every strict prefix of a valid encoding is truncated (never silently accepted).
        const prefixLen = enc.length > 0 ? cut % enc.length : 0;
        if (enc.length > 0) {
          let err: unknown;
          try {
            decode(enc.subarray(0, prefixLen));
          } catch (e) {
            err = e;
          }
          expect(err).toBeInstanceOf(CborError);
          expect((err as CborError).code).toBe('truncated');
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('the encoder throws only CborError for arbitrary JS input', () => {
    const anything = fc.anything({
      maxDepth: 6,
      withBigInt: true,
      withMap: true,
      withSet: true,
      withDate: true,
      withTypedArray: true,
      withSparseArray: true,
      withNullPrototype: true,
      withBoxedValues: true,
    });
    fc.assert(
      fc.property(anything, (v) => {
        onlyCborError(() => encode(v as CborValue));
        onlyCborError(() => encode(v as CborValue, { maxDepth: 64 }));
      }),
      { numRuns: RUNS },
    );
  });
});
