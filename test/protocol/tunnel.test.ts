/**
 * protocol/tunnel.ts: byte-layout vectors, strict validation of every field, and properties (encode -> decode
 * identity under random chunking; random bytes only ever raise TunnelProtocolError).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ERR_UNKNOWN_AUTHENTICATOR,
  FRAME_HEADER_LENGTH,
  FrameDecoder,
  MAX_AUTHENTICATORS,
  MAX_CTAP_PAYLOAD,
  MAX_FRAME_LENGTH,
  MAX_ID_BYTES,
  MAX_LABEL_BYTES,
  MAX_MESSAGE_BYTES,
  TUNNEL_PROTOCOL_VERSION,
  TunnelProtocolError,
  decodeFrame,
  encodeFrame,
  type ExportedAuthenticator,
  type Frame,
  type TunnelProtocolErrorCode,
} from '../../protocol/tunnel.ts';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const fromHex = (h: string): Uint8Array => new Uint8Array(Buffer.from(h.replace(/\s+/g, ''), 'hex'));

function expectProtocolError(fn: () => unknown, code: TunnelProtocolErrorCode): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(TunnelProtocolError);
  expect((caught as TunnelProtocolError).code).toBe(code);
}

/** Wrap a raw TYPE + PAYLOAD into a frame with a correct LENGTH. */
function rawFrame(type: number, payload: Uint8Array | number[]): Uint8Array {
  const p = Uint8Array.from(payload);
  const out = new Uint8Array(5 + p.length);
  new DataView(out.buffer).setUint32(0, 1 + p.length);
  out[4] = type;
  out.set(p, 5);
  return out;
}

describe('byte layout vectors (protocol/README.md)', () => {
  it('HELLO', () => {
    const bytes = encodeFrame({ type: 'hello', version: 1, role: 'gateway', name: 'vm1' });
    expect(hex(bytes)).toBe('00000009' + '01' + '0001' + '02' + '0003' + '766d31');
    expect(decodeFrame(bytes)).toEqual({ type: 'hello', version: 1, role: 'gateway', name: 'vm1' });
  });
  it('AUTHENTICATORS', () => {
    const a: ExportedAuthenticator = {
      id: 'soft',
      label: 'Soft',
      transport: 'soft',
      ctap1: true,
      wink: true,
      getInfo: Uint8Array.of(0x00, 0xa0),
    };
    const bytes = encodeFrame({ type: 'authenticators', authenticators: [a] });
    expect(hex(bytes)).toBe(
      '00000014' + '02' + '0001' + '04' + '736f6674' + '0004' + '536f6674' + '01' + '03' + '0002' + '00a0',
    );
    expect(decodeFrame(bytes)).toEqual({ type: 'authenticators', authenticators: [a] });
  });
  it('REQUEST, KEEPALIVE, RESPONSE, CANCEL', () => {
    expect(
      hex(encodeFrame({ type: 'request', requestId: 7, authenticatorId: 'a', kind: 'cbor', payload: Uint8Array.of(4) })),
    ).toBe('0000000b' + '03' + '00000007' + '01' + '61' + '01' + '0001' + '04');
    expect(
      hex(encodeFrame({ type: 'request', requestId: 7, authenticatorId: 'a', kind: 'msg', payload: Uint8Array.of(0, 3) })),
    ).toBe('0000000c' + '03' + '00000007' + '01' + '61' + '02' + '0002' + '0003');
    expect(hex(encodeFrame({ type: 'keepalive', requestId: 0xfffffffe, status: 2 }))).toBe('00000006' + '04' + 'fffffffe' + '02');
    expect(hex(encodeFrame({ type: 'response', requestId: 7, payload: Uint8Array.of(0x2d) }))).toBe(
      '00000008' + '05' + '00000007' + '0001' + '2d',
    );
    expect(hex(encodeFrame({ type: 'cancel', requestId: 7 }))).toBe('00000005' + '06' + '00000007');
  });
  it('ERROR, PING, PONG', () => {
    expect(hex(encodeFrame({ type: 'error', requestId: null, code: 2, message: 'v' }))).toBe(
      '0000000a' + '07' + '00000000' + '0002' + '0001' + '76',
    );
    expect(
      decodeFrame(fromHex('0000000a 07 00000009 0003 0001 76')),
    ).toEqual({ type: 'error', requestId: 9, code: ERR_UNKNOWN_AUTHENTICATOR, message: 'v' });
    expect(hex(encodeFrame({ type: 'ping', nonce: 0xdeadbeef }))).toBe('00000005' + '08' + 'deadbeef');
    expect(hex(encodeFrame({ type: 'pong', nonce: 0 }))).toBe('00000005' + '09' + '00000000');
  });
  it('the protocol version is 1', () => {
    expect(TUNNEL_PROTOCOL_VERSION).toBe(1);
  });
});

