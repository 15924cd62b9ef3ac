/**
 * Vector and rejection tests for the CTAP2 canonical CBOR codec (protocol/cbor.ts): RFC 8949 Appendix A
 * examples, CTAP 2.1 message examples (getInfo, makeCredential, getAssertion, clientPin as exchanged by
 * python-fido2 and browsers), CTAP 2.1 PS 2021-06-15 §8 canonical key order, and every decoder/encoder rejection path.
 */
import { describe, expect, it } from 'vitest';
import { CborError, type CborErrorCode, type CborMap, type CborValue, decode, encode, isCborMap } from '../../protocol/cbor.ts';

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

function expectCborError(fn: () => unknown, code: CborErrorCode): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught, 'expected a CborError').toBeInstanceOf(CborError);
  expect((caught as CborError).code).toBe(code);
}

describe('RFC 8949 Appendix A examples', () => {
  const cases: [CborValue, string][] = [
    [0, '00'],
    [1, '01'],
    [10, '0a'],
    [23, '17'],
    [24, '1818'],
    [25, '1819'],
    [100, '1864'],
    [1000, '1903e8'],
    [1000000, '1a000f4240'],
    [1000000000000, '1b000000e8d4a51000'],
    [18446744073709551615n, '1bffffffffffffffff'],
    [-18446744073709551616n, '3bffffffffffffffff'],
    [-1, '20'],
    [-10, '29'],
    [-100, '3863'],
    [-1000, '3903e7'],
    [false, 'f4'],
    [true, 'f5'],
    [null, 'f6'],
    [new Uint8Array(0), '40'],
    [hex('01020304'), '4401020304'],
    ['', '60'],
    ['a', '6161'],
    ['IETF', '6449455446'],
    ['"\\', '62225c'],
    ['\u00fc', '62c3bc'],
    ['\u6c34', '63e6b0b4'],
    ['\ud800\udd51', '64f0908591'],
    [[], '80'],
    [[1, 2, 3], '83010203'],
    [[1, [2, 3], [4, 5]], '8301820203820405'],
    [
      Array.from({ length: 25 }, (_, i) => i + 1),
      '98190102030405060708090a0b0c0d0e0f101112131415161718181819',
    ],
    [new Map(), 'a0'],
    [new Map([[1, 2], [3, 4]]), 'a201020304'],
    [new Map<CborValue, CborValue>([['a', 1], ['b', [2, 3]]]), 'a26161016162820203'],
    [['a', new Map([['b', 'c']])], '826161a161626163'],
    [
      new Map([['a', 'A'], ['b', 'B'], ['c', 'C'], ['d', 'D'], ['e', 'E']]),
      'a56161614161626142616361436164614461656145',
    ],
  ];
  for (const [value, encoded] of cases) {
    it(`${encoded}`, () => {
      expect(toHex(encode(value))).toBe(encoded);
      expect(decode(hex(encoded))).toEqual(value);
    });
  }

  it('integers at the 2^53 boundary decode as number below and bigint above', () => {
    expect(decode(hex('1b001fffffffffffff'))).toBe(Number.MAX_SAFE_INTEGER);
    expect(decode(hex('1b0020000000000000'))).toBe(2n ** 53n);
    expect(decode(hex('3b001ffffffffffffe'))).toBe(Number.MIN_SAFE_INTEGER);
    expect(decode(hex('3b001fffffffffffff'))).toBe(-(2n ** 53n));
    expect(toHex(encode(Number.MAX_SAFE_INTEGER))).toBe('1b001fffffffffffff');
    expect(toHex(encode(Number.MIN_SAFE_INTEGER))).toBe('3b001ffffffffffffe');
    // bigints in the safe range use the same (smallest) encoding as numbers
    expect(toHex(encode(1n))).toBe('01');
    expect(toHex(encode(-(2n ** 64n)))).toBe('3bffffffffffffffff');
    expect(toHex(encode(2n ** 32n))).toBe('1b0000000100000000');
    expect(toHex(encode(2 ** 32 - 1))).toBe('1affffffff');
    expect(toHex(encode(65535))).toBe('19ffff');
    expect(toHex(encode(65536))).toBe('1a00010000');
    expect(toHex(encode(255))).toBe('18ff');
    expect(toHex(encode(256))).toBe('190100');
    expect(toHex(encode(-24))).toBe('37');
    expect(toHex(encode(-25))).toBe('3818');
    expect(toHex(encode(-0))).toBe('00');
  });

  it('length headers switch width exactly at 24 / 256 / 65536 bytes', () => {
    for (const [len, head] of [[23, '57'], [24, '5818'], [255, '58ff'], [256, '590100'], [65536, '5a00010000']] as const) {
      const enc = encode(new Uint8Array(len).fill(7));
      expect(toHex(enc.subarray(0, head.length / 2))).toBe(head);
      expect(enc.length).toBe(head.length / 2 + len);
      expect(decode(enc)).toEqual(new Uint8Array(len).fill(7));
    }
    // text header is sized on the UTF-8 length, not the UTF-16 length
    for (const s of ['\u00fc'.repeat(11), '\u00fc'.repeat(12), 'x'.repeat(300), '\u6c34'.repeat(100), '😀'.repeat(70)]) {
      const enc = encode(s);
      const utf8 = Buffer.from(s, 'utf8');
      expect(toHex(enc.subarray(enc.length - utf8.length))).toBe(utf8.toString('hex'));
      expect(decode(enc)).toBe(s);
    }
  });
});

