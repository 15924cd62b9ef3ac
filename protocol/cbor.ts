/**
 * CTAP2 canonical CBOR codec (CTAP 2.1 PS 2021-06-15 §8 "Message Encoding"; RFC 8949 / RFC 7049 §3.9).
 *
 * A small, self-contained encoder/decoder for the subset of CBOR that CTAP uses: unsigned and negative
 * integers (major types 0/1), byte strings (2), text strings (3), arrays (4), maps (5) and the simple values
 * false/true/null (7). Everything else — tags, floats, `undefined`, other simple values, indefinite lengths —
 * is rejected with a typed {@link CborError}; no other exception type escapes `encode` or `decode`.
 *
 * Spec rules implemented (CTAP 2.1 §8, "CTAP2 canonical CBOR encoding form"):
 * - integers and lengths are encoded as small as possible; indefinite-length items are never produced;
 * - map keys are sorted: lower major type first, then shorter encoded key first, then byte-wise lexical order
 *   of the encoded key (so integer keys come before text keys, and "rk" sorts before "plat");
 * - tags MUST NOT be present;
 * - "the depth of nested CBOR structures used by all message encodings is limited to at most four (4) levels
 *   of any combination of CBOR maps and/or CBOR arrays" — both encode and decode default to `maxDepth: 4`;
 * - "All encoders MUST serialize CBOR in the CTAP2 canonical CBOR encoding form without duplicate map keys.
 *   All decoders SHOULD reject CBOR that is not validly encoded in the CTAP2 canonical CBOR encoding form and
 *   SHOULD reject messages with duplicate map keys." — so `decode` is strict by default (non-minimal
 *   integers/lengths and mis-ordered keys fail with code `nonCanonical`, duplicates with `duplicateKey`).
 *   `decode(bytes, { canonical: false })` accepts non-minimal encodings and unsorted keys (still rejecting
 *   duplicates and everything else) for reading output of sloppy real authenticators.
 *
 * Why our own strict decoder rather than a general CBOR library (cbor-x was a dependency once and was dropped):
 * every byte decoded here comes from an untrusted peer — a VM's CTAP request, a tunnel frame, a real key's
 * answer. A general-purpose decoder accepts far more than CTAP allows (tags, floats, indefinite lengths, deep
 * nesting, duplicate keys, non-minimal lengths, extension hooks that build arbitrary objects), and each extra
 * feature is attack surface and a way for two parsers — ours and the relying party's or the key's — to read the
 * same bytes differently. Rejecting everything outside the CTAP2 canonical subset, with bounded depth and
 * lengths checked against the input before allocating, keeps the parser small enough to review and to fuzz.
 * python-fido2 keeps its own minimal `fido2/cbor.py` for the same reason.
 *
 * Decoded representation: maps are `Map`s; integers are JS numbers when they are safe integers
 * (|n| <= 2^53 - 1) and bigints otherwise; byte strings are fresh copies (`Uint8Array`, never a view into the
 * input buffer, so callers may keep them — e.g. stored credential ids — after the input buffer is reused).
 */
import { KeytunnelError } from './errors.ts';

export type CborValue = number | bigint | string | Uint8Array | boolean | null | CborValue[] | CborMap;
export type CborMap = Map<CborValue, CborValue>;

export type CborErrorCode =
  /** input ends inside an item, or a declared length/count exceeds the remaining input */
  | 'truncated'
  /** bytes remain after the single top-level item */
  | 'trailing'
  /** indefinite-length string/array/map (CTAP 2.1 §8 forbids them) */
  | 'indefinite'
  /** the same key appears twice in one map */
  | 'duplicateKey'
  /** arrays/maps nested deeper than maxDepth */
  | 'depth'
  /** well-formed CBOR that CTAP does not use: tags, floats, undefined, other simple values, container keys;
   *  or a JS value the encoder cannot represent (undefined, non-integer number, object, ...) */
  | 'unsupported'
  /** not well-formed: reserved additional information, bad UTF-8, stray break, out-of-range value */
  | 'invalid'
  /** well-formed but not in CTAP2 canonical form (non-minimal integer/length, unsorted map keys) */
  | 'nonCanonical';

