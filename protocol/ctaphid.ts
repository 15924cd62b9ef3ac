/**
 * CTAPHID framing (CTAP 2.1 PS 2021-06-15 §11.2 "USB Human Interface Device (USB HID)"): constants, fragmentation of
 * one message into 64-byte reports, and a per-transaction reassembler with typed CTAPHID errors.
 *
 * Pure: no I/O and no timers. Time is passed in by the caller (`now` in milliseconds) so the device engine
 * (gateway) and the host-side client (agent) judge MSG_TIMEOUT with their own injected clocks.
 *
 * Packet layout (§11.2.4):
 *   initialization packet: CID u32 BE | CMD (bit 7 set = TYPE_INIT) | BCNTH | BCNTL | 57 data bytes
 *   continuation packet:   CID u32 BE | SEQ 0..127 (bit 7 clear)    | 59 data bytes
 */

import { STATUS_PROCESSING, STATUS_UPNEEDED } from './authenticator.ts';
import type { KeepaliveStatus } from './authenticator.ts';
import {
  CTAP1_ERR_CHANNEL_BUSY,
  CTAP1_ERR_INVALID_CHANNEL,
  CTAP1_ERR_INVALID_COMMAND,
  CTAP1_ERR_INVALID_LENGTH,
  CTAP1_ERR_INVALID_PARAMETER,
  CTAP1_ERR_INVALID_SEQ,
  CTAP1_ERR_LOCK_REQUIRED,
  CTAP1_ERR_OTHER,
  CTAP1_ERR_TIMEOUT,
} from './ctap2.ts';
import { KeytunnelError } from './errors.ts';

export { STATUS_PROCESSING, STATUS_UPNEEDED };
export type { KeepaliveStatus };

// §11.2.4: report geometry. Full-speed FIDO HID devices use 64-byte reports.
export const HID_REPORT_SIZE = 64;
export const INIT_HEADER_SIZE = 7;
export const CONT_HEADER_SIZE = 5;
export const INIT_DATA_SIZE = HID_REPORT_SIZE - INIT_HEADER_SIZE; // 57
export const CONT_DATA_SIZE = HID_REPORT_SIZE - CONT_HEADER_SIZE; // 59
/** §11.2.4: the sequence number runs 0..127, so at most 128 continuation packets. */
export const MAX_SEQ = 0x7f;
/**
 * 57 + 128 * 59 = 7609 bytes: the largest message one transaction can carry, hence the largest CTAP request or
 * response (command/status byte + CBOR, or a U2F APDU) anywhere in keytunnel: the device engine, the tunnel
 * (tunnel.ts MAX_CTAP_PAYLOAD) and the authenticators all use this one constant.
 */
export const MAX_MESSAGE_SIZE = INIT_DATA_SIZE + (MAX_SEQ + 1) * CONT_DATA_SIZE;

/** Bit 7 of the fifth byte distinguishes an initialization packet (command) from a continuation (sequence). */
export const TYPE_INIT = 0x80;

// §11.2.9.1 mandatory and §11.2.9.2 optional commands (without the TYPE_INIT bit).
export const CTAPHID_PING = 0x01;
export const CTAPHID_MSG = 0x03;
export const CTAPHID_LOCK = 0x04;
export const CTAPHID_INIT = 0x06;
export const CTAPHID_WINK = 0x08;
export const CTAPHID_CBOR = 0x10;
export const CTAPHID_CANCEL = 0x11;
export const CTAPHID_KEEPALIVE = 0x3b;
export const CTAPHID_ERROR = 0x3f;
/** §11.2.9.3: vendor-specific command range. */
export const CTAPHID_VENDOR_FIRST = 0x40;
export const CTAPHID_VENDOR_LAST = 0x7f;