describe('CTAP 2.1 message examples', () => {
  // authenticatorGetInfo response from the CTAP 2.0/2.1 spec example (as used in python-fido2's tests):
  // {1: ["U2F_V2","FIDO_2_0"], 2: ["uvm","hmac-secret"], 3: aaguid, 4: {rk, up, plat, clientPin}, 5: 1200, 6: [1]}
  const GET_INFO =
    'a60182665532465f5632684649444f5f325f3002826375766d6b686d61632d7365637265740350f8a011f38c0a4d15800617111f9edc7d04a462726bf5627570f564706c6174f469636c69656e7450696ef4051904b0068101';
  // A longer getInfo (10 entries, keys up to 0x10) and a real YubiKey Bio getInfo (19 entries, CTAP 2.1).
  const GET_INFO_10 =
    'aa0182665532465f5632684649444f5f325f3002826375766d6b686d61632d7365637265740350f8a011f38c0a4d15800617111f9edc7d04a462726bf5627570f564706c6174f469636c69656e7450696ef4051904b006810109800cf40d041000';
  const GET_INFO_YUBIKEY_BIO =
    'b30184665532465f5632684649444f5f325f306c4649444f5f325f315f505245684649444f5f325f3102856b6372656450726f746563746b686d61632d7365637265746c6c61726765426c6f624b65796863726564426c6f626c6d696e50696e4c656e6774680350d8522d9f575b486688a9ba99fa02f35b04b062726bf5627570f5627576f564706c6174f4677576546f6b656ef568616c776179735576f568637265644d676d74f569617574686e72436667f56962696f456e726f6c6cf569636c69656e7450696ef56a6c61726765426c6f6273f56e70696e557641757468546f6b656ef56f7365744d696e50494e4c656e677468f5706d616b654372656455764e6f74527164f47563726564656e7469616c4d676d7450726576696577f5781b75736572566572696669636174696f6e4d676d7450726576696577f5051904b00682020107080818800981637573620a82a263616c672664747970656a7075626c69632d6b6579a263616c672764747970656a7075626c69632d6b65790b1904000cf40d040e1a000505060f18201001110312021415';
  // authenticatorMakeCredential request parameters (browser -> webauthn.io, command byte stripped).
  const MAKE_CREDENTIAL_REQ =
    'a801582065f9496dadc972a527a23dcfd06ce45f1d24f34f8472edb15bd00040af897d0a02a26269646b776562617574686e2e696f646e616d656b776562617574686e2e696f03a3626964581f62486871636d6c7a6447466a6332527a5a6d527a59325a6a596d3932613273646e616d65776c786a726973746163736473666473636663626f766b6b6b646973706c61794e616d65776c786a726973746163736473666473636663626f766b6b0482a263616c672664747970656a7075626c69632d6b6579a263616c6739010064747970656a7075626c69632d6b657906a16b6372656450726f746563740207a162726bf50858207b9a039f3c53298e98ea0ae88de4843dfd9f0f0307a8f06b8ff607b9b7a063b10902';
  const GET_ASSERTION_REQ =
    'a5016b776562617574686e2e696f025820addf18581bffd2a73fd6ba468fce7f482535cb3f8b4aa2708c53aff2b4496e080381a26269645840d2d216c4ac2b76c64125cbc7eb6d7c384d96c9acb00a407af90133a2f1c15703af33a5ce652b1d624433dea32096422ff2787aeb92f25aab863e5aa592070af264747970656a7075626c69632d6b6579065820222246d8d31c6047014a61a8f5532d534b9ad2622fcd4619bf57014ebebe15f60702';
  const GET_ASSERTION_RESP =
    'a301a26269645840fe3aac036d14c1e1c65518b698dd1da8f596bc33e11072813466c6bf3845691509b80fb76d59309b8d39e0a93452688f6ca3a39a76f3fc52744fb73948b1578364747970656a7075626c69632d6b65790258250021f5fc0b85cd22e60623bcd7d1ca48948909249b4776eb515154e57b66ae12010000001d035846304402206765cbf6e871d3af7f01ae96f06b13c90f26f54b905c5166a2c791274fc2397102200b143893586cc799fba4da83b119eaea1bd80ac3ce88fcedb3efbd596a1f4f63';
  // authenticatorClientPIN getKeyAgreement-style request with a COSE_Key (keys 1, 3, -1, -2, -3).
  const CLIENT_PIN_REQ =
    'a40102020503a5010203381820012158207bac22d4791f58c2afe486e9c73d22f6d8f338274c8a8b86efd3ab228fde625a2258209a44d71d67249b800d31ef7d2c38760a77d6d4198b1ef40b9e38fe58987db4d9065820b9faac4c7c7dbd0983da564693c07a9aa00a0e5a8e896382461e95d25fdd1671';

  for (const [name, vector] of Object.entries({
    GET_INFO,
    GET_INFO_10,
    GET_INFO_YUBIKEY_BIO,
    MAKE_CREDENTIAL_REQ,
    GET_ASSERTION_REQ,
    GET_ASSERTION_RESP,
    CLIENT_PIN_REQ,
  })) {
    it(`encode(decode(${name})) is byte-identical`, () => {
      expect(toHex(encode(decode(hex(vector))))).toBe(vector);
    });
  }

  it('decodes the getInfo example to the expected structure and re-encodes a hand-built equal value', () => {
    const aaguid = hex('f8a011f38c0a4d15800617111f9edc7d');
    // Insertion order deliberately scrambled: the encoder must sort (CTAP 2.1 §8).
    const built: CborMap = new Map<CborValue, CborValue>([
      [6, [1]],
      [4, new Map<CborValue, CborValue>([['clientPin', false], ['plat', false], ['up', true], ['rk', true]])],
      [5, 1200],
      [1, ['U2F_V2', 'FIDO_2_0']],
      [3, aaguid],
      [2, ['uvm', 'hmac-secret']],
    ]);
    expect(toHex(encode(built))).toBe(GET_INFO);
    const decoded = decode(hex(GET_INFO));
    expect(decoded).toEqual(built);
    expect(isCborMap(decoded)).toBe(true);
    if (!isCborMap(decoded)) return;
    expect([...decoded.keys()]).toEqual([1, 2, 3, 4, 5, 6]);
    const options = decoded.get(4);
    expect(isCborMap(options) ? [...options.keys()] : null).toEqual(['rk', 'up', 'plat', 'clientPin']);
  });

  it('decodes the COSE_Key in the clientPin example with negative integer labels', () => {
    const m = decode(hex(CLIENT_PIN_REQ));
    if (!isCborMap(m)) throw new Error('not a map');
    const key = m.get(3);
    if (!isCborMap(key)) throw new Error('not a map');
    expect([...key.keys()]).toEqual([1, 3, -1, -2, -3]);
    expect(key.get(3)).toBe(-25); // ECDH-ES+HKDF-256
    expect((key.get(-2) as Uint8Array).length).toBe(32);
  });
});