export class CborError extends KeytunnelError {
  override readonly name = 'CborError';
  readonly code: CborErrorCode;
  constructor(code: CborErrorCode, message: string) {
    super(`CBOR ${code}: ${message}`);
    this.code = code;
  }
}

export interface DecodeOptions {
  /** Maximum nesting of arrays/maps; CTAP 2.1 §8 limit is 4 (the default). Integer in [0, MAX_DEPTH_LIMIT]. */
  maxDepth?: number;
  /** Reject non-canonical encodings (default true, per CTAP 2.1 §8 "decoders SHOULD reject"). */
  canonical?: boolean;
}

export interface EncodeOptions {
  /** Maximum nesting of arrays/maps; CTAP 2.1 §8 limit is 4 (the default). Integer in [0, MAX_DEPTH_LIMIT]. */
  maxDepth?: number;
}

/** CTAP 2.1 §8: at most four levels of nested maps/arrays. */
export const CTAP2_MAX_CBOR_NESTING = 4;
/** Hard ceiling for the maxDepth option: keeps recursion far from the JS stack limit. */
export const MAX_DEPTH_LIMIT = 64;

export function isCborMap(v: CborValue | undefined): v is CborMap {
  return v instanceof Map;
}

// RFC 8949 §3.1 major types.
const MT_UNSIGNED = 0;
const MT_NEGATIVE = 1;
const MT_BYTES = 2;
const MT_TEXT = 3;
const MT_ARRAY = 4;
const MT_MAP = 5;
const MT_TAG = 6;
const MT_SIMPLE = 7;

// RFC 8949 §3.3 simple values.
const SIMPLE_FALSE = 0xf4;
const SIMPLE_TRUE = 0xf5;
const SIMPLE_NULL = 0xf6;

const TWO_POW_32 = 0x1_0000_0000;
const UINT64_MAX = 0xffff_ffff_ffff_ffffn;
const MIN_SAFE_BIG = BigInt(Number.MIN_SAFE_INTEGER);
const MAX_SAFE_BIG = BigInt(Number.MAX_SAFE_INTEGER);

function checkDepthOption(maxDepth: number | undefined): number {
  if (maxDepth === undefined) return CTAP2_MAX_CBOR_NESTING;
  if (!Number.isInteger(maxDepth) || maxDepth < 0 || maxDepth > MAX_DEPTH_LIMIT) {
    throw new CborError('invalid', `maxDepth must be an integer in [0, ${MAX_DEPTH_LIMIT}]`);
  }
  return maxDepth;
}

// ---------------------------------------------------------------------------------------------------------
// Encoder
// ---------------------------------------------------------------------------------------------------------

class Writer {
  buf: Uint8Array;
  pos = 0;
  constructor(initialSize: number) {
    this.buf = new Uint8Array(initialSize);
  }

