/**
 * Robustness: arbitrary bytes, arbitrary CBOR and mutated valid requests never crash the authenticator, always
 * produce a one-byte CTAP error (or a success), and never change the persisted state when they fail.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encode, type CborValue } from '../../../protocol/cbor.ts';
import { ctap, m, makeHarness, mcParams, RP_ID, sha256 } from './helpers.ts';

const cborValue: fc.Arbitrary<CborValue> = fc.letrec<{ v: CborValue }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small' },
    fc.integer({ min: -70000, max: 70000 }),
    fc.string({ maxLength: 20 }),
    fc.uint8Array({ maxLength: 80 }),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('v'), { maxLength: 4 }),
    fc
      .array(fc.tuple(fc.oneof(fc.integer({ min: -5, max: 12 }), fc.constantFrom('id', 'type', 'rk', 'up', 'uv', 'alg', 'name', 'hmac-secret', 'credProtect')), tie('v')), { maxLength: 6 })
      .map((entries) => new Map<CborValue, CborValue>(entries)),
  ),
})).v;

describe('malformed requests', () => {
  it('random payloads for every command: an answer, no crash, no state change on error', async () => {
    const h = await makeHarness();
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(0x01, 0x02, 0x04, 0x06, 0x07, 0x08, 0x0a, 0x0b, 0x41, 0x99), fc.uint8Array({ maxLength: 300 }), async (cmd, body) => {
        h.presence.answer = 'denied'; // never approve: no command may succeed in a state-changing way
        const before = h.store.snapshot();
        const answer = await h.auth.request('cbor', Uint8Array.from([cmd, ...body]), h.ctx());
        expect(answer.length).toBeGreaterThanOrEqual(1);
        expect(answer[0]).not.toBe(0x7f); // CTAP1_ERR_OTHER would mean an internal failure
        if (answer[0] !== 0) {
          expect(answer.length).toBe(1);
          expect(Buffer.compare(h.store.snapshot() as Uint8Array, before as Uint8Array)).toBe(0);
        }
      }),
      { numRuns: 400 },
    );
  });

  it('random CBOR maps as parameters: typed errors only', async () => {
    const h = await makeHarness();
    const allowed = new Set([0x00, 0x01, 0x02, 0x03, 0x11, 0x12, 0x14, 0x15, 0x26, 0x27, 0x2b, 0x2c, 0x2e, 0x30, 0x31, 0x33, 0x35, 0x36, 0x3e, 0x19]);
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(0x01, 0x02, 0x06, 0x0a), cborValue, async (cmd, value) => {
        h.presence.answer = 'denied';
        let bytes: Uint8Array;
        try {
          bytes = encode(value);
        } catch {
          return; // nesting beyond CTAP's limit: not a request we can even build
        }
        const r = await ctap(h, cmd, bytes);
        expect(allowed.has(r.status), `status 0x${r.status.toString(16)}`).toBe(true);
      }),
      { numRuns: 400 },
    );
  });

  it('mutating one member of a valid makeCredential / getAssertion request never crashes', async () => {
    const h = await makeHarness();
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 11 }), cborValue, fc.boolean(), async (key, value, isGa) => {
        const p = isGa ? m([[1, RP_ID], [2, sha256('x')]]) : mcParams();
        p.set(key, value);
        let bytes: Uint8Array;
        try {
          bytes = encode(p);
        } catch {
          return;
        }
        const r = await ctap(h, isGa ? 0x02 : 0x01, bytes);
        expect(r.status).toBeGreaterThanOrEqual(0);
        expect(r.status).toBeLessThan(0x7f);
      }),
      { numRuns: 400 },
    );
  });

  it('random CTAPHID_MSG payloads always end in a status word', async () => {
    const h = await makeHarness();
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), async (bytes) => {
        h.presence.answer = 'denied';
        const r = await h.auth.request('msg', bytes, h.ctx());
        expect(r.length).toBeGreaterThanOrEqual(2);
      }),
      { numRuns: 300 },
    );
  });

  it('non-canonical CBOR (unsorted keys, non-minimal ints) is INVALID_CBOR', async () => {
    const h = await makeHarness();
    // {2: h'', 1: "x"} with keys out of order.
    expect((await ctap(h, 0x02, Uint8Array.of(0xa2, 0x02, 0x40, 0x01, 0x61, 0x78))).status).toBe(0x12);
    // {0x18 0x01: ...} non-minimal key encoding.
    expect((await ctap(h, 0x02, Uint8Array.of(0xa1, 0x18, 0x01, 0x61, 0x78))).status).toBe(0x12);
    // Trailing garbage.
    expect((await ctap(h, 0x04, Uint8Array.of(0xa0, 0x00))).status).toBe(0x00); // getInfo ignores parameters
    expect((await ctap(h, 0x02, Uint8Array.of(0xa0, 0x00))).status).toBe(0x12);
  });
});
