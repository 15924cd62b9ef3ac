/**
 * Interop: protocol/cbor.ts against python-fido2's CTAP2 canonical CBOR (the real client on this machine,
 * /usr/bin/python3 with python-fido2 0.9, provisioned by scripts/provision.sh). Random values encoded here
 * must be re-encoded byte-identically by python-fido2, and python-fido2's encodings of CTAP-shaped values
 * must decode here and re-encode byte-identically.
 *
 * null is excluded from the random values: python-fido2 0.9's decoder maps 0xf6 to False (its own quirk).
 */
import { spawnSync } from 'node:child_process';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type CborValue, decode, encode } from '../../protocol/cbor.ts';

const PYTHON = '/usr/bin/python3';

function python(script: string, input: string): string {
  const r = spawnSync(PYTHON, ['-c', script], { input, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`python failed: ${r.stderr}`);
  return r.stdout;
}

const key = fc.oneof(fc.integer({ min: -300, max: 70_000 }), fc.string({ unit: 'binary', maxLength: 20 }));
const leaf: fc.Arbitrary<CborValue> = fc.oneof(
  fc.integer({ min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }),
  fc.integer({ min: -300, max: 300 }),
  fc.bigInt({ min: -(2n ** 64n), max: 2n ** 64n - 1n }),
  fc.string({ unit: 'binary', maxLength: 30 }),
  fc.uint8Array({ maxLength: 40 }),
  fc.boolean(),
);
function valueOfDepth(depth: number): fc.Arbitrary<CborValue> {
  if (depth === 0) return leaf;
  const inner = valueOfDepth(depth - 1);
  return fc.oneof(
    { weight: 2, arbitrary: leaf },
    { weight: 1, arbitrary: fc.array(inner, { maxLength: 4 }) },
    {
      weight: 2,
      arbitrary: fc
        .uniqueArray(fc.tuple(key, inner), { selector: ([k]) => `${typeof k}:${String(k)}`, maxLength: 8 })
        .map((e) => new Map<CborValue, CborValue>(e)),
    },
  );
}

describe('interop with python-fido2 cbor', () => {
  it('python-fido2 re-encodes 3,000 random encodings of ours byte-identically', () => {
    const values = fc.sample(valueOfDepth(4), { numRuns: 3000, seed: 0x6b7475 });
    const lines = values.map((v) => Buffer.from(encode(v)).toString('hex'));
    const out = python(
      [
        'import sys',
        'from fido2 import cbor',
        'for line in sys.stdin:',
        '    b = bytes.fromhex(line.strip())',
        '    print(cbor.encode(cbor.decode(b)).hex())',
      ].join('\n'),
      lines.join('\n') + '\n',
    );
    expect(out.trim().split('\n')).toEqual(lines);
  });

  it('decodes and byte-identically re-encodes python-fido2 encodings of CTAP-shaped values', () => {
    const out = python(
      [
        'from fido2 import cbor',
        'vals = [',
        '  {1: ["U2F_V2", "FIDO_2_0", "FIDO_2_1"], 2: ["credProtect", "hmac-secret"], 3: bytes(range(16)),',
        '   4: {"rk": True, "up": True, "plat": False, "clientPin": True, "uv": False, "credMgmt": True,',
        '       "pinUvAuthToken": True, "makeCredUvNotRqd": True}, 5: 1200, 6: [2, 1], 7: 8, 8: 128,',
        '   9: ["usb"], 10: [{"alg": -7, "type": "public-key"}, {"alg": -8, "type": "public-key"}], 14: 0x050506},',
        '  {1: 2, 3: -7, -1: 1, -2: b"\\x01" * 32, -3: b"\\x02" * 32},',
        '  {1: b"\\x00" * 32, 2: {"id": "example.com", "name": "Example"},',
        '   3: {"id": b"user", "name": "u\\u00e9", "displayName": "\\u6c34 \\U0001f600"},',
        '   4: [{"type": "public-key", "alg": -7}], 5: [{"type": "public-key", "id": b"\\xff" * 64}],',
        '   6: {"credProtect": 2, "hmac-secret": True}, 7: {"rk": True}, 8: b"\\x11" * 16, 9: 2},',
        '  [0, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1, -1, -24, -25, -2**64],',
        '  {"": 0, "a": 1, "aa": 2, "b": 3, 1000: 4, 0: 5, -1: 6, 24: 7},',
        ']',
        'for v in vals:',
        '    print(cbor.encode(v).hex())',
      ].join('\n'),
      '',
    );
    const lines = out.trim().split('\n');
    expect(lines.length).toBe(5);
    for (const h of lines) {
      const bytes = Uint8Array.from(Buffer.from(h, 'hex'));
      expect(Buffer.from(encode(decode(bytes))).toString('hex')).toBe(h);
    }
  });
});