  ensure(n: number): void {
    const need = this.pos + n;
    if (need <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }

  /** Initial byte plus the smallest argument encoding (CTAP 2.1 §8 "as small as possible"). */
  head(major: number, arg: number): void {
    const mt = major << 5;
    this.ensure(9);
    const b = this.buf;
    if (arg < 24) {
      b[this.pos++] = mt | arg;
    } else if (arg < 0x100) {
      b[this.pos++] = mt | 24;
      b[this.pos++] = arg;
    } else if (arg < 0x1_0000) {
      b[this.pos++] = mt | 25;
      b[this.pos++] = arg >>> 8;
      b[this.pos++] = arg & 0xff;
    } else if (arg < TWO_POW_32) {
      b[this.pos++] = mt | 26;
      b[this.pos++] = arg >>> 24;
      b[this.pos++] = (arg >>> 16) & 0xff;
      b[this.pos++] = (arg >>> 8) & 0xff;
      b[this.pos++] = arg & 0xff;
    } else {
      const hi = Math.floor(arg / TWO_POW_32);
      const lo = arg >>> 0;
      b[this.pos++] = mt | 27;
      b[this.pos++] = hi >>> 24;
      b[this.pos++] = (hi >>> 16) & 0xff;
      b[this.pos++] = (hi >>> 8) & 0xff;
      b[this.pos++] = hi & 0xff;
      b[this.pos++] = lo >>> 24;
      b[this.pos++] = (lo >>> 16) & 0xff;
      b[this.pos++] = (lo >>> 8) & 0xff;
      b[this.pos++] = lo & 0xff;
    }
  }

  headBig(major: number, arg: bigint): void {
    if (arg <= MAX_SAFE_BIG) {
      this.head(major, Number(arg));
      return;
    }
    this.ensure(9);
    this.buf[this.pos++] = (major << 5) | 27;
    for (let shift = 56n; shift >= 0n; shift -= 8n) this.buf[this.pos++] = Number((arg >> shift) & 0xffn);
  }

  bytes(src: Uint8Array): void {
    this.ensure(src.length);
    this.buf.set(src, this.pos);
    this.pos += src.length;
  }

  text(s: string): void {
    // Worst case 3 bytes per UTF-16 code unit; write the payload after reserving room for the longest head,
    // then move it down if the head turned out shorter. Strings in CTAP are short, so this is cheap.
    const maxLen = s.length * 3;
    this.ensure(9 + maxLen);
    const start = this.pos;
    const headLen = maxLen < 24 ? 1 : maxLen < 0x100 ? 2 : maxLen < 0x1_0000 ? 3 : 5;
    let p = start + headLen;
    const b = this.buf;
    for (let i = 0; i < s.length; i++) {
      let c = s.charCodeAt(i);
      if (c < 0x80) {
        b[p++] = c;
      } else if (c < 0x800) {
        b[p++] = 0xc0 | (c >> 6);
        b[p++] = 0x80 | (c & 0x3f);
      } else if (c >= 0xd800 && c <= 0xdfff) {
        const lo = i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
        if (c > 0xdbff || lo < 0xdc00 || lo > 0xdfff) {
          // A lone surrogate has no UTF-8 form (RFC 8949 §3.1: text strings are valid UTF-8).
          throw new CborError('invalid', 'text string contains a lone UTF-16 surrogate');
        }
        i++;
        c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
        b[p++] = 0xf0 | (c >> 18);
        b[p++] = 0x80 | ((c >> 12) & 0x3f);
        b[p++] = 0x80 | ((c >> 6) & 0x3f);
        b[p++] = 0x80 | (c & 0x3f);
      } else {
        b[p++] = 0xe0 | (c >> 12);
        b[p++] = 0x80 | ((c >> 6) & 0x3f);
        b[p++] = 0x80 | (c & 0x3f);
      }
    }
    const len = p - start - headLen;
    this.pos = start;
    this.head(MT_TEXT, len);
    if (this.pos !== start + headLen) {
      b.copyWithin(this.pos, start + headLen, p);
    }
    this.pos += len;
  }

  result(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }
}

/** CTAP 2.1 §8 key order: major type, then encoded length, then byte-wise lexical order. */
function compareEncodedKeys(a: Uint8Array, b: Uint8Array): number {
  const ma = a[0] >> 5;
  const mb = b[0] >> 5;
  if (ma !== mb) return ma - mb;
  if (a.length !== b.length) return a.length - b.length;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) return a[i] - b[i];
  }
  return 0;
}