describe('CTAP 2.1 §8 canonical map key order', () => {
  const order = (m: Map<CborValue, CborValue>): CborValue[] => {
    const d = decode(encode(m));
    if (!isCborMap(d)) throw new Error('not a map');
    return [...d.keys()];
  };

  it('sorts by major type first: unsigned, negative, bytes, text', () => {
    const m = new Map<CborValue, CborValue>([['a', 0], [hex('00'), 0], [-1, 0], [1, 0]]);
    expect(order(m)).toEqual([1, -1, hex('00'), 'a']);
    expect(toHex(encode(m))).toBe('a4' + '0100' + '2000' + '410000' + '616100');
  });

  it('puts an integer key before a shorter text key (major type outranks length)', () => {
    // RFC 7049 "length first" would put "a" (2 bytes) before 1000 (3 bytes); CTAP2 puts 1000 first.
    expect(toHex(encode(new Map<CborValue, CborValue>([['a', 1], [1000, 2]])))).toBe('a21903e8026161' + '01');
  });

  it('within a major type sorts shorter encodings first, then bytewise', () => {
    expect(order(new Map<CborValue, CborValue>([[100, 0], [24, 0], [23, 0], [0, 0], [1000, 0]]))).toEqual([0, 23, 24, 100, 1000]);
    expect(order(new Map<CborValue, CborValue>([[-1000, 0], [-1, 0], [-24, 0], [-25, 0]]))).toEqual([-1, -24, -25, -1000]);
    expect(order(new Map<CborValue, CborValue>([['clientPin', 0], ['plat', 0], ['up', 0], ['rk', 0], ['uv', 0]]))).toEqual([
      'rk',
      'up',
      'uv',
      'plat',
      'clientPin',
    ]);
    expect(order(new Map<CborValue, CborValue>([['b', 0], ['aa', 0], ['a', 0]]))).toEqual(['a', 'b', 'aa']);
  });

  it('COSE_Key labels sort 1, 3, -1, -2, -3 whatever the insertion order', () => {
    const m = new Map<CborValue, CborValue>([[-3, hex('00')], [-1, 1], [3, -7], [-2, hex('01')], [1, 2]]);
    expect(toHex(encode(m))).toBe('a5' + '0102' + '0326' + '2001' + '214101' + '224100');
  });

  it('encodes booleans/null/bytes keys too and sorts them by encoding', () => {
    const m = new Map<CborValue, CborValue>([[null, 1], [true, 2], [false, 3]]);
    expect(toHex(encode(m))).toBe('a3f403f502f601');
    expect(decode(hex('a3f403f502f601'))).toEqual(m);
  });
});

