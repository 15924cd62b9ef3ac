/**
 * Typed accessors over decoded CTAP2 request parameters (CTAP 2.1 PS 2021-06-15 §8 message encoding + §6 command
 * parameter tables). Every command handler reads its request through these, so the error mapping is uniform:
 *   - bytes that are not CBOR, or not canonical CTAP2 CBOR      → CTAP2_ERR_INVALID_CBOR
 *   - a member of the wrong CBOR type (incl. top level not a map) → CTAP2_ERR_CBOR_UNEXPECTED_TYPE
 *   - an absent required member                                 → CTAP2_ERR_MISSING_PARAMETER
 *   - a byte string of a fixed-size field with the wrong length   → CTAP1_ERR_INVALID_LENGTH
 *   - a bounded field/list exceeding its bound                    → CTAP1_ERR_INVALID_LENGTH / CTAP2_ERR_LIMIT_EXCEEDED
 */
import { CborError, decode, type CborMap, type CborValue } from '../../../protocol/cbor.ts';
import {
  CTAP1_ERR_INVALID_LENGTH,
  CTAP2_ERR_CBOR_UNEXPECTED_TYPE,
  CTAP2_ERR_INVALID_CBOR,
  CTAP2_ERR_LIMIT_EXCEEDED,
  CTAP2_ERR_MISSING_PARAMETER,
} from '../../../protocol/ctap2.ts';
import { CtapError, fail } from './errors.ts';

/** Decode a command's CBOR parameters; an empty payload is an empty map (commands without parameters). */
export function decodeParams(bytes: Uint8Array): Params {
  if (bytes.length === 0) return new Params(new Map());
  let value: CborValue;
  try {
    value = decode(bytes);
  } catch (e) {
    if (e instanceof CborError) {
      // Too deeply nested or unsupported items are still "not valid CTAP2 CBOR".
      throw new CtapError(CTAP2_ERR_INVALID_CBOR, e.code);
    }
    throw e;
  }
  if (!(value instanceof Map)) fail(CTAP2_ERR_CBOR_UNEXPECTED_TYPE, 'parameters are not a map');
  return new Params(value);
}

export interface BytesBounds {
  /** Exact length required (CTAP1_ERR_INVALID_LENGTH otherwise). */
  readonly length?: number;
  /** Maximum length (CTAP1_ERR_INVALID_LENGTH beyond). */
  readonly max?: number;
}

function checkBytes(v: Uint8Array, b?: BytesBounds): Uint8Array {
  if (b?.length !== undefined && v.length !== b.length) fail(CTAP1_ERR_INVALID_LENGTH);
  if (b?.max !== undefined && v.length > b.max) fail(CTAP1_ERR_INVALID_LENGTH);
  return v;
}

/** Typed view of one CBOR map (the command parameters or a nested structure such as rp, user, options). */
export class Params {
  readonly map: CborMap;
  constructor(map: CborMap) {
    this.map = map;
  }

  has(key: number | string): boolean {
    return this.map.has(key);
  }

  private required(key: number | string): CborValue {
    const v = this.map.get(key);
    if (v === undefined) fail(CTAP2_ERR_MISSING_PARAMETER, `missing ${String(key)}`);
    return v;
  }

  bytes(key: number | string, bounds?: BytesBounds): Uint8Array {
    const v = this.required(key);
    if (!(v instanceof Uint8Array)) fail(CTAP2_ERR_CBOR_UNEXPECTED_TYPE, `${String(key)} not bytes`);
    return checkBytes(v, bounds);
  }
  optBytes(key: number | string, bounds?: BytesBounds): Uint8Array | undefined {
    return this.map.has(key) ? this.bytes(key, bounds) : undefined;
  }

  text(key: number | string, maxBytes?: number): string {
    const v = this.required(key);
    if (typeof v !== 'string') fail(CTAP2_ERR_CBOR_UNEXPECTED_TYPE, `${String(key)} not text`);
    if (maxBytes !== undefined && Buffer.byteLength(v, 'utf8') > maxBytes) fail(CTAP1_ERR_INVALID_LENGTH);
    return v;
  }
  optText(key: number | string, maxBytes?: number): string | undefined {
    return this.map.has(key) ? this.text(key, maxBytes) : undefined;
  }