function encodeInto(w: Writer, v: unknown, depth: number, maxDepth: number): void {
  switch (typeof v) {
    case 'number':
      if (!Number.isSafeInteger(v)) {
        // CTAP never uses floats; unsafe integers would silently lose precision (use bigint).
        throw new CborError('unsupported', `number ${v} is not a safe integer`);
      }
      if (v >= 0) w.head(MT_UNSIGNED, v);
      else w.head(MT_NEGATIVE, -1 - v);
      return;
    case 'bigint':
      if (v >= 0n) {
        if (v > UINT64_MAX) throw new CborError('invalid', 'bigint exceeds 64 bits');
        w.headBig(MT_UNSIGNED, v);
      } else {
        const n = -1n - v;
        if (n > UINT64_MAX) throw new CborError('invalid', 'bigint exceeds 64 bits');
        w.headBig(MT_NEGATIVE, n);
      }
      return;
    case 'string':
      w.text(v);
      return;
    case 'boolean':
      w.ensure(1);
      w.buf[w.pos++] = v ? SIMPLE_TRUE : SIMPLE_FALSE;
      return;
    case 'object': {
      if (v === null) {
        w.ensure(1);
        w.buf[w.pos++] = SIMPLE_NULL;
        return;
      }
      if (v instanceof Uint8Array) {
        w.head(MT_BYTES, v.length);
        w.bytes(v);
        return;
      }
      if (Array.isArray(v)) {
        if (depth >= maxDepth) throw new CborError('depth', `nesting deeper than ${maxDepth}`);
        w.head(MT_ARRAY, v.length);
        for (let i = 0; i < v.length; i++) encodeInto(w, v[i], depth + 1, maxDepth);
        return;
      }
      if (v instanceof Map) {
        if (depth >= maxDepth) throw new CborError('depth', `nesting deeper than ${maxDepth}`);
        encodeMap(w, v, depth + 1, maxDepth);
        return;
      }
      throw new CborError('unsupported', `cannot encode object ${Object.prototype.toString.call(v)}`);
    }
    default:
      // undefined, symbol, function: callers omit absent keys instead of passing undefined.
      throw new CborError('unsupported', `cannot encode ${typeof v}`);
  }
}

const keyScratch = new Writer(64);

function encodeMap(w: Writer, m: Map<unknown, unknown>, depth: number, maxDepth: number): void {
  const entries: { key: Uint8Array; value: unknown }[] = [];
  for (const [k, value] of m) {
    if (k !== null && typeof k === 'object' && !(k instanceof Uint8Array)) {
      // Arrays/maps as keys are legal CBOR but never used by CTAP and have no canonical order in §8.
      throw new CborError('unsupported', 'map keys must be integers, strings, byte strings or simple values');
    }
    // Keys are scalars (checked above), so encoding one never re-enters encodeMap: one scratch writer is safe.
    keyScratch.pos = 0;
    encodeInto(keyScratch, k, depth, maxDepth);
    entries.push({ key: keyScratch.result(), value });
  }
  entries.sort((a, b) => compareEncodedKeys(a.key, b.key));
  for (let i = 1; i < entries.length; i++) {
    // Distinct JS keys can share an encoding (1 and 1n, two equal Uint8Arrays): §8 forbids duplicates.
    if (compareEncodedKeys(entries[i - 1].key, entries[i].key) === 0) {
      throw new CborError('duplicateKey', 'two map keys have the same encoding');
    }
  }
  w.head(MT_MAP, entries.length);
  for (const e of entries) {
    w.bytes(e.key);
    encodeInto(w, e.value, depth, maxDepth);
  }
}

/** Encode `value` in CTAP2 canonical CBOR. Throws CborError for anything CTAP2 canonical CBOR cannot carry. */
export function encode(value: CborValue, options?: EncodeOptions): Uint8Array {
  const maxDepth = checkDepthOption(options?.maxDepth);
  const w = new Writer(256);
  encodeInto(w, value, 0, maxDepth);
  return w.result();
}

// ---------------------------------------------------------------------------------------------------------
// Decoder
// ---------------------------------------------------------------------------------------------------------

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

class Reader {
  pos = 0;
  constructor(
    readonly buf: Uint8Array,
    readonly maxDepth: number,
    readonly canonical: boolean,
  ) {}

  need(n: number): void {
    if (n > this.buf.length - this.pos) throw new CborError('truncated', 'input ends inside an item');
  }

