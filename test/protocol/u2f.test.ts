/**
 * protocol/u2f.ts: the one ISO 7816-4 command APDU parser (used by the soft authenticator and the agent's policy)
 * and the status word helpers. APDUs are built here byte by byte from ISO 7816-4 / U2F Raw Message Formats §3.1,
 * independently of the parser.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseApdu, statusWordOf, withStatusWord } from '../../protocol/u2f.ts';

const bytes = (...b: number[]) => Uint8Array.from(b);
const HEAD = [0x00, 0x02, 0x03, 0x00];

/** Short encoding: Lc (1 byte) data [Le (1 byte)]; data 1..255 bytes. */
function short(data: Uint8Array, le: boolean): Uint8Array {
  return Uint8Array.from([...HEAD, data.length, ...data, ...(le ? [0x00] : [])]);
}
/** Extended encoding: 00 Lc1 Lc2 data [Le1 Le2]. */
function extended(data: Uint8Array, le: boolean): Uint8Array {
  return Uint8Array.from([...HEAD, 0x00, data.length >> 8, data.length & 0xff, ...data, ...(le ? [0x00, 0x00] : [])]);
}

describe('parseApdu', () => {
  it('reads the header and the data of every case of ISO 7816-4', () => {
    const data = bytes(1, 2, 3);
    expect(parseApdu(bytes(...HEAD))).toEqual({ cla: 0, ins: 2, p1: 3, p2: 0, data: new Uint8Array(0) }); // case 1
    expect(parseApdu(bytes(...HEAD, 0x00))?.data).toEqual(new Uint8Array(0)); // case 2S
    expect(parseApdu(bytes(...HEAD, 0x00, 0x01, 0x00))?.data).toEqual(new Uint8Array(0)); // case 2E
    expect(parseApdu(short(data, false))?.data).toEqual(data); // case 3S
    expect(parseApdu(short(data, true))?.data).toEqual(data); // case 4S
    expect(parseApdu(extended(data, false))?.data).toEqual(data); // case 3E
    expect(parseApdu(extended(data, true))?.data).toEqual(data); // case 4E
    // U2F Raw Message Formats §3.1.3: "no data" as Lc = 0000 followed by Le (python-fido2 and libfido2 send it).
    expect(parseApdu(bytes(...HEAD, 0x00, 0x00, 0x00, 0x00, 0x00))?.data).toEqual(new Uint8Array(0));
  });

  it('refuses what the length fields do not account for exactly', () => {
    expect(parseApdu(bytes(0x00, 0x02, 0x03))).toBeNull(); // shorter than the header
    expect(parseApdu(bytes(...HEAD, 0x03, 1, 2))).toBeNull(); // short Lc 3, 2 bytes
    expect(parseApdu(bytes(...HEAD, 0x02, 1, 2, 0, 9))).toBeNull(); // short: a byte after Le
    expect(parseApdu(bytes(...HEAD, 0x00, 0x01))).toBeNull(); // extended, Lc cut short
    expect(parseApdu(bytes(...HEAD, 0x00, 0x00, 0x02, 1))).toBeNull(); // extended Lc 2, 1 byte
    expect(parseApdu(bytes(...HEAD, 0x00, 0x00, 0x01, 1, 0))).toBeNull(); // extended with a one-byte Le
    expect(parseApdu(bytes(...HEAD, 0x00, 0x00, 0x01, 1, 0, 0, 7))).toBeNull(); // extended: a byte after Le
  });

  it('returns exactly the data for any length and either encoding, and null once anything follows Le', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 600 }),
        fc.boolean(),
        fc.boolean(),
        fc.uint8Array({ minLength: 1, maxLength: 8 }),
        (data, wantShort, le, tail) => {
          const isShort = wantShort && data.length <= 255;
          const apdu = isShort ? short(data, le) : extended(data, le);
          expect(parseApdu(apdu)?.data).toEqual(data);
          const withLe = isShort ? short(data, true) : extended(data, true);
          expect(parseApdu(Uint8Array.from([...withLe, ...tail]))).toBeNull();
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe('status words', () => {
  it('appends SW1 SW2 to the response data and reads them back', () => {
    expect(withStatusWord(0x6985)).toEqual(bytes(0x69, 0x85));
    expect(withStatusWord(0x9000, bytes(0x55, 0x32))).toEqual(bytes(0x55, 0x32, 0x90, 0x00));
    expect(statusWordOf(bytes(0x55, 0x32, 0x90, 0x00))).toBe(0x9000);
    expect(statusWordOf(bytes(0x6a, 0x80))).toBe(0x6a80);
    expect(statusWordOf(bytes(0x90))).toBeUndefined();
  });
});
