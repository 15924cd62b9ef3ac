/**
 * The agent <-> gateway tunnel wire format: length-prefixed frames carried inside TLS 1.3 (pure, no I/O).
 *
 * Every frame on the wire is
 *
 *     u32 big-endian LENGTH (of TYPE + PAYLOAD, 1..MAX_FRAME_LENGTH) | u8 TYPE | PAYLOAD (LENGTH - 1 bytes)
 *
 * and each payload is a fixed sequence of big-endian integers, u8/u16 length-prefixed UTF-8 strings and u16
 * length-prefixed byte strings, with no trailing bytes. protocol/README.md has the byte layout of every frame and
 * the ordering rules. Decoding is strict: an unknown frame type, an over-long or empty frame, a truncated payload,
 * trailing bytes, or any out-of-range field throws a `TunnelProtocolError` (never anything else); the caller then
 * closes the connection (after best-effort sending ERROR with `ERR_PROTOCOL`) — a desynchronised byte stream
 * cannot be resumed. The encoder applies the same validation, so a frame it emits always decodes to an equal frame.
 *
 * The far side is untrusted (the gateway runs in the remote VM), so every length is bounded: a frame by
 * MAX_FRAME_LENGTH (16 KiB), a CTAP message by MAX_CTAP_PAYLOAD (= ctaphid.ts MAX_MESSAGE_SIZE: a CTAPHID
 * message is at most 7609 bytes, CTAP 2.1 PS 2021-06-15 §11.2.4: 64 - 7 + 128 * (64 - 5)), strings by the MAX_*
 * constants below, and the streaming decoder never buffers more than one frame.
 */
import type { KeepaliveStatus, RequestKind } from './authenticator.ts';
import { MAX_MESSAGE_SIZE } from './ctaphid.ts';
import { KeytunnelError } from './errors.ts';

/** The protocol version sent in HELLO. A peer announcing another version is refused (ERR_VERSION). */
export const TUNNEL_PROTOCOL_VERSION = 1;

/** Largest LENGTH value (TYPE byte + PAYLOAD). */
export const MAX_FRAME_LENGTH = 16 * 1024;
/** Size of the LENGTH prefix. */
export const FRAME_HEADER_LENGTH = 4;
/**
 * Largest CTAP request/response payload: exactly a whole CTAPHID message (CTAP 2.1 §11.2.4: 7609 bytes), the same
 * constant the device engine reassembles to and every authenticator accepts, so a request the tunnel carries is
 * never one an authenticator refuses for its size (there used to be "one spare byte" here, which nothing could
 * produce and only made the tunnel and the authenticators disagree about a 7610-byte request).
 */
export const MAX_CTAP_PAYLOAD = MAX_MESSAGE_SIZE;
/** Largest cached authenticatorGetInfo response (status byte + CBOR map). */
export const MAX_GET_INFO = MAX_CTAP_PAYLOAD;
/** Largest authenticator id, in bytes (printable ASCII). */
export const MAX_ID_BYTES = 64;
/** Largest authenticator label or peer display name, in UTF-8 bytes. */
export const MAX_LABEL_BYTES = 256;
/** Largest ERROR message, in UTF-8 bytes. */
export const MAX_MESSAGE_BYTES = 1024;
/** Largest number of authenticators in one AUTHENTICATORS frame. */
export const MAX_AUTHENTICATORS = 64;

/** Frame type numbers (the TYPE byte). */
export const FRAME_HELLO = 0x01;
export const FRAME_AUTHENTICATORS = 0x02;
export const FRAME_REQUEST = 0x03;
export const FRAME_KEEPALIVE = 0x04;
export const FRAME_RESPONSE = 0x05;
export const FRAME_CANCEL = 0x06;
export const FRAME_ERROR = 0x07;
export const FRAME_PING = 0x08;
export const FRAME_PONG = 0x09;

/** HELLO role byte. */
export const ROLE_AGENT = 1;
export const ROLE_GATEWAY = 2;
/** AUTHENTICATORS transport byte. */
export const TRANSPORT_SOFT = 1;
export const TRANSPORT_HID = 2;
/** AUTHENTICATORS flags byte. */
export const FLAG_CTAP1 = 0x01;
export const FLAG_WINK = 0x02;
/** REQUEST kind byte: CTAPHID_CBOR / CTAPHID_MSG payloads (CTAP 2.1 §11.2.9.1.2 / §11.2.9.1.1). */
export const KIND_CBOR = 1;
export const KIND_MSG = 2;