  /** An unsigned integer (CBOR major type 0) that fits a JS safe integer. */
  uint(key: number | string): number {
    const v = this.required(key);
    if (typeof v === 'bigint') fail(CTAP2_ERR_LIMIT_EXCEEDED, `${String(key)} too large`);
    if (typeof v !== 'number' || v < 0) fail(CTAP2_ERR_CBOR_UNEXPECTED_TYPE, `${String(key)} not uint`);
    return v;
  }
  optUint(key: number | string): number | undefined {
    return this.map.has(key) ? this.uint(key) : undefined;
  }

  /** Any CBOR integer (major type 0 or 1) that fits a JS safe integer. */
  int(key: number | string): number {
    const v = this.required(key);
    if (typeof v === 'bigint') fail(CTAP2_ERR_LIMIT_EXCEEDED, `${String(key)} too large`);
    if (typeof v !== 'number') fail(CTAP2_ERR_CBOR_UNEXPECTED_TYPE, `${String(key)} not int`);
    return v;
  }

  bool(key: number | string): boolean {
    const v = this.required(key);
    if (typeof v !== 'boolean') fail(CTAP2_ERR_CBOR_UNEXPECTED_TYPE, `${String(key)} not bool`);
    return v;
  }
  optBool(key: number | string): boolean | undefined {
    return this.map.has(key) ? this.bool(key) : undefined;
  }

  sub(key: number | string): Params {
    const v = this.required(key);
    if (!(v instanceof Map)) fail(CTAP2_ERR_CBOR_UNEXPECTED_TYPE, `${String(key)} not map`);
    return new Params(v);
  }
  optSub(key: number | string): Params | undefined {
    return this.map.has(key) ? this.sub(key) : undefined;
  }

  /** The raw value (e.g. a COSE key handed to the PIN protocol, which validates it itself). */
  raw(key: number | string): CborValue {
    return this.required(key);
  }
  optRaw(key: number | string): CborValue | undefined {
    return this.map.get(key);
  }

  array(key: number | string, maxItems?: number): CborValue[] {
    const v = this.required(key);
    if (!Array.isArray(v)) fail(CTAP2_ERR_CBOR_UNEXPECTED_TYPE, `${String(key)} not array`);
    if (maxItems !== undefined && v.length > maxItems) fail(CTAP2_ERR_LIMIT_EXCEEDED, `${String(key)} too long`);
    return v;
  }
  optArray(key: number | string, maxItems?: number): CborValue[] | undefined {
    return this.map.has(key) ? this.array(key, maxItems) : undefined;
  }
}

/** Interpret a list element as a map (CTAP2_ERR_CBOR_UNEXPECTED_TYPE otherwise). */
export function asParams(v: CborValue): Params {
  if (!(v instanceof Map)) fail(CTAP2_ERR_CBOR_UNEXPECTED_TYPE, 'element not map');
  return new Params(v);
}

/** Truncate a UTF-8 string to at most `maxBytes` bytes without splitting a code point (CTAP 2.1 §6.1.2 step 15 note). */
export function truncateUtf8(s: string, maxBytes: number): string {
  const buf = Buffer.from(s, 'utf8');
  if (buf.length <= maxBytes) return s;
  let end = maxBytes;
  // Back up over continuation bytes (10xxxxxx) so we cut at a code-point boundary.
  while (end > 0 && (buf[end] & 0xc0) === 0x80) end--;
  return buf.subarray(0, end).toString('utf8');
}

/** A PublicKeyCredentialDescriptor (WebAuthn §5.8.3) from an allowList/excludeList element. */
export interface CredentialDescriptor {
  readonly type: string;
  readonly id: Uint8Array;
}

/** Parse a descriptor list: each element a map with text "type" and bytes "id" (§6.1 excludeList / §6.2 allowList). */
export function parseDescriptorList(items: CborValue[], maxIdLength: number): CredentialDescriptor[] {
  const out: CredentialDescriptor[] = [];
  for (const item of items) {
    const p = asParams(item);
    const type = p.text('type');
    const idValue = p.raw('id');
    if (!(idValue instanceof Uint8Array)) fail(CTAP2_ERR_CBOR_UNEXPECTED_TYPE, 'descriptor id not bytes');
    // Over-long ids can't be ours: keep them in the list (they are simply skipped later) but don't copy them around.
    out.push({ type, id: idValue.length > maxIdLength ? new Uint8Array(0) : idValue });
  }
  return out;
}