describe('framing errors', () => {
  it('refuses an over-long LENGTH as soon as the header is in, without buffering the body', () => {
    const d = new FrameDecoder();
    expectProtocolError(() => d.push(Uint8Array.of(0, 0, 0x40, 0x01)), 'FRAME_TOO_LONG');
    expectProtocolError(() => d.push(encodeFrame({ type: 'ping', nonce: 1 })), 'DECODER_FAILED');
  });
  it('accepts LENGTH == MAX_FRAME_LENGTH up to the codec and refuses +1', () => {
    const d = new FrameDecoder();
    const header = new Uint8Array(4);
    new DataView(header.buffer).setUint32(0, MAX_FRAME_LENGTH);
    expect(d.push(header)).toEqual([]);
    expect(d.buffered).toBe(4);
    new DataView(header.buffer).setUint32(0, MAX_FRAME_LENGTH + 1);
    expectProtocolError(() => new FrameDecoder().push(header), 'FRAME_TOO_LONG');
  });
  it('refuses an empty frame', () => {
    expectProtocolError(() => new FrameDecoder().push(Uint8Array.of(0, 0, 0, 0)), 'FRAME_EMPTY');
  });
  it('refuses unknown frame types', () => {
    for (const t of [0x00, 0x0a, 0x7f, 0xff]) expectProtocolError(() => decodeFrame(rawFrame(t, [])), 'UNKNOWN_TYPE');
  });
  it('refuses truncated and trailing payloads', () => {
    expectProtocolError(() => decodeFrame(rawFrame(0x06, [0, 0, 1])), 'TRUNCATED');
    expectProtocolError(() => decodeFrame(rawFrame(0x06, [0, 0, 0, 1, 0])), 'TRAILING_BYTES');
    expectProtocolError(() => decodeFrame(rawFrame(0x01, [0, 1, 1, 0, 5, 0x61])), 'TRUNCATED');
  });
  it('the encoder refuses a frame larger than MAX_FRAME_LENGTH', () => {
    const big = (i: number): ExportedAuthenticator => ({
      id: `k${i}`,
      label: 'x',
      transport: 'hid',
      ctap1: false,
      wink: false,
      getInfo: new Uint8Array(MAX_CTAP_PAYLOAD),
    });
    expect(() => encodeFrame({ type: 'authenticators', authenticators: [big(1), big(2)] })).not.toThrow();
    expectProtocolError(
      () => encodeFrame({ type: 'authenticators', authenticators: [big(1), big(2), big(3)] }),
      'FRAME_TOO_LONG',
    );
  });
});