// §11.2.9.1.6 CTAPHID_ERROR codes; the same values as the CTAP1_ERR_* status codes of §8.2.
export const CTAPHID_ERR_INVALID_CMD = CTAP1_ERR_INVALID_COMMAND;
export const CTAPHID_ERR_INVALID_PAR = CTAP1_ERR_INVALID_PARAMETER;
export const CTAPHID_ERR_INVALID_LEN = CTAP1_ERR_INVALID_LENGTH;
export const CTAPHID_ERR_INVALID_SEQ = CTAP1_ERR_INVALID_SEQ;
export const CTAPHID_ERR_MSG_TIMEOUT = CTAP1_ERR_TIMEOUT;
export const CTAPHID_ERR_CHANNEL_BUSY = CTAP1_ERR_CHANNEL_BUSY;
export const CTAPHID_ERR_LOCK_REQUIRED = CTAP1_ERR_LOCK_REQUIRED;
export const CTAPHID_ERR_INVALID_CHANNEL = CTAP1_ERR_INVALID_CHANNEL;
export const CTAPHID_ERR_OTHER = CTAP1_ERR_OTHER;

/** Any byte may arrive in a CTAPHID_ERROR from a real key; these are the ones the spec names. */
export type CtaphidErrorCode = number;

const ERROR_NAMES: Readonly<Record<number, string>> = {
  [CTAPHID_ERR_INVALID_CMD]: 'ERR_INVALID_CMD',
  [CTAPHID_ERR_INVALID_PAR]: 'ERR_INVALID_PAR',
  [CTAPHID_ERR_INVALID_LEN]: 'ERR_INVALID_LEN',
  [CTAPHID_ERR_INVALID_SEQ]: 'ERR_INVALID_SEQ',
  [CTAPHID_ERR_MSG_TIMEOUT]: 'ERR_MSG_TIMEOUT',
  [CTAPHID_ERR_CHANNEL_BUSY]: 'ERR_CHANNEL_BUSY',
  [CTAPHID_ERR_LOCK_REQUIRED]: 'ERR_LOCK_REQUIRED',
  [CTAPHID_ERR_INVALID_CHANNEL]: 'ERR_INVALID_CHANNEL',
  [CTAPHID_ERR_OTHER]: 'ERR_OTHER',
};

export function ctaphidErrorName(code: number): string {
  return ERROR_NAMES[code] ?? `ERR_0x${code.toString(16).padStart(2, '0')}`;
}

// §11.2.9.1.3 CTAPHID_INIT response capability flags.
export const CAPABILITY_WINK = 0x01;
export const CAPABILITY_LOCK = 0x02;
export const CAPABILITY_CBOR = 0x04;
/** Set when the device does NOT implement CTAPHID_MSG. */
export const CAPABILITY_NMSG = 0x08;

/** §11.2.9.1.3: the CTAPHID protocol version this implementation speaks. */
export const CTAPHID_PROTOCOL_VERSION = 2;
export const INIT_NONCE_SIZE = 8;
export const INIT_RESPONSE_SIZE = 17;

/** §11.2.3: the broadcast channel, used only for CTAPHID_INIT (channel allocation). */
export const CID_BROADCAST = 0xffffffff;
/** §11.2.3: channel 0 is reserved and never valid. */
export const CID_RESERVED = 0;

/** §11.2.9.2.2: the longest lock a host may request, in seconds. */
export const MAX_LOCK_SECONDS = 10;