  /**
   * Reads the argument of an item whose initial byte has been consumed. Returns a number when it fits in a
   * safe integer, else a bigint (only possible for ai = 27).
   */
  argument(ai: number): number | bigint {
    const b = this.buf;
    if (ai < 24) return ai;
    let v: number | bigint;
    let min: number;
    switch (ai) {
      case 24:
        this.need(1);
        v = b[this.pos++];
        min = 24;
        break;
      case 25:
        this.need(2);
        v = (b[this.pos] << 8) | b[this.pos + 1];
        this.pos += 2;
        min = 0x100;
        break;
      case 26:
        this.need(4);
        v = (b[this.pos] * 0x100_0000 + ((b[this.pos + 1] << 16) | (b[this.pos + 2] << 8) | b[this.pos + 3])) >>> 0;
        this.pos += 4;
        min = 0x1_0000;
        break;
      case 27: {
        this.need(8);
        const p = this.pos;
        const hi = (b[p] * 0x100_0000 + ((b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3])) >>> 0;
        const lo = (b[p + 4] * 0x100_0000 + ((b[p + 5] << 16) | (b[p + 6] << 8) | b[p + 7])) >>> 0;
        this.pos += 8;
        v = hi < 0x20_0000 ? hi * TWO_POW_32 + lo : (BigInt(hi) << 32n) | BigInt(lo);
        min = TWO_POW_32;
        break;
      }
      default:
        // 28..30 are reserved (RFC 8949 §3); 31 is handled by the caller.
        throw new CborError('invalid', `reserved additional information ${ai}`);
    }
    if (this.canonical && typeof v === 'number' && v < min) {
      throw new CborError('nonCanonical', 'integer or length not encoded in its shortest form');
    }
    return v;
  }

  item(depth: number): CborValue {
    if (this.pos >= this.buf.length) throw new CborError('truncated', 'input ends before an item');
    const ib = this.buf[this.pos++];
    const major = ib >> 5;
    const ai = ib & 0x1f;
    if (ai === 31) {
      if (major >= MT_BYTES && major <= MT_MAP) throw new CborError('indefinite', 'indefinite-length item');
      throw new CborError('invalid', major === MT_SIMPLE ? 'unexpected break code' : 'additional information 31');
    }
    switch (major) {
      case MT_UNSIGNED: {
        const n = this.argument(ai);
        return typeof n === 'bigint' && n <= MAX_SAFE_BIG ? Number(n) : n;
      }
      case MT_NEGATIVE: {
        const n = this.argument(ai);
        if (typeof n === 'number') {
          const r = -1 - n;
          return Number.isSafeInteger(r) ? r : -1n - BigInt(n);
        }
        const r = -1n - n;
        return r >= MIN_SAFE_BIG ? Number(r) : r;
      }
      case MT_BYTES: {
        const len = this.length(ai);
        const start = this.pos;
        this.pos += len;
        return this.buf.slice(start, this.pos);
      }
      case MT_TEXT: {
        const len = this.length(ai);
        const start = this.pos;
        this.pos += len;
        return this.text(start, this.pos);
      }
      case MT_ARRAY: {
        if (depth >= this.maxDepth) throw new CborError('depth', `nesting deeper than ${this.maxDepth}`);
        const count = this.count(ai, 1);
        const out: CborValue[] = [];
        for (let i = 0; i < count; i++) out.push(this.item(depth + 1));
        return out;
      }
      case MT_MAP: {
        if (depth >= this.maxDepth) throw new CborError('depth', `nesting deeper than ${this.maxDepth}`);
        return this.map(this.count(ai, 2), depth + 1);
      }
      case MT_TAG:
        // CTAP 2.1 §8: "Tags ... MUST NOT be present". Reject without reading the argument further.
        if (ai >= 28) throw new CborError('invalid', `reserved additional information ${ai}`);
        throw new CborError('unsupported', 'tags are not allowed in CTAP2 CBOR');
      default:
        return this.simple(ai);
    }
  }

  /** Byte/text string length, bounded by the remaining input before anything is allocated. */
  length(ai: number): number {
    const len = this.argument(ai);
    if (typeof len === 'bigint' || len > this.buf.length - this.pos) {
      throw new CborError('truncated', 'declared length exceeds the remaining input');
    }
    return len;
  }

  /** Array/map entry count, bounded by the remaining input (every item takes at least one byte). */
  count(ai: number, bytesPerEntry: number): number {
    const n = this.argument(ai);
    if (typeof n === 'bigint' || n * bytesPerEntry > this.buf.length - this.pos) {
      throw new CborError('truncated', 'declared count exceeds the remaining input');
    }
    return n;
  }