describe('field validation (decoder and encoder agree)', () => {
  const okRequest = { type: 'request', requestId: 1, authenticatorId: 'a', kind: 'cbor', payload: Uint8Array.of(4) } as const;

  it('request ids are 1..2^32-1; 0 only means "no request" in ERROR', () => {
    expectProtocolError(() => encodeFrame({ ...okRequest, requestId: 0 }), 'BAD_FIELD');
    expectProtocolError(() => encodeFrame({ ...okRequest, requestId: 2 ** 32 }), 'BAD_FIELD');
    expectProtocolError(() => encodeFrame({ ...okRequest, requestId: 1.5 }), 'BAD_FIELD');
    expectProtocolError(() => decodeFrame(rawFrame(0x06, [0, 0, 0, 0])), 'BAD_FIELD');
    expectProtocolError(() => decodeFrame(rawFrame(0x04, [0, 0, 0, 0, 1])), 'BAD_FIELD');
    expect(decodeFrame(rawFrame(0x06, [0xff, 0xff, 0xff, 0xff]))).toEqual({ type: 'cancel', requestId: 0xffffffff });
  });
  it('enumerations: role, transport, flags, kind, keepalive status, error code', () => {
    expectProtocolError(() => decodeFrame(rawFrame(0x01, [0, 1, 3, 0, 0])), 'BAD_FIELD'); // role 3
    expectProtocolError(() => decodeFrame(rawFrame(0x01, [0, 1, 0, 0, 0])), 'BAD_FIELD'); // role 0
    // AUTHENTICATORS: count 1, id "a", label "b", transport 3
    expectProtocolError(() => decodeFrame(rawFrame(0x02, [0, 1, 1, 0x61, 0, 1, 0x62, 3, 0, 0, 0])), 'BAD_FIELD');
    // reserved flag bit 0x04
    expectProtocolError(() => decodeFrame(rawFrame(0x02, [0, 1, 1, 0x61, 0, 1, 0x62, 1, 4, 0, 0])), 'BAD_FIELD');
    expect(decodeFrame(rawFrame(0x02, [0, 1, 1, 0x61, 0, 1, 0x62, 2, 2, 0, 0]))).toEqual({
      type: 'authenticators',
      authenticators: [{ id: 'a', label: 'b', transport: 'hid', ctap1: false, wink: true, getInfo: new Uint8Array(0) }],
    });
    expectProtocolError(() => decodeFrame(rawFrame(0x03, [0, 0, 0, 1, 1, 0x61, 3, 0, 1, 4])), 'BAD_FIELD'); // kind 3
    expectProtocolError(() => decodeFrame(rawFrame(0x04, [0, 0, 0, 1, 0])), 'BAD_FIELD'); // status 0
    expectProtocolError(() => decodeFrame(rawFrame(0x04, [0, 0, 0, 1, 3])), 'BAD_FIELD'); // status 3
    expectProtocolError(() => decodeFrame(rawFrame(0x07, [0, 0, 0, 0, 0, 0, 0, 0])), 'BAD_FIELD'); // code 0
    expect(decodeFrame(rawFrame(0x07, [0, 0, 0, 0, 0xff, 0xff, 0, 0]))).toEqual({
      type: 'error',
      requestId: null,
      code: 0xffff,
      message: '',
    });
  });
  it('bounds every string and byte string', () => {
    expect(() => encodeFrame({ type: 'hello', version: 1, role: 'agent', name: 'é'.repeat(128) })).not.toThrow();
    expectProtocolError(() => encodeFrame({ type: 'hello', version: 1, role: 'agent', name: 'é'.repeat(129) }), 'BAD_FIELD');
    expectProtocolError(() => encodeFrame({ ...okRequest, authenticatorId: 'x'.repeat(MAX_ID_BYTES + 1) }), 'BAD_FIELD');
    expect(() => encodeFrame({ ...okRequest, authenticatorId: 'x'.repeat(MAX_ID_BYTES) })).not.toThrow();
    expectProtocolError(() => encodeFrame({ ...okRequest, payload: new Uint8Array(MAX_CTAP_PAYLOAD + 1) }), 'BAD_FIELD');
    expect(() => encodeFrame({ ...okRequest, payload: new Uint8Array(MAX_CTAP_PAYLOAD) })).not.toThrow();
    expectProtocolError(() => encodeFrame({ ...okRequest, payload: new Uint8Array(0) }), 'BAD_FIELD');
    expectProtocolError(
      () => encodeFrame({ type: 'error', requestId: 1, code: 9, message: 'm'.repeat(MAX_MESSAGE_BYTES + 1) }),
      'BAD_FIELD',
    );
    // Decoder side: HELLO name length 257 is refused from the length prefix alone.
    expectProtocolError(() => decodeFrame(rawFrame(0x01, [0, 1, 1, 0x01, 0x01])), 'BAD_FIELD');
    // RESPONSE payload length 7611 refused from the prefix.
    const n = MAX_CTAP_PAYLOAD + 1;
    expectProtocolError(() => decodeFrame(rawFrame(0x05, [0, 0, 0, 1, n >> 8, n & 0xff])), 'BAD_FIELD');
    // Empty label.
    expectProtocolError(() => decodeFrame(rawFrame(0x02, [0, 1, 1, 0x61, 0, 0, 1, 0, 0, 0])), 'BAD_FIELD');
    expect(MAX_LABEL_BYTES).toBe(256);
  });
  it('refuses invalid UTF-8, control characters, non-printable ids, lone surrogates', () => {
    expectProtocolError(() => decodeFrame(rawFrame(0x01, [0, 1, 1, 0, 2, 0xc3, 0x28])), 'BAD_FIELD');
    expectProtocolError(() => decodeFrame(rawFrame(0x01, [0, 1, 1, 0, 1, 0x0a])), 'BAD_FIELD');
    expectProtocolError(() => decodeFrame(rawFrame(0x01, [0, 1, 1, 0, 2, 0xc2, 0x9b])), 'BAD_FIELD'); // C1 CSI
    expectProtocolError(() => decodeFrame(rawFrame(0x03, [0, 0, 0, 1, 1, 0x20, 1, 0, 1, 4])), 'BAD_FIELD'); // id " "
    expectProtocolError(() => decodeFrame(rawFrame(0x03, [0, 0, 0, 1, 0, 1, 0, 1, 4])), 'BAD_FIELD'); // empty id
    expectProtocolError(() => encodeFrame({ ...okRequest, authenticatorId: 'é' }), 'BAD_FIELD');
    expectProtocolError(() => encodeFrame({ type: 'hello', version: 1, role: 'agent', name: 'a\ud800' }), 'BAD_FIELD');
    expectProtocolError(() => encodeFrame({ type: 'hello', version: 1, role: 'agent', name: '\u001b[31m' }), 'BAD_FIELD');
  });
  it('refuses duplicate authenticator ids and too many authenticators', () => {
    const a: ExportedAuthenticator = { id: 'a', label: 'l', transport: 'soft', ctap1: false, wink: false, getInfo: new Uint8Array(0) };
    expectProtocolError(() => encodeFrame({ type: 'authenticators', authenticators: [a, a] }), 'BAD_FIELD');
    const one = [1, 0x61, 0, 1, 0x62, 1, 0, 0, 0];
    expectProtocolError(() => decodeFrame(rawFrame(0x02, [0, 2, ...one, ...one])), 'BAD_FIELD');
    const many = Array.from({ length: MAX_AUTHENTICATORS + 1 }, (_, i) => ({ ...a, id: `a${i}` }));
    expectProtocolError(() => encodeFrame({ type: 'authenticators', authenticators: many }), 'BAD_FIELD');
    expectProtocolError(() => decodeFrame(rawFrame(0x02, [0, MAX_AUTHENTICATORS + 1])), 'BAD_FIELD');
  });
  it('Buffer chunks (as sockets deliver them) decode to plain Uint8Arrays that do not alias the chunk', () => {
    const frame = encodeFrame({ type: 'response', requestId: 1, payload: Uint8Array.of(1, 2, 3) });
    const chunk = Buffer.concat([Buffer.from(frame), Buffer.from(frame.subarray(0, 6))]);
    const decoder = new FrameDecoder();
    const [f] = decoder.push(chunk);
    chunk.fill(0); // the socket reuses its buffer; the partial frame held by the decoder must not change
    const [g] = decoder.push(Buffer.from(frame.subarray(6)));
    for (const decoded of [f, g]) {
      expect(decoded.type === 'response' && Object.getPrototypeOf(decoded.payload)).toBe(Uint8Array.prototype);
      expect(decoded).toEqual({ type: 'response', requestId: 1, payload: Uint8Array.of(1, 2, 3) });
    }
  });
  it('decoded byte fields do not alias the decoder buffer', () => {
    const chunk = encodeFrame({ type: 'response', requestId: 1, payload: Uint8Array.of(1, 2, 3) });
    const [f] = new FrameDecoder().push(chunk);
    chunk.fill(0);
    expect(f).toEqual({ type: 'response', requestId: 1, payload: Uint8Array.of(1, 2, 3) });
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Properties.

const requestId = fc.integer({ min: 1, max: 0xffffffff });
const printableId = fc.string({ unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)), minLength: 1, maxLength: MAX_ID_BYTES });
/** Well-formed text without control characters, trimmed to a UTF-8 byte budget. */
function text(minBytes: number, maxBytes: number): fc.Arbitrary<string> {
  return fc
    .string({ unit: 'grapheme', maxLength: 40 })
    .map((s) => s.replace(/[\u0000-\u001f\u007f-\u009f]/g, ''))
    .filter((s) => {
      const n = Buffer.byteLength(s, 'utf8');
      return n >= minBytes && n <= maxBytes;
    });
}
const bytes = (min: number, max: number): fc.Arbitrary<Uint8Array> => fc.uint8Array({ minLength: min, maxLength: max });

/** Near-maximum payloads, built from a short random pattern (generating 7610 random bytes each run is slow). */
const bigBytes: fc.Arbitrary<Uint8Array> = fc
  .tuple(fc.integer({ min: MAX_CTAP_PAYLOAD - 2, max: MAX_CTAP_PAYLOAD }), bytes(1, 16))
  .map(([n, pattern]) => Uint8Array.from({ length: n }, (_, i) => pattern[i % pattern.length]));

const authenticator: fc.Arbitrary<ExportedAuthenticator> = fc.record({
  id: printableId,
  label: text(1, MAX_LABEL_BYTES),
  transport: fc.constantFrom('soft' as const, 'hid' as const),
  ctap1: fc.boolean(),
  wink: fc.boolean(),
  getInfo: bytes(0, 600),
});

const frameArb: fc.Arbitrary<Frame> = fc.oneof(
  fc.record({
    type: fc.constant('hello' as const),
    version: fc.integer({ min: 0, max: 0xffff }),
    role: fc.constantFrom('agent' as const, 'gateway' as const),
    name: text(0, MAX_LABEL_BYTES),
  }),
  fc.record({
    type: fc.constant('authenticators' as const),
    authenticators: fc.uniqueArray(authenticator, { maxLength: 6, selector: (a) => a.id }),
  }),
  fc.record({
    type: fc.constant('request' as const),
    requestId,
    authenticatorId: printableId,
    kind: fc.constantFrom('cbor' as const, 'msg' as const),
    payload: fc.oneof(bytes(1, 300), bigBytes),
  }),
  fc.record({ type: fc.constant('keepalive' as const), requestId, status: fc.constantFrom(1 as const, 2 as const) }),
  fc.record({ type: fc.constant('response' as const), requestId, payload: bytes(1, 300) }),
  fc.record({ type: fc.constant('cancel' as const), requestId }),
  fc.record({
    type: fc.constant('error' as const),
    requestId: fc.option(requestId, { nil: null }),
    code: fc.integer({ min: 1, max: 0xffff }),
    message: text(0, MAX_MESSAGE_BYTES),
  }),
  fc.record({ type: fc.constant('ping' as const), nonce: fc.integer({ min: 0, max: 0xffffffff }) }),
  fc.record({ type: fc.constant('pong' as const), nonce: fc.integer({ min: 0, max: 0xffffffff }) }),
);

/** Split `data` at the given (sorted, deduplicated) cut points. */
function chunk(data: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (data.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(data.subarray(prev, p));
    prev = p;
  }
  out.push(data.subarray(prev));
  return out;
}

/** Frames with every Uint8Array as hex, so deep equality stays cheap for 7 KiB payloads. */
function normalize(frames: Frame[]): unknown {
  return JSON.parse(JSON.stringify(frames, (_k, v: unknown) => (v instanceof Uint8Array ? `hex:${hex(v)}` : v)));
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

describe('properties', () => {
  it('encode -> decode is the identity for random frame sequences under random chunking (10,000 runs)', () => {
    fc.assert(
      fc.property(fc.array(frameArb, { minLength: 1, maxLength: 5 }), fc.array(fc.nat(), { maxLength: 20 }), (frames, cuts) => {
        const stream = concat(frames.map(encodeFrame));
        const decoder = new FrameDecoder();
        const out: Frame[] = [];
        for (const part of chunk(stream, cuts)) {
          out.push(...decoder.push(part));
          expect(decoder.buffered).toBeLessThanOrEqual(FRAME_HEADER_LENGTH + MAX_FRAME_LENGTH);
        }
        expect(decoder.buffered).toBe(0);
        expect(normalize(out)).toEqual(normalize(frames));
      }),
      { numRuns: 10_000 },
    );
  });

  it('byte-at-a-time delivery decodes the same frames (1,000 runs)', () => {
    fc.assert(
      fc.property(frameArb, (frame) => {
        const bytesOut = encodeFrame(frame);
        const decoder = new FrameDecoder();
        const out: Frame[] = [];
        for (let i = 0; i < bytesOut.length; i++) out.push(...decoder.push(bytesOut.subarray(i, i + 1)));
        expect(normalize(out)).toEqual(normalize([frame]));
      }),
      { numRuns: 1_000 },
    );
  });

  it('random bytes never throw anything but TunnelProtocolError (10,000 runs)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.array(fc.nat(), { maxLength: 8 }), (data, cuts) => {
        const decoder = new FrameDecoder();
        try {
          for (const part of chunk(data, cuts)) decoder.push(part);
        } catch (err) {
          expect(err).toBeInstanceOf(TunnelProtocolError);
        }
      }),
      { numRuns: 10_000 },
    );
  });

  it('random payloads under a valid header for every type never throw anything but TunnelProtocolError (10,000 runs)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0x0b }), fc.uint8Array({ maxLength: 64 }), (type, payload) => {
        try {
          const frame = decodeFrame(rawFrame(type, payload));
          // Anything accepted must re-encode to the very same bytes (one canonical encoding per frame).
          expect(hex(encodeFrame(frame))).toBe(hex(rawFrame(type, payload)));
        } catch (err) {
          expect(err).toBeInstanceOf(TunnelProtocolError);
        }
      }),
      { numRuns: 10_000 },
    );
  });

  it('mutating one byte of a valid frame either decodes to a frame that re-encodes identically or throws TunnelProtocolError (10,000 runs)', () => {
    fc.assert(
      fc.property(frameArb, fc.nat(), fc.integer({ min: 0, max: 255 }), (frame, pos, value) => {
        const data = encodeFrame(frame).slice();
        data[pos % data.length] = value;
        const decoder = new FrameDecoder();
        try {
          const frames = decoder.push(data);
          // Whatever was accepted is canonical: re-encoding gives back exactly the consumed bytes.
          expect(hex(concat(frames.map(encodeFrame)))).toBe(hex(data.subarray(0, data.length - decoder.buffered)));
        } catch (err) {
          expect(err).toBeInstanceOf(TunnelProtocolError);
        }
      }),
      { numRuns: 10_000 },
    );
  });
});