/**
 * ERROR codes (u16). A receiver treats any other non-zero code as a failed request. 6 and 9 are reserved and never
 * sent: the agent's policy refuses inside a RESPONSE, with the status a key would answer (protocol/README.md).
 */
export const ERR_PROTOCOL = 1; // malformed or out-of-order frame; the sender closes the connection next
export const ERR_VERSION = 2; // HELLO carried an unsupported protocol version; the sender closes next
export const ERR_UNKNOWN_AUTHENTICATOR = 3; // REQUEST named an id the agent does not export (any more)
export const ERR_DUPLICATE_REQUEST = 4; // REQUEST reused the id of a request still in flight
export const ERR_TOO_MANY_REQUESTS = 5; // the agent's limit of concurrent requests is reached
export const ERR_AUTHENTICATOR_FAILED = 7; // transport failure talking to the authenticator (unplugged, I/O error)
export const ERR_CANCELLED = 8; // the request was cancelled before any answer could be had

/** The request id that means "no request" (ERROR about the connection). Gateways number requests from 1. */
export const NO_REQUEST = 0;
const MAX_U32 = 0xffff_ffff;

export type TunnelRole = 'agent' | 'gateway';
export type ExportedTransport = 'soft' | 'hid';

/** One authenticator the agent exports (compare `AuthenticatorDescriptor` in protocol/authenticator.ts). */
export interface ExportedAuthenticator {
  /** 1..64 bytes of printable ASCII (0x21..0x7e), unique within the frame. */
  readonly id: string;
  /** 1..256 UTF-8 bytes, no control characters. */
  readonly label: string;
  readonly transport: ExportedTransport;
  readonly ctap1: boolean;
  readonly wink: boolean;
  /** Cached authenticatorGetInfo response (status byte + CBOR); empty for a CTAP1-only authenticator. */
  readonly getInfo: Uint8Array;
}

export interface HelloFrame {
  readonly type: 'hello';
  readonly version: number;
  readonly role: TunnelRole;
  /** 0..256 UTF-8 bytes, no control characters. */
  readonly name: string;
}
export interface AuthenticatorsFrame {
  readonly type: 'authenticators';
  readonly authenticators: readonly ExportedAuthenticator[];
}
export interface RequestFrame {
  readonly type: 'request';
  /** 1..2^32-1, chosen by the gateway, unique among its requests in flight. */
  readonly requestId: number;
  readonly authenticatorId: string;
  readonly kind: RequestKind;
  readonly payload: Uint8Array;
}
export interface KeepaliveFrame {
  readonly type: 'keepalive';
  readonly requestId: number;
  readonly status: KeepaliveStatus;
}
export interface ResponseFrame {
  readonly type: 'response';
  readonly requestId: number;
  readonly payload: Uint8Array;
}
export interface CancelFrame {
  readonly type: 'cancel';
  readonly requestId: number;
}
export interface ErrorFrame {
  readonly type: 'error';
  /** The request this answers, or null for an error about the whole connection. */
  readonly requestId: number | null;
  /** Non-zero u16, one of the ERR_* constants (unknown codes are accepted for forward compatibility). */
  readonly code: number;
  /** 0..1024 UTF-8 bytes, no control characters. */
  readonly message: string;
}
export interface PingFrame {
  readonly type: 'ping';
  /** u32 chosen by the sender; echoed in PONG. */
  readonly nonce: number;
}
export interface PongFrame {
  readonly type: 'pong';
  readonly nonce: number;
}

export type Frame =
  | HelloFrame
  | AuthenticatorsFrame
  | RequestFrame
  | KeepaliveFrame
  | ResponseFrame
  | CancelFrame
  | ErrorFrame
  | PingFrame
  | PongFrame;

export type TunnelProtocolErrorCode =
  | 'FRAME_TOO_LONG' // LENGTH > MAX_FRAME_LENGTH (or an encoded frame would be)
  | 'FRAME_EMPTY' // LENGTH == 0 (no TYPE byte)
  | 'UNKNOWN_TYPE' // TYPE is not one of the FRAME_* numbers
  | 'TRUNCATED' // the payload ends inside a field
  | 'TRAILING_BYTES' // the payload continues after the last field
  | 'BAD_FIELD' // a field is out of range (length bound, enum value, reserved bits, UTF-8, ...)
  | 'DECODER_FAILED'; // push() after the decoder already threw: the stream is desynchronised