  text(start: number, end: number): string {
    const b = this.buf;
    // Fast path for ASCII, which is nearly every CTAP string; fall back to the strict decoder otherwise.
    let ascii = true;
    for (let i = start; i < end; i++) {
      if (b[i] >= 0x80) {
        ascii = false;
        break;
      }
    }
    if (ascii) {
      if (end - start <= 64) {
        let s = '';
        for (let i = start; i < end; i++) s += String.fromCharCode(b[i]);
        return s;
      }
      return utf8.decode(b.subarray(start, end));
    }
    try {
      return utf8.decode(b.subarray(start, end));
    } catch {
      throw new CborError('invalid', 'text string is not valid UTF-8');
    }
  }

  map(count: number, depth: number): CborMap {
    const out: CborMap = new Map();
    let prevStart = -1;
    let prevEnd = -1;
    const seen = this.canonical ? null : new Set<string>();
    for (let i = 0; i < count; i++) {
      const keyStart = this.pos;
      if (keyStart < this.buf.length) {
        const km = this.buf[keyStart] >> 5;
        if (km === MT_ARRAY || km === MT_MAP) {
          throw new CborError('unsupported', 'array/map used as a map key');
        }
      }
      const key = this.item(depth);
      const keyEnd = this.pos;
      const encKey = this.buf.subarray(keyStart, keyEnd);
      if (seen === null) {
        if (prevStart >= 0) {
          const c = compareEncodedKeys(this.buf.subarray(prevStart, prevEnd), encKey);
          if (c === 0) throw new CborError('duplicateKey', 'duplicate map key');
          if (c > 0) throw new CborError('nonCanonical', 'map keys are not in CTAP2 canonical order');
        }
        prevStart = keyStart;
        prevEnd = keyEnd;
      } else {
        // Compare by value, not by encoding, since non-canonical encodings of one key may differ.
        const id = keyIdentity(key);
        if (seen.has(id)) throw new CborError('duplicateKey', 'duplicate map key');
        seen.add(id);
      }
      out.set(key, this.item(depth));
    }
    return out;
  }

  simple(ai: number): CborValue {
    switch (ai) {
      case 20:
        return false;
      case 21:
        return true;
      case 22:
        return null;
      case 24: {
        this.need(1);
        const sv = this.buf[this.pos++];
        // RFC 8949 §3.3: simple values 0..31 in the one-byte form are not well-formed.
        if (sv < 32) throw new CborError('invalid', `simple value ${sv} in two-byte form`);
        throw new CborError('unsupported', `simple value ${sv}`);
      }
      case 25:
      case 26:
      case 27:
        throw new CborError('unsupported', 'floating-point values are not used by CTAP');
      case 28:
      case 29:
      case 30:
        throw new CborError('invalid', `reserved additional information ${ai}`);
      default:
        // 0..19 unassigned simple values, 23 undefined.
        throw new CborError('unsupported', ai === 23 ? 'undefined' : `simple value ${ai}`);
    }
  }
}

function keyIdentity(key: CborValue): string {
  if (typeof key === 'number' || typeof key === 'bigint') return `i${key}`;
  if (typeof key === 'string') return `t${key}`;
  if (key instanceof Uint8Array) return `b${Buffer.from(key).toString('hex')}`;
  return `s${String(key)}`;
}

/**
 * Decode exactly one CBOR item occupying all of `bytes` (trailing bytes are an error). Throws only CborError.
 * Byte strings in the result are copies, safe to keep after `bytes` is reused.
 */
export function decode(bytes: Uint8Array, options?: DecodeOptions): CborValue {
  const maxDepth = checkDepthOption(options?.maxDepth);
  if (!(bytes instanceof Uint8Array)) throw new CborError('invalid', 'input is not a Uint8Array');
  const r = new Reader(bytes, maxDepth, options?.canonical ?? true);
  const v = r.item(0);
  if (r.pos !== bytes.length) throw new CborError('trailing', `${bytes.length - r.pos} bytes after the item`);
  return v;
}