describe('decoder', () => {
  it('returns byte strings as copies independent of the input buffer', () => {
    const input = hex('a1014401020304');
    const m = decode(input);
    if (!isCborMap(m)) throw new Error('not a map');
    const b = m.get(1) as Uint8Array;
    input.fill(0xaa);
    expect(b).toEqual(hex('01020304'));
    expect(b.byteOffset).toBe(0);
    expect(b.buffer.byteLength).toBe(4);
  });

  it('accepts non-canonical input only with canonical: false, with the same value', () => {
    const cases: [string, CborValue][] = [
      ['1817', 23],
      ['190017', 23],
      ['1a000000ff', 255],
      ['1b00000000ffffffff', 4294967295],
      ['3817', -24],
      ['580100', hex('00')],
      ['780161', 'a'],
      ['980101', [1]],
      ['b8010102', new Map([[1, 2]])],
      ['a202000100', new Map([[2, 0], [1, 0]])],
      ['a2616100 0100', new Map<CborValue, CborValue>([['a', 0], [1, 0]])],
      ['a2626161006162 00', new Map<CborValue, CborValue>([['aa', 0], ['b', 0]])],
    ];
    for (const [enc, value] of cases) {
      expectCborError(() => decode(hex(enc)), 'nonCanonical');
      expect(decode(hex(enc), { canonical: false })).toEqual(value);
    }
  });

  it('rejects duplicate keys in both modes, including non-canonical spellings of the same key', () => {
    expectCborError(() => decode(hex('a2 01 00 01 00')), 'duplicateKey');
    expectCborError(() => decode(hex('a2 01 00 01 00'), { canonical: false }), 'duplicateKey');
    expectCborError(() => decode(hex('a2 6161 00 6161 01')), 'duplicateKey');
    expectCborError(() => decode(hex('a2 1801 00 01 00'), { canonical: false }), 'duplicateKey');
    expectCborError(() => decode(hex('a2 41ff 00 41ff 00'), { canonical: false }), 'duplicateKey');
    expectCborError(() => decode(hex('a2 f5 00 f5 00'), { canonical: false }), 'duplicateKey');
    // a key equal to a value elsewhere is fine
    expect(decode(hex('a2 01 01 02 01'))).toEqual(new Map([[1, 1], [2, 1]]));
  });

  it('enforces the CTAP 2.1 §8 nesting limit of 4 by default', () => {
    expect(decode(hex('8181818100'))).toEqual([[[[0]]]]);
    expectCborError(() => decode(hex('818181818100')), 'depth');
    // {1: {2: {3: {4: 0}}}, -1: 99} is 4 levels; one more map is 5.
    expect(() => decode(hex('a2 01 a1 02 a1 03 a1 04 00 20 18 63'))).not.toThrow();
    expectCborError(() => decode(hex('a2 01 a1 02 a1 03 a1 04 a1 05 00 20 18 63')), 'depth');
    // empty containers count as a level too
    expect(decode(hex('81818180'))).toEqual([[[[]]]]);
    expectCborError(() => decode(hex('8181818180')), 'depth');
    expectCborError(() => decode(hex('81818181a0')), 'depth');
  });

  it('honours maxDepth and validates it', () => {
    expect(decode(hex('818181818100'), { maxDepth: 5 })).toEqual([[[[[0]]]]]);
    expectCborError(() => decode(hex('8100'), { maxDepth: 0 }), 'depth');
    expect(decode(hex('00'), { maxDepth: 0 })).toBe(0);
    expectCborError(() => decode(hex('818100'), { maxDepth: 1 }), 'depth');
    expectCborError(() => decode(hex('00'), { maxDepth: 65 }), 'invalid');
    expectCborError(() => decode(hex('00'), { maxDepth: 1.5 }), 'invalid');
    expectCborError(() => decode(hex('00'), { maxDepth: -1 }), 'invalid');
    // 64 deep is the ceiling and does not overflow the stack
    const deep = new Uint8Array(65).fill(0x81);
    deep[64] = 0x00;
    expect(() => decode(deep, { maxDepth: 64 })).not.toThrow();
    expectCborError(() => decode(new Uint8Array(10_000).fill(0x81), { maxDepth: 64 }), 'depth');
  });

  const rejections: [string, string, CborErrorCode][] = [
    ['empty input', '', 'truncated'],
    ['missing 1-byte argument', '18', 'truncated'],
    ['short 2-byte argument', '1901', 'truncated'],
    ['short 4-byte argument', '1a000001', 'truncated'],
    ['short 8-byte argument', '1b00000000000001', 'truncated'],
    ['short text', '6261', 'truncated'],
    ['short bytes', '4301', 'truncated'],
    ['array missing items', '8201', 'truncated'],
    ['map missing value', 'a101', 'truncated'],
    ['map missing key', 'a2 01 00', 'truncated'],
    ['4 GiB byte string header (checked before allocating)', '5affffffff00', 'truncated'],
    ['2^53 text length', '7b002000000000000000', 'truncated'],
    ['2^64-1 byte length', '5bffffffffffffffff', 'truncated'],
    ['huge array count', '9b00000001000000000000', 'truncated'],
    ['huge map count', 'bb7fffffffffffffff0000', 'truncated'],
    ['map count above remaining bytes', 'a30102030405', 'truncated'],
    ['trailing byte', '0000', 'trailing'],
    ['trailing after map', 'a0ff', 'trailing'],
    ['indefinite byte string', '5f4100ff', 'indefinite'],
    ['indefinite text', '7fff', 'indefinite'],
    ['indefinite array', '9fff', 'indefinite'],
    ['indefinite map', 'bfff', 'indefinite'],
    ['reserved ai 28 (uint)', '1c', 'invalid'],
    ['reserved ai 29 (nint)', '3d', 'invalid'],
    ['reserved ai 30 (bytes)', '5e', 'invalid'],
    ['reserved ai 28 (text)', '7c', 'invalid'],
    ['reserved ai 29 (array)', '9d', 'invalid'],
    ['reserved ai 30 (map)', 'be', 'invalid'],
    ['reserved ai 28 (tag)', 'dc', 'invalid'],
    ['reserved ai 28 (simple)', 'fc', 'invalid'],
    ['ai 31 on uint', '1f', 'invalid'],
    ['ai 31 on nint', '3f', 'invalid'],
    ['ai 31 on tag', 'df', 'invalid'],
    ['stray break', 'ff', 'invalid'],
    ['stray break in array', '81ff', 'invalid'],
    ['two-byte simple value < 32', 'f818', 'invalid'],
    ['invalid UTF-8 continuation', '62c328', 'invalid'],
    ['invalid UTF-8 lead byte', '61ff', 'invalid'],
    ['UTF-8 encoded surrogate', '63eda080', 'invalid'],
    ['overlong UTF-8', '62c080', 'invalid'],
    ['truncated UTF-8 sequence', '62e6b0', 'invalid'],
    ['tag 0 (date string)', 'c06161', 'unsupported'],
    ['tag 24 (embedded CBOR)', 'd8184100', 'unsupported'],
    ['tag 2 (bignum)', 'c24101', 'unsupported'],
    ['half float', 'f90000', 'unsupported'],
    ['single float', 'fa3f800000', 'unsupported'],
    ['double float', 'fb3ff0000000000000', 'unsupported'],
    ['undefined', 'f7', 'unsupported'],
    ['unassigned simple value 16', 'f0', 'unsupported'],
    ['simple value 255', 'f8ff', 'unsupported'],
    ['array as map key', 'a18000', 'unsupported'],
    ['map as map key', 'a1a000', 'unsupported'],
    ['float as map key', 'a1f9000000', 'unsupported'],
    ['non-canonical uint', '1817', 'nonCanonical'],
    ['non-canonical length', '5800', 'nonCanonical'],
    ['unsorted keys', 'a202000100', 'nonCanonical'],
    ['text key before integer key', 'a2616100 0100', 'nonCanonical'],
    ['a tag deep inside a valid prefix', 'a301 00 02 00 03 82 01 c0', 'unsupported'],
    ['truncation deep inside a valid prefix', 'a301 00 02 00 03 82 01 62 61', 'truncated'],
  ];
  for (const [name, enc, code] of rejections) {
    it(`rejects ${name} with ${code}`, () => {
      expectCborError(() => decode(hex(enc)), code);
    });
  }

  it('rejects input that is not a Uint8Array with a CborError', () => {
    expectCborError(() => decode('a0' as unknown as Uint8Array), 'invalid');
    expectCborError(() => decode(null as unknown as Uint8Array), 'invalid');
  });

  it('accepts Buffer and subarray views as input', () => {
    expect(decode(Buffer.from('a10102', 'hex'))).toEqual(new Map([[1, 2]]));
    const big = hex('ffff a10102 ffff');
    expect(decode(big.subarray(2, 5))).toEqual(new Map([[1, 2]]));
  });

  it('keeps a leading BOM and non-ASCII text exactly', () => {
    expect(decode(encode('\ufeffabc'))).toBe('\ufeffabc');
    const long = 'é'.repeat(100) + 'x'.repeat(100);
    expect(decode(encode(long))).toBe(long);
  });
});