/** A typed CTAPHID failure: carries the CTAPHID_ERROR code and, when known, the channel it concerns. */
export class CtaphidError extends KeytunnelError {
  override readonly name = 'CtaphidError';
  readonly code: CtaphidErrorCode;
  readonly cid: number | undefined;
  constructor(code: CtaphidErrorCode, message?: string, cid?: number) {
    super(message ?? `CTAPHID ${ctaphidErrorName(code)}`);
    this.code = code;
    this.cid = cid;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Packet headers

export interface InitPacketHeader {
  readonly type: 'init';
  readonly cid: number;
  /** Command without the TYPE_INIT bit. */
  readonly cmd: number;
  /** BCNT: total payload length of the message. */
  readonly bcnt: number;
}

export interface ContPacketHeader {
  readonly type: 'cont';
  readonly cid: number;
  readonly seq: number;
}

export type PacketHeader = InitPacketHeader | ContPacketHeader;

/** Channel id of a report (big-endian u32 in bytes 0..3). Caller guarantees length >= 4. */
export function readCid(report: Uint8Array): number {
  return ((report[0] << 24) | (report[1] << 16) | (report[2] << 8) | report[3]) >>> 0;
}

export function isInitPacket(report: Uint8Array): boolean {
  return (report[4] & TYPE_INIT) !== 0;
}

/** Parses the header of one 64-byte report; returns undefined if the report is not exactly 64 bytes. */
export function parsePacketHeader(report: Uint8Array): PacketHeader | undefined {
  if (report.length !== HID_REPORT_SIZE) return undefined;
  const cid = readCid(report);
  const b4 = report[4];
  if ((b4 & TYPE_INIT) !== 0) {
    return { type: 'init', cid, cmd: b4 & 0x7f, bcnt: (report[5] << 8) | report[6] };
  }
  return { type: 'cont', cid, seq: b4 };
}

// ---------------------------------------------------------------------------------------------------------
// Fragmentation

/** Number of reports a payload of `length` bytes needs. */
export function reportCount(length: number): number {
  return length <= INIT_DATA_SIZE ? 1 : 1 + Math.ceil((length - INIT_DATA_SIZE) / CONT_DATA_SIZE);
}

/**
 * Splits one message into zero-padded 64-byte reports (§11.2.4). Throws CtaphidError(ERR_INVALID_LEN) for a
 * payload over 7609 bytes and RangeError for a cid/cmd outside its field.
 */
export function fragment(cid: number, cmd: number, payload: Uint8Array): Uint8Array[] {
  if (!Number.isInteger(cid) || cid < 0 || cid > 0xffffffff) throw new RangeError(`bad CTAPHID cid ${cid}`);
  if (!Number.isInteger(cmd) || cmd < 0 || cmd > 0x7f) throw new RangeError(`bad CTAPHID command ${cmd}`);
  if (payload.length > MAX_MESSAGE_SIZE) {
    throw new CtaphidError(CTAPHID_ERR_INVALID_LEN, `CTAPHID payload of ${payload.length} bytes exceeds ${MAX_MESSAGE_SIZE}`);
  }
  const count = reportCount(payload.length);
  // One backing buffer for all reports: a single allocation, zero-filled, so padding is free.
  const backing = new Uint8Array(count * HID_REPORT_SIZE);
  const reports: Uint8Array[] = new Array(count);
  const c0 = cid >>> 24;
  const c1 = (cid >>> 16) & 0xff;
  const c2 = (cid >>> 8) & 0xff;
  const c3 = cid & 0xff;
  let offset = 0;
  for (let i = 0; i < count; i++) {
    const r = backing.subarray(i * HID_REPORT_SIZE, (i + 1) * HID_REPORT_SIZE);
    r[0] = c0;
    r[1] = c1;
    r[2] = c2;
    r[3] = c3;
    let take: number;
    if (i === 0) {
      r[4] = cmd | TYPE_INIT;
      r[5] = payload.length >>> 8;
      r[6] = payload.length & 0xff;
      take = Math.min(INIT_DATA_SIZE, payload.length);
      r.set(payload.subarray(0, take), INIT_HEADER_SIZE);
    } else {
      r[4] = i - 1;
      take = Math.min(CONT_DATA_SIZE, payload.length - offset);
      r.set(payload.subarray(offset, offset + take), CONT_HEADER_SIZE);
    }
    offset += take;
    reports[i] = r;
  }
  return reports;
}

/** A one-report CTAPHID_ERROR message. */
export function errorReport(cid: number, code: CtaphidErrorCode): Uint8Array {
  return fragment(cid, CTAPHID_ERROR, Uint8Array.of(code & 0xff))[0];
}

// ---------------------------------------------------------------------------------------------------------
// CTAPHID_INIT response (§11.2.9.1.3)

export interface InitResponse {
  readonly nonce: Uint8Array;
  readonly cid: number;
  readonly protocolVersion: number;
  readonly versionMajor: number;
  readonly versionMinor: number;
  readonly versionBuild: number;
  readonly capabilities: number;
}

export function encodeInitResponse(r: InitResponse): Uint8Array {
  if (r.nonce.length !== INIT_NONCE_SIZE) throw new RangeError('CTAPHID_INIT nonce must be 8 bytes');
  const out = new Uint8Array(INIT_RESPONSE_SIZE);
  out.set(r.nonce, 0);
  new DataView(out.buffer).setUint32(8, r.cid >>> 0);
  out[12] = r.protocolVersion;
  out[13] = r.versionMajor;
  out[14] = r.versionMinor;
  out[15] = r.versionBuild;
  out[16] = r.capabilities;
  return out;
}

/** Parses an INIT response; a device may append bytes, so only a short response is an error. */
export function decodeInitResponse(payload: Uint8Array): InitResponse {
  if (payload.length < INIT_RESPONSE_SIZE) {
    throw new CtaphidError(CTAPHID_ERR_INVALID_LEN, `CTAPHID_INIT response of ${payload.length} bytes`);
  }
  return {
    nonce: payload.slice(0, INIT_NONCE_SIZE),
    cid: readCid(payload.subarray(8, 12)),
    protocolVersion: payload[12],
    versionMajor: payload[13],
    versionMinor: payload[14],
    versionBuild: payload[15],
    capabilities: payload[16],
  };
}

// ---------------------------------------------------------------------------------------------------------
// Reassembly

export interface ReassemblerOptions {
  /** Largest BCNT accepted (default and upper bound MAX_MESSAGE_SIZE = 7609); more -> ERR_INVALID_LEN. */
  readonly maxMessageSize?: number;
  /** §11.2.5.2: a continuation later than this after the previous packet -> ERR_MSG_TIMEOUT (default 500 ms). */
  readonly timeoutMs?: number;
  /**
   * Host side: only this channel's reports are considered; every other channel's report is 'ignored' (other
   * hosts' traffic on a shared device) and channel validity is not judged. Device side: leave undefined.
   */
  readonly channel?: number;
}

export type ReassemblyResult =
  /** A whole message. `payload` is owned by the caller. */
  | { readonly kind: 'complete'; readonly cid: number; readonly cmd: number; readonly payload: Uint8Array }
  /** Accepted; more continuation packets are needed. */
  | { readonly kind: 'partial'; readonly cid: number }
  /** Nothing to answer: a spurious continuation, another channel's report (host side), a malformed size. */
  | { readonly kind: 'ignored'; readonly reason: string }
  /**
   * Answer `cid` with CTAPHID_ERROR `code`. `aborted` tells whether the message being reassembled was dropped
   * (true for INVALID_SEQ / MSG_TIMEOUT / INVALID_LEN on the same channel; false for CHANNEL_BUSY and
   * INVALID_CHANNEL, where the transaction in progress, if any, carries on).
   */
  | { readonly kind: 'error'; readonly cid: number; readonly code: CtaphidErrorCode; readonly aborted: boolean };

/**
 * Reassembles one message at a time (the transaction in progress). Used on the device side (any channel may
 * start a message; others get CHANNEL_BUSY meanwhile) and on the host side (`channel` set: responses from
 * one channel). Allocation: one buffer of BCNT bytes per message.
 */
export class CtaphidReassembler {
  readonly maxMessageSize: number;
  readonly timeoutMs: number;
  readonly channel: number | undefined;

  private cid = 0;
  private cmd = 0;
  private buffer: Uint8Array | undefined;
  private filled = 0;
  private nextSeq = 0;
  private lastAt = 0;

  constructor(options: ReassemblerOptions = {}) {
    const max = options.maxMessageSize ?? MAX_MESSAGE_SIZE;
    if (!Number.isInteger(max) || max < 0 || max > MAX_MESSAGE_SIZE) throw new RangeError(`bad maxMessageSize ${max}`);
    const timeout = options.timeoutMs ?? 500;
    if (!(timeout > 0)) throw new RangeError(`bad timeoutMs ${timeout}`);
    this.maxMessageSize = max;
    this.timeoutMs = timeout;
    this.channel = options.channel;
  }

  /** The channel whose message is being reassembled, or undefined when idle. */
  get activeChannel(): number | undefined {
    return this.buffer === undefined ? undefined : this.cid;
  }

  /** Time of the last accepted packet of the message in progress (for arming a timer). */
  get lastPacketAt(): number | undefined {
    return this.buffer === undefined ? undefined : this.lastAt;
  }

  /** Drops the message in progress (resync, channel closed). */
  reset(): void {
    this.buffer = undefined;
    this.filled = 0;
    this.nextSeq = 0;
    this.cid = 0;
    this.cmd = 0;
  }

  /**
   * Timer hook: if the message in progress has waited timeoutMs or more for its next packet at `now`, drop
   * it and return the MSG_TIMEOUT error to send; otherwise undefined. (A timer armed for exactly timeoutMs
   * after the last packet therefore always fires the timeout.)
   */
  expire(now: number): ReassemblyResult | undefined {
    if (this.buffer === undefined || now - this.lastAt < this.timeoutMs) return undefined;
    const cid = this.cid;
    this.reset();
    return { kind: 'error', cid, code: CTAPHID_ERR_MSG_TIMEOUT, aborted: true };
  }

  /** Feeds one report received at time `now` (ms). Never throws for any input bytes. */
  accept(report: Uint8Array, now: number): ReassemblyResult {
    if (report.length !== HID_REPORT_SIZE) return { kind: 'ignored', reason: `report of ${report.length} bytes` };
    const cid = readCid(report);
    const hostSide = this.channel !== undefined;
    if (hostSide && cid !== this.channel) return { kind: 'ignored', reason: 'other channel' };

    // A late packet for the message in progress: the transaction has timed out already (§11.2.5.2).
    if (this.buffer !== undefined && now - this.lastAt > this.timeoutMs) {
      const timedOut = this.cid;
      this.reset();
      if (timedOut === cid && !isInitPacket(report)) {
        return { kind: 'error', cid, code: CTAPHID_ERR_MSG_TIMEOUT, aborted: true };
      }
      // Another channel (or a new init packet) arrives after the timeout: the old message is gone; carry on
      // judging this report on its own. The engine's timer normally reports the timeout first.
    }

    if (isInitPacket(report)) {
      const cmd = report[4] & 0x7f;
      const bcnt = (report[5] << 8) | report[6];
      if (!hostSide) {
        // §11.2.3: channel 0 is reserved; broadcast is only for CTAPHID_INIT.
        if (cid === CID_RESERVED || (cid === CID_BROADCAST && cmd !== CTAPHID_INIT)) {
          return { kind: 'error', cid, code: CTAPHID_ERR_INVALID_CHANNEL, aborted: false };
        }
      }
      if (this.buffer !== undefined) {
        if (cid !== this.cid) {
          // §11.2.5.1: one transaction at a time; the other channel is told to retry.
          return { kind: 'error', cid, code: CTAPHID_ERR_CHANNEL_BUSY, aborted: false };
        }
        if (cmd !== CTAPHID_INIT) {
          // A new message on the same channel before the last one finished: the sequence is broken.
          this.reset();
          return { kind: 'error', cid, code: CTAPHID_ERR_INVALID_SEQ, aborted: true };
        }
        // INIT on the same channel resynchronises it (§11.2.5.3, §11.2.9.1.3): drop the partial message.
        this.reset();
      }
      if (bcnt > this.maxMessageSize) {
        return { kind: 'error', cid, code: CTAPHID_ERR_INVALID_LEN, aborted: false };
      }
      if (bcnt <= INIT_DATA_SIZE) {
        return { kind: 'complete', cid, cmd, payload: report.slice(INIT_HEADER_SIZE, INIT_HEADER_SIZE + bcnt) };
      }
      const buffer = new Uint8Array(bcnt);
      buffer.set(report.subarray(INIT_HEADER_SIZE, HID_REPORT_SIZE), 0);
      this.buffer = buffer;
      this.filled = INIT_DATA_SIZE;
      this.cid = cid;
      this.cmd = cmd;
      this.nextSeq = 0;
      this.lastAt = now;
      return { kind: 'partial', cid };
    }

    // Continuation packet.
    if (this.buffer === undefined || cid !== this.cid) {
      // §11.2.5.4: spurious continuation packets are ignored.
      return { kind: 'ignored', reason: 'continuation without a message in progress on this channel' };
    }
    const seq = report[4];
    if (seq !== this.nextSeq) {
      this.reset();
      return { kind: 'error', cid, code: CTAPHID_ERR_INVALID_SEQ, aborted: true };
    }
    const buffer = this.buffer;
    const take = Math.min(CONT_DATA_SIZE, buffer.length - this.filled);
    buffer.set(report.subarray(CONT_HEADER_SIZE, CONT_HEADER_SIZE + take), this.filled);
    this.filled += take;
    this.nextSeq++;
    this.lastAt = now;
    if (this.filled < buffer.length) return { kind: 'partial', cid };
    const cmd = this.cmd;
    this.reset();
    return { kind: 'complete', cid, cmd, payload: buffer };
  }
}