/** Every malformed-input failure of this module. The connection must be closed after one. */
export class TunnelProtocolError extends KeytunnelError {
  override readonly name = 'TunnelProtocolError';
  constructor(
    readonly code: TunnelProtocolErrorCode,
    message: string,
  ) {
    super(message);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Field validation (shared by encoder and decoder).

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function bad(message: string): never {
  throw new TunnelProtocolError('BAD_FIELD', message);
}

/** C0 controls, DEL and C1 controls: refused in names, labels and messages (they end up in logs and UIs). */
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;
const ID_CHARS = /^[\x21-\x7e]+$/;

function checkRequestId(id: number, field: string): void {
  if (!Number.isInteger(id) || id < 1 || id > MAX_U32) bad(`${field} must be an integer in 1..2^32-1`);
}

function checkU32(value: number, field: string): void {
  if (!Number.isInteger(value) || value < 0 || value > MAX_U32) bad(`${field} must be an integer in 0..2^32-1`);
}

/** UTF-8 bytes of a text field; refuses lone surrogates (which would not survive the round trip). */
function textBytes(text: string, field: string, min: number, max: number): Uint8Array {
  if (typeof text !== 'string') bad(`${field} must be a string`);
  if (CONTROL_CHARS.test(text)) bad(`${field} contains a control character`);
  const bytes = utf8Encoder.encode(text);
  if (bytes.length < min || bytes.length > max) bad(`${field} must be ${min}..${max} UTF-8 bytes`);
  if (utf8Decoder.decode(bytes) !== text) bad(`${field} is not well-formed Unicode`);
  return bytes;
}

function idBytes(id: string, field: string): Uint8Array {
  if (typeof id !== 'string' || id.length < 1 || id.length > MAX_ID_BYTES || !ID_CHARS.test(id)) {
    bad(`${field} must be 1..${MAX_ID_BYTES} printable ASCII characters`);
  }
  return utf8Encoder.encode(id);
}

function checkBytes(bytes: Uint8Array, field: string, max: number): void {
  if (!(bytes instanceof Uint8Array)) bad(`${field} must be a Uint8Array`);
  if (bytes.length > max) bad(`${field} must be at most ${max} bytes`);
}

// ---------------------------------------------------------------------------------------------------------------
// Encoder.

class Writer {
  private readonly parts: Uint8Array[] = [];
  private size = 0;
  u8(v: number): void {
    this.push(Uint8Array.of(v));
  }
  u16(v: number): void {
    this.push(Uint8Array.of(v >>> 8, v & 0xff));
  }
  u32(v: number): void {
    this.push(Uint8Array.of(v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff));
  }
  /** u8 length + bytes. */
  bytes8(b: Uint8Array): void {
    this.u8(b.length);
    this.push(b);
  }
  /** u16 length + bytes. */
  bytes16(b: Uint8Array): void {
    this.u16(b.length);
    this.push(b);
  }
  push(b: Uint8Array): void {
    this.parts.push(b);
    this.size += b.length;
  }
  get length(): number {
    return this.size;
  }
  finish(type: number): Uint8Array {
    const length = 1 + this.size;
    if (length > MAX_FRAME_LENGTH) {
      throw new TunnelProtocolError('FRAME_TOO_LONG', `frame of ${length} bytes exceeds ${MAX_FRAME_LENGTH}`);
    }
    const out = new Uint8Array(FRAME_HEADER_LENGTH + length);
    new DataView(out.buffer).setUint32(0, length);
    out[FRAME_HEADER_LENGTH] = type;
    let offset = FRAME_HEADER_LENGTH + 1;
    for (const part of this.parts) {
      out.set(part, offset);
      offset += part.length;
    }
    return out;
  }
}

function transportByte(t: ExportedTransport): number {
  if (t === 'soft') return TRANSPORT_SOFT;
  if (t === 'hid') return TRANSPORT_HID;
  return bad('transport must be soft or hid');
}

/**
 * Encode one frame, header included. Throws TunnelProtocolError ('BAD_FIELD' / 'FRAME_TOO_LONG') for a frame the
 * decoder would refuse, so nothing invalid ever reaches the wire.
 */
export function encodeFrame(frame: Frame): Uint8Array {
  const w = new Writer();
  switch (frame.type) {
    case 'hello': {
      if (!Number.isInteger(frame.version) || frame.version < 0 || frame.version > 0xffff) bad('version must be a u16');
      if (frame.role !== 'agent' && frame.role !== 'gateway') bad('role must be agent or gateway');
      w.u16(frame.version);
      w.u8(frame.role === 'agent' ? ROLE_AGENT : ROLE_GATEWAY);
      w.bytes16(textBytes(frame.name, 'name', 0, MAX_LABEL_BYTES));
      return w.finish(FRAME_HELLO);
    }
    case 'authenticators': {
      const list = frame.authenticators;
      if (!Array.isArray(list) || list.length > MAX_AUTHENTICATORS) bad(`at most ${MAX_AUTHENTICATORS} authenticators`);
      const seen = new Set<string>();
      w.u16(list.length);
      for (const a of list) {
        const id = idBytes(a.id, 'authenticator id');
        if (seen.has(a.id)) bad(`duplicate authenticator id ${a.id}`);
        seen.add(a.id);
        w.bytes8(id);
        w.bytes16(textBytes(a.label, 'label', 1, MAX_LABEL_BYTES));
        w.u8(transportByte(a.transport));
        if (typeof a.ctap1 !== 'boolean' || typeof a.wink !== 'boolean') bad('ctap1 and wink must be booleans');
        w.u8((a.ctap1 ? FLAG_CTAP1 : 0) | (a.wink ? FLAG_WINK : 0));
        checkBytes(a.getInfo, 'getInfo', MAX_GET_INFO);
        w.bytes16(a.getInfo);
      }
      return w.finish(FRAME_AUTHENTICATORS);
    }
    case 'request': {
      checkRequestId(frame.requestId, 'requestId');
      w.u32(frame.requestId);
      w.bytes8(idBytes(frame.authenticatorId, 'authenticatorId'));
      if (frame.kind !== 'cbor' && frame.kind !== 'msg') bad('kind must be cbor or msg');
      w.u8(frame.kind === 'cbor' ? KIND_CBOR : KIND_MSG);
      checkBytes(frame.payload, 'payload', MAX_CTAP_PAYLOAD);
      if (frame.payload.length === 0) bad('request payload must not be empty');
      w.bytes16(frame.payload);
      return w.finish(FRAME_REQUEST);
    }
    case 'keepalive': {
      checkRequestId(frame.requestId, 'requestId');
      if (frame.status !== 1 && frame.status !== 2) bad('keepalive status must be 1 or 2');
      w.u32(frame.requestId);
      w.u8(frame.status);
      return w.finish(FRAME_KEEPALIVE);
    }
    case 'response': {
      checkRequestId(frame.requestId, 'requestId');
      checkBytes(frame.payload, 'payload', MAX_CTAP_PAYLOAD);
      if (frame.payload.length === 0) bad('response payload must not be empty');
      w.u32(frame.requestId);
      w.bytes16(frame.payload);
      return w.finish(FRAME_RESPONSE);
    }
    case 'cancel': {
      checkRequestId(frame.requestId, 'requestId');
      w.u32(frame.requestId);
      return w.finish(FRAME_CANCEL);
    }
    case 'error': {
      if (frame.requestId !== null) checkRequestId(frame.requestId, 'requestId');
      if (!Number.isInteger(frame.code) || frame.code < 1 || frame.code > 0xffff) bad('error code must be 1..65535');
      w.u32(frame.requestId ?? NO_REQUEST);
      w.u16(frame.code);
      w.bytes16(textBytes(frame.message, 'message', 0, MAX_MESSAGE_BYTES));
      return w.finish(FRAME_ERROR);
    }
    case 'ping':
    case 'pong': {
      checkU32(frame.nonce, 'nonce');
      w.u32(frame.nonce);
      return w.finish(frame.type === 'ping' ? FRAME_PING : FRAME_PONG);
    }
    default: {
      const unknown: { type?: unknown } = frame;
      return bad(`unknown frame type ${String(unknown.type)}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Decoder.

class Reader {
  private offset = 0;
  constructor(private readonly bytes: Uint8Array) {}
  private take(n: number, field: string): Uint8Array {
    if (this.offset + n > this.bytes.length) throw new TunnelProtocolError('TRUNCATED', `payload ends inside ${field}`);
    const out = this.bytes.subarray(this.offset, this.offset + n);
    this.offset += n;
    return out;
  }
  u8(field: string): number {
    return this.take(1, field)[0];
  }
  u16(field: string): number {
    const b = this.take(2, field);
    return (b[0] << 8) | b[1];
  }
  u32(field: string): number {
    const b = this.take(4, field);
    return ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0;
  }
  /** u8 length-prefixed bytes. */
  bytes8(field: string): Uint8Array {
    return this.take(this.u8(field), field);
  }
  /** u16 length-prefixed bytes, refused (before reading them) when longer than `max`. */
  bytes16(field: string, max: number): Uint8Array {
    const n = this.u16(field);
    if (n > max) bad(`${field} must be at most ${max} bytes`);
    return this.take(n, field);
  }
  end(): void {
    if (this.offset !== this.bytes.length) {
      throw new TunnelProtocolError('TRAILING_BYTES', `${this.bytes.length - this.offset} bytes after the last field`);
    }
  }
}

function readText(r: Reader, field: string, min: number, max: number): string {
  const bytes = r.bytes16(field, max);
  let text: string;
  try {
    text = utf8Decoder.decode(bytes);
  } catch {
    return bad(`${field} is not valid UTF-8`);
  }
  textBytes(text, field, min, max);
  return text;
}

function readId(r: Reader, field: string): string {
  const bytes = r.bytes8(field);
  let id = '';
  for (const b of bytes) id += String.fromCharCode(b);
  idBytes(id, field);
  return id;
}

function readRequestId(r: Reader): number {
  const id = r.u32('requestId');
  checkRequestId(id, 'requestId');
  return id;
}

/**
 * Copy out of the decoder's buffer so frames stay valid after later pushes. `new Uint8Array(view)` always copies
 * and always yields a plain Uint8Array (Buffer#slice would return an aliasing Buffer view).
 */
function copy(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes);
}

/** Decode one payload (the bytes after the TYPE byte). */
export function decodePayload(type: number, payload: Uint8Array): Frame {
  const r = new Reader(payload);
  let frame: Frame;
  switch (type) {
    case FRAME_HELLO: {
      const version = r.u16('version');
      const roleByte = r.u8('role');
      if (roleByte !== ROLE_AGENT && roleByte !== ROLE_GATEWAY) bad(`unknown role ${roleByte}`);
      const name = readText(r, 'name', 0, MAX_LABEL_BYTES);
      frame = { type: 'hello', version, role: roleByte === ROLE_AGENT ? 'agent' : 'gateway', name };
      break;
    }
    case FRAME_AUTHENTICATORS: {
      const count = r.u16('count');
      if (count > MAX_AUTHENTICATORS) bad(`at most ${MAX_AUTHENTICATORS} authenticators`);
      const authenticators: ExportedAuthenticator[] = [];
      const seen = new Set<string>();
      for (let i = 0; i < count; i++) {
        const id = readId(r, 'authenticator id');
        if (seen.has(id)) bad(`duplicate authenticator id ${id}`);
        seen.add(id);
        const label = readText(r, 'label', 1, MAX_LABEL_BYTES);
        const t = r.u8('transport');
        if (t !== TRANSPORT_SOFT && t !== TRANSPORT_HID) bad(`unknown transport ${t}`);
        const flags = r.u8('flags');
        if ((flags & ~(FLAG_CTAP1 | FLAG_WINK)) !== 0) bad('reserved flag bits set');
        const getInfo = copy(r.bytes16('getInfo', MAX_GET_INFO));
        authenticators.push({
          id,
          label,
          transport: t === TRANSPORT_SOFT ? 'soft' : 'hid',
          ctap1: (flags & FLAG_CTAP1) !== 0,
          wink: (flags & FLAG_WINK) !== 0,
          getInfo,
        });
      }
      frame = { type: 'authenticators', authenticators };
      break;
    }
    case FRAME_REQUEST: {
      const requestId = readRequestId(r);
      const authenticatorId = readId(r, 'authenticatorId');
      const k = r.u8('kind');
      if (k !== KIND_CBOR && k !== KIND_MSG) bad(`unknown request kind ${k}`);
      const payloadBytes = r.bytes16('payload', MAX_CTAP_PAYLOAD);
      if (payloadBytes.length === 0) bad('request payload must not be empty');
      frame = { type: 'request', requestId, authenticatorId, kind: k === KIND_CBOR ? 'cbor' : 'msg', payload: copy(payloadBytes) };
      break;
    }
    case FRAME_KEEPALIVE: {
      const requestId = readRequestId(r);
      const status = r.u8('status');
      if (status !== 1 && status !== 2) bad(`keepalive status ${status}`);
      frame = { type: 'keepalive', requestId, status };
      break;
    }
    case FRAME_RESPONSE: {
      const requestId = readRequestId(r);
      const payloadBytes = r.bytes16('payload', MAX_CTAP_PAYLOAD);
      if (payloadBytes.length === 0) bad('response payload must not be empty');
      frame = { type: 'response', requestId, payload: copy(payloadBytes) };
      break;
    }
    case FRAME_CANCEL:
      frame = { type: 'cancel', requestId: readRequestId(r) };
      break;
    case FRAME_ERROR: {
      const id = r.u32('requestId');
      const code = r.u16('code');
      if (code === 0) bad('error code 0');
      const message = readText(r, 'message', 0, MAX_MESSAGE_BYTES);
      frame = { type: 'error', requestId: id === NO_REQUEST ? null : id, code, message };
      break;
    }
    case FRAME_PING:
      frame = { type: 'ping', nonce: r.u32('nonce') };
      break;
    case FRAME_PONG:
      frame = { type: 'pong', nonce: r.u32('nonce') };
      break;
    default:
      throw new TunnelProtocolError('UNKNOWN_TYPE', `unknown frame type 0x${type.toString(16).padStart(2, '0')}`);
  }
  r.end();
  return frame;
}

/**
 * Streaming decoder: push TCP/TLS chunks as they arrive (any split or coalescing); get back the whole frames they
 * complete. Buffers at most one incomplete frame (FRAME_HEADER_LENGTH + MAX_FRAME_LENGTH bytes): the LENGTH is
 * checked as soon as its 4 bytes are in. After it throws once, every later push throws DECODER_FAILED.
 */
export class FrameDecoder {
  private buffer: Uint8Array = new Uint8Array(0);
  private failed = false;

  /** Bytes held for an incomplete frame (for tests and diagnostics). */
  get buffered(): number {
    return this.buffer.length;
  }

  push(chunk: Uint8Array): Frame[] {
    if (this.failed) throw new TunnelProtocolError('DECODER_FAILED', 'decoder already failed; close the connection');
    try {
      return this.decode(chunk);
    } catch (err) {
      this.failed = true;
      this.buffer = new Uint8Array(0);
      if (err instanceof TunnelProtocolError) throw err;
      throw new TunnelProtocolError('BAD_FIELD', `undecodable frame: ${String(err)}`);
    }
  }

  private decode(chunk: Uint8Array): Frame[] {
    const frames: Frame[] = [];
    let data: Uint8Array;
    if (this.buffer.length === 0) data = chunk;
    else {
      data = new Uint8Array(this.buffer.length + chunk.length);
      data.set(this.buffer);
      data.set(chunk, this.buffer.length);
    }
    let offset = 0;
    for (;;) {
      const available = data.length - offset;
      if (available < FRAME_HEADER_LENGTH) break;
      const length =
        ((data[offset] << 24) | (data[offset + 1] << 16) | (data[offset + 2] << 8) | data[offset + 3]) >>> 0;
      if (length === 0) throw new TunnelProtocolError('FRAME_EMPTY', 'frame without a type byte');
      if (length > MAX_FRAME_LENGTH) {
        throw new TunnelProtocolError('FRAME_TOO_LONG', `frame of ${length} bytes exceeds ${MAX_FRAME_LENGTH}`);
      }
      if (available < FRAME_HEADER_LENGTH + length) break;
      const start = offset + FRAME_HEADER_LENGTH;
      frames.push(decodePayload(data[start], data.subarray(start + 1, start + length)));
      offset = start + length;
    }
    // Keep only the incomplete tail, copied so the caller's chunk can be reused.
    this.buffer = copy(data.subarray(offset));
    return frames;
  }
}

/** Decode exactly one whole encoded frame (header included); for tests and simple callers. */
export function decodeFrame(bytes: Uint8Array): Frame {
  const decoder = new FrameDecoder();
  const frames = decoder.push(bytes);
  if (frames.length > 1) throw new TunnelProtocolError('TRAILING_BYTES', 'bytes after the first frame');
  if (frames.length === 0 || decoder.buffered !== 0) throw new TunnelProtocolError('TRUNCATED', 'incomplete frame');
  return frames[0];
}