describe('encoder', () => {
  const rejections: [string, unknown, CborErrorCode][] = [
    ['undefined', undefined, 'unsupported'],
    ['undefined inside an array', [1, undefined], 'unsupported'],
    ['undefined map value', new Map([[1, undefined]]), 'unsupported'],
    ['sparse array hole', new Array(2), 'unsupported'],
    ['fraction', 1.5, 'unsupported'],
    ['NaN', Number.NaN, 'unsupported'],
    ['Infinity', Number.POSITIVE_INFINITY, 'unsupported'],
    ['unsafe integer number', 2 ** 53, 'unsupported'],
    ['plain object', { a: 1 }, 'unsupported'],
    ['Date', new Date(0), 'unsupported'],
    ['Uint16Array', new Uint16Array(2), 'unsupported'],
    ['ArrayBuffer', new ArrayBuffer(2), 'unsupported'],
    ['symbol', Symbol('x'), 'unsupported'],
    ['function', () => 0, 'unsupported'],
    ['bigint 2^64', 2n ** 64n, 'invalid'],
    ['bigint -2^64-1', -(2n ** 64n) - 1n, 'invalid'],
    ['lone high surrogate', 'a\ud800', 'invalid'],
    ['lone low surrogate', '\udc00b', 'invalid'],
    ['reversed surrogate pair', '\udc00\ud800', 'invalid'],
    ['array map key', new Map([[[1], 0]]), 'unsupported'],
    ['map map key', new Map([[new Map(), 0]]), 'unsupported'],
    ['number and bigint keys with one encoding', new Map<CborValue, CborValue>([[1, 0], [1n, 1]]), 'duplicateKey'],
    ['equal byte-string keys', new Map([[hex('01'), 0], [hex('01'), 1]]), 'duplicateKey'],
    ['5 levels of nesting', [[[[[0]]]]], 'depth'],
    ['5 levels of mixed nesting', new Map([[1, [new Map([[2, [new Map()]]])]]]), 'depth'],
  ];
  for (const [name, value, code] of rejections) {
    it(`rejects ${name} with ${code}`, () => {
      expectCborError(() => encode(value as CborValue), code);
    });
  }

  it('rejects cyclic structures with a depth error instead of overflowing the stack', () => {
    const a: CborValue[] = [];
    a.push(a);
    expectCborError(() => encode(a), 'depth');
    expectCborError(() => encode(a, { maxDepth: 64 }), 'depth');
    const m: CborMap = new Map();
    m.set(1, m);
    expectCborError(() => encode(m), 'depth');
  });

  it('honours maxDepth and validates it', () => {
    expect(toHex(encode([[[[[0]]]]], { maxDepth: 5 }))).toBe('818181818100');
    expectCborError(() => encode([], { maxDepth: 0 }), 'depth');
    expect(toHex(encode(7, { maxDepth: 0 }))).toBe('07');
    expectCborError(() => encode(0, { maxDepth: 100 }), 'invalid');
  });

  it('encodes Buffer (a Uint8Array subclass) and subarray views as byte strings of just their view', () => {
    expect(toHex(encode(Buffer.from([1, 2])))).toBe('420102');
    const backing = hex('00112233');
    expect(toHex(encode(backing.subarray(1, 3)))).toBe('421122');
  });

  it('grows its buffer for large values', () => {
    const big = new Uint8Array(100_000).map((_, i) => i & 0xff);
    const enc = encode([big, 'x'.repeat(70_000), big]);
    const back = decode(enc) as [Uint8Array, string, Uint8Array];
    expect(back.length).toBe(3);
    expect(Buffer.from(back[0]).equals(big)).toBe(true);
    expect(back[1]).toBe('x'.repeat(70_000));
    expect(Buffer.from(back[2]).equals(big)).toBe(true);
  });

  it('returns a fresh, exactly-sized buffer', () => {
    const enc = encode(1);
    expect(enc.byteOffset).toBe(0);
    expect(enc.buffer.byteLength).toBe(1);
  });
});

describe('CborError', () => {
  it('is an Error with a code and name', () => {
    const e = new CborError('invalid', 'x');
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe('CborError');
    expect(e.code).toBe('invalid');
    expect(e.message).toContain('x');
  });
});
