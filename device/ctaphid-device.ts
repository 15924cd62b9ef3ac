/**
 * The CTAPHID device engine: turns 64-byte HID output reports from one or more hosts into whole CTAP requests
 * for one `Authenticator`, and its answers back into input reports (CTAP 2.1 PS 2021-06-15 §11.2.4–§11.2.9).
 *
 * It owns every transport rule a real key enforces: channel allocation and resync (CTAPHID_INIT), one
 * transaction at a time across the device (others get CHANNEL_BUSY), sequence and length checks, the message
 * timeout, KEEPALIVE while the authenticator works, CTAPHID_CANCEL, CTAPHID_LOCK, and locally answered PING
 * and WINK. Faces (loopback, uhid, usbip) only move reports; see device/host-link.ts.
 *
 * Time comes from an injected clock (protocol/clock.ts) so tests drive it without sleeping. The remote host
 * is untrusted: every state is bounded (channel cap with LRU eviction, idle expiry, one message buffer of at
 * most 7609 bytes) and no input makes it throw.
 */

import type { Authenticator, KeepaliveStatus, RequestKind, RequestOrigin } from '../protocol/authenticator.ts';
import { CTAP2_ERR_KEEPALIVE_CANCEL } from '../protocol/ctap2.ts';
import {
  CAPABILITY_CBOR,
  CAPABILITY_LOCK,
  CAPABILITY_NMSG,
  CAPABILITY_WINK,
  CID_BROADCAST,
  CID_RESERVED,
  CTAPHID_CANCEL,
  CTAPHID_CBOR,
  CTAPHID_ERR_CHANNEL_BUSY,
  CTAPHID_ERR_INVALID_CHANNEL,
  CTAPHID_ERR_INVALID_CMD,
  CTAPHID_ERR_INVALID_LEN,
  CTAPHID_ERR_INVALID_PAR,
  CTAPHID_ERR_OTHER,
  CTAPHID_ERROR,
  CTAPHID_INIT,
  CTAPHID_KEEPALIVE,
  CTAPHID_LOCK,
  CTAPHID_MSG,
  CTAPHID_PING,
  CTAPHID_PROTOCOL_VERSION,
  CTAPHID_WINK,
  CtaphidReassembler,
  HID_REPORT_SIZE,
  INIT_HEADER_SIZE,
  INIT_NONCE_SIZE,
  MAX_LOCK_SECONDS,
  MAX_MESSAGE_SIZE,
  STATUS_PROCESSING,
  STATUS_UPNEEDED,
  encodeInitResponse,
  fragment,
  isInitPacket,
  readCid,
  type CtaphidErrorCode,
  type ReassemblyResult,
} from '../protocol/ctaphid.ts';
import type { HostLink, ReportDevice } from './host-link.ts';
import { systemClock, type Clock } from '../protocol/clock.ts';
import { randomBytes as nodeRandomBytes } from 'node:crypto';

export interface DeviceVersion {
  readonly major: number;
  readonly minor: number;
  readonly build: number;
}

export interface CtaphidDeviceOptions {
  /** Time and timers (default the system clock, Date.now). */
  readonly clock?: Clock;
  /** Source of channel ids (default node:crypto randomBytes). */
  readonly randomBytes?: (n: number) => Uint8Array;
  /** Cap on allocated channels; the least recently used idle one is evicted beyond it (default 64). */
  readonly maxChannels?: number;
  /** A channel unused this long is forgotten (default 1 hour: browsers keep one channel for their lifetime). */
  readonly channelIdleMs?: number;
  /** §11.2.5.2: a continuation later than this aborts the message with ERR_MSG_TIMEOUT (default 500 ms). */
  readonly messageTimeoutMs?: number;
  /** §11.2.9.1.7: KEEPALIVE cadence while the authenticator works (default 100 ms). */
  readonly keepaliveIntervalMs?: number;
  /** Device version bytes in the INIT response. */
  readonly version?: DeviceVersion;
  /** Passed to the authenticator with every request. */
  readonly origin?: RequestOrigin;
}

/** The capabilities this engine implements: LOCK always; WINK when the descriptor says so; NMSG per ctap1. */
export function deviceCapabilities(descriptor: { ctap1: boolean; wink: boolean }): number {
  let caps = CAPABILITY_CBOR | CAPABILITY_LOCK;
  if (descriptor.wink) caps |= CAPABILITY_WINK;
  if (!descriptor.ctap1) caps |= CAPABILITY_NMSG;
  return caps;
}

interface LinkState {
  readonly send: (report: Uint8Array) => void;
  closed: boolean;
}

interface Channel {
  readonly cid: number;
  readonly link: LinkState;
  lastUsed: number;
}

interface Pending {
  readonly channel: Channel;
  readonly kind: RequestKind;
  readonly abort: AbortController;
  status: KeepaliveStatus;
  keepaliveTimer: unknown;
}

export class CtaphidDevice implements ReportDevice {
  private readonly authenticator: Authenticator;
  private readonly clock: Clock;
  private readonly randomBytes: (n: number) => Uint8Array;
  private readonly maxChannels: number;
  private readonly channelIdleMs: number;
  private readonly messageTimeoutMs: number;
  private readonly keepaliveIntervalMs: number;
  private readonly version: DeviceVersion;
  private readonly origin: RequestOrigin | undefined;
  readonly capabilities: number;

  /** Insertion order = least recently used first (re-inserted on every use). */
  private readonly channels = new Map<number, Channel>();
  private readonly links = new Set<LinkState>();
  private readonly reassembler: CtaphidReassembler;
  private messageTimer: unknown = undefined;
  private pending: Pending | undefined;
  private lock: { cid: number; until: number } | undefined;
  private closed = false;

  constructor(authenticator: Authenticator, options: CtaphidDeviceOptions = {}) {
    this.authenticator = authenticator;
    this.clock = options.clock ?? systemClock;
    this.randomBytes = options.randomBytes ?? ((n) => new Uint8Array(nodeRandomBytes(n)));
    this.maxChannels = Math.max(2, options.maxChannels ?? 64);
    this.channelIdleMs = options.channelIdleMs ?? 60 * 60 * 1000;
    this.messageTimeoutMs = options.messageTimeoutMs ?? 500;
    this.keepaliveIntervalMs = options.keepaliveIntervalMs ?? 100;
    this.version = options.version ?? { major: 0, minor: 1, build: 0 };
    this.origin = options.origin;
    this.capabilities = deviceCapabilities(authenticator.descriptor);
    this.reassembler = new CtaphidReassembler({ maxMessageSize: MAX_MESSAGE_SIZE, timeoutMs: this.messageTimeoutMs });
  }

  /** Number of allocated channels (for tests and status). */
  get channelCount(): number {
    return this.channels.size;
  }

  attach(sendInput: (report: Uint8Array) => void): HostLink {
    const link: LinkState = { send: sendInput, closed: false };
    if (!this.closed) this.links.add(link);
    return {
      receive: (report) => {
        try {
          this.receive(link, report);
        } catch {
          // Defensive only: no input is known to throw (see the fuzz test), but a host must never be able to
          // take the engine, and with it every other host, down.
        }
      },
      close: () => this.closeLink(link),
    };
  }

  /** Stops everything: clears all timers, aborts the pending request, forgets every channel and link. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.pending) this.abortPending(this.pending);
    this.clearMessageTimer();
    this.reassembler.reset();
    this.channels.clear();
    for (const l of this.links) l.closed = true;
    this.links.clear();
    this.lock = undefined;
  }

  // -------------------------------------------------------------------------------------------------------

  private receive(link: LinkState, report: Uint8Array): void {
    if (this.closed || link.closed || report.length !== HID_REPORT_SIZE) return;
    const now = this.clock.now();
    const cid = readCid(report);

    if (!isInitPacket(report)) {
      // Continuation: only meaningful for the message this link is sending on its own channel.
      const ch = this.channels.get(cid);
      if (!ch || ch.link !== link || this.pending) return;
      this.touch(ch, now);
      this.handleReassembly(link, this.reassembler.accept(report, now));
      return;
    }

    const cmd = report[4] & 0x7f;
    const bcnt = (report[5] << 8) | report[6];
    // §11.2.3: channel 0 is reserved; the broadcast channel carries CTAPHID_INIT only.
    if (cid === CID_RESERVED) return this.sendError(link, cid, CTAPHID_ERR_INVALID_CHANNEL);
    if (cid === CID_BROADCAST) {
      if (cmd !== CTAPHID_INIT) return this.sendError(link, cid, CTAPHID_ERR_INVALID_CHANNEL);
      return this.handleInit(link, undefined, bcnt, report, now);
    }
    const ch = this.lookup(cid, link, now);
    if (!ch) return this.sendError(link, cid, CTAPHID_ERR_INVALID_CHANNEL);
    this.touch(ch, now);

    if (cmd === CTAPHID_INIT) return this.handleInit(link, ch, bcnt, report, now);
    if (cmd === CTAPHID_CANCEL) {
      // §11.2.9.1.5: cancels the CTAPHID_CBOR request pending on this channel; ignored otherwise. No response
      // of its own: the pending request is answered with CTAP2_ERR_KEEPALIVE_CANCEL.
      const p = this.pending;
      if (p && p.channel === ch && p.kind === 'cbor') {
        this.abortPending(p);
        this.sendMessage(ch.link, ch.cid, CTAPHID_CBOR, Uint8Array.of(CTAP2_ERR_KEEPALIVE_CANCEL));
      }
      return;
    }
    // §11.2.9.2.2: while another channel holds the lock, everyone else is busy.
    if (this.lockedAgainst(cid, now)) return this.sendError(link, cid, CTAPHID_ERR_CHANNEL_BUSY);
    // One transaction at a time (§11.2.5.1): a request is still with the authenticator.
    if (this.pending) return this.sendError(link, cid, CTAPHID_ERR_CHANNEL_BUSY);
    this.handleReassembly(link, this.reassembler.accept(report, now));
  }

  private handleReassembly(link: LinkState, res: ReassemblyResult): void {
    switch (res.kind) {
      case 'partial':
        this.armMessageTimer();
        return;
      case 'ignored':
        if (this.reassembler.activeChannel === undefined) this.clearMessageTimer();
        return;
      case 'error':
        if (this.reassembler.activeChannel === undefined) this.clearMessageTimer();
        this.sendError(link, res.cid, res.code);
        return;
      case 'complete': {
        this.clearMessageTimer();
        const ch = this.channels.get(res.cid);
        if (ch && ch.link === link) this.dispatch(ch, res.cmd, res.payload);
        return;
      }
    }
  }

  private dispatch(ch: Channel, cmd: number, payload: Uint8Array): void {
    switch (cmd) {
      case CTAPHID_PING:
        // §11.2.9.1.4: echoed by the device itself.
        this.sendMessage(ch.link, ch.cid, CTAPHID_PING, payload);
        return;
      case CTAPHID_WINK:
        if (payload.length !== 0) return this.sendError(ch.link, ch.cid, CTAPHID_ERR_INVALID_LEN);
        if (this.authenticator.wink) {
          // Best effort: the wink is a courtesy; its failure is not the host's concern.
          this.authenticator.wink().catch(() => undefined);
        }
        this.sendMessage(ch.link, ch.cid, CTAPHID_WINK, new Uint8Array(0));
        return;
      case CTAPHID_LOCK:
        return this.handleLock(ch, payload);
      case CTAPHID_MSG:
        // An empty MSG is a length error whatever the device supports (fido2-tests test_no_data_in_u2f_msg).
        if (payload.length === 0) return this.sendError(ch.link, ch.cid, CTAPHID_ERR_INVALID_LEN);
        if (!this.authenticator.descriptor.ctap1) return this.sendError(ch.link, ch.cid, CTAPHID_ERR_INVALID_CMD);
        return this.startRequest(ch, 'msg', payload);
      case CTAPHID_CBOR:
        // The CTAP2 command byte must be there (§11.2.9.1.2).
        if (payload.length === 0) return this.sendError(ch.link, ch.cid, CTAPHID_ERR_INVALID_LEN);
        return this.startRequest(ch, 'cbor', payload);
      default:
        // KEEPALIVE and ERROR are device-to-host only; vendor commands are not implemented.
        return this.sendError(ch.link, ch.cid, CTAPHID_ERR_INVALID_CMD);
    }
  }

  /** §11.2.9.1.3: broadcast INIT allocates a channel; INIT on an allocated channel resynchronises it. */
  private handleInit(link: LinkState, ch: Channel | undefined, bcnt: number, report: Uint8Array, now: number): void {
    const replyCid = ch ? ch.cid : CID_BROADCAST;
    if (ch) this.abortChannelTransaction(ch);
    if (bcnt !== INIT_NONCE_SIZE) return this.sendError(link, replyCid, CTAPHID_ERR_INVALID_LEN);
    const nonce = report.slice(INIT_HEADER_SIZE, INIT_HEADER_SIZE + INIT_NONCE_SIZE);
    let cid: number;
    if (ch) {
      cid = ch.cid;
    } else {
      const allocated = this.allocate(link, now);
      if (allocated === undefined) return this.sendError(link, replyCid, CTAPHID_ERR_CHANNEL_BUSY);
      cid = allocated.cid;
    }
    const response = encodeInitResponse({
      nonce,
      cid,
      protocolVersion: CTAPHID_PROTOCOL_VERSION,
      versionMajor: this.version.major & 0xff,
      versionMinor: this.version.minor & 0xff,
      versionBuild: this.version.build & 0xff,
      capabilities: this.capabilities,
    });
    this.sendMessage(link, replyCid, CTAPHID_INIT, response);
  }

  /** §11.2.9.2.2 CTAPHID_LOCK: one byte, 0..10 seconds; 0 releases. */
  private handleLock(ch: Channel, payload: Uint8Array): void {
    if (payload.length !== 1) return this.sendError(ch.link, ch.cid, CTAPHID_ERR_INVALID_LEN);
    const seconds = payload[0];
    if (seconds > MAX_LOCK_SECONDS) return this.sendError(ch.link, ch.cid, CTAPHID_ERR_INVALID_PAR);
    if (seconds === 0) {
      if (this.lock?.cid === ch.cid) this.lock = undefined;
    } else {
      this.lock = { cid: ch.cid, until: this.clock.now() + seconds * 1000 };
    }
    this.sendMessage(ch.link, ch.cid, CTAPHID_LOCK, new Uint8Array(0));
  }

  private lockedAgainst(cid: number, now: number): boolean {
    if (!this.lock) return false;
    if (now >= this.lock.until) {
      this.lock = undefined;
      return false;
    }
    return this.lock.cid !== cid;
  }

  // ------------------------------------------------------------------------------------------- requests

  private startRequest(ch: Channel, kind: RequestKind, payload: Uint8Array): void {
    const p: Pending = { channel: ch, kind, abort: new AbortController(), status: STATUS_PROCESSING, keepaliveTimer: undefined };
    this.pending = p;
    this.scheduleKeepalive(p);
    let promise: Promise<Uint8Array>;
    try {
      promise = this.authenticator.request(kind, payload, {
        signal: p.abort.signal,
        onStatus: (status) => {
          if (this.pending === p && (status === STATUS_PROCESSING || status === STATUS_UPNEEDED)) p.status = status;
        },
        ...(this.origin ? { origin: this.origin } : {}),
      });
    } catch (err) {
      promise = Promise.reject(err);
    }
    promise.then(
      (response) => this.finishRequest(p, response),
      () => this.finishRequest(p, undefined),
    );
  }

  private finishRequest(p: Pending, response: Uint8Array | undefined): void {
    // Superseded: cancelled, resynchronised, the link went away, or the device closed.
    if (this.pending !== p) return;
    this.pending = undefined;
    this.clock.clearTimeout(p.keepaliveTimer);
    const ch = p.channel;
    if (response === undefined || !(response instanceof Uint8Array) || response.length > MAX_MESSAGE_SIZE) {
      // The authenticator could not answer at all (transport failure): CTAPHID_ERROR ERR_OTHER.
      this.sendError(ch.link, ch.cid, CTAPHID_ERR_OTHER);
      return;
    }
    this.sendMessage(ch.link, ch.cid, p.kind === 'cbor' ? CTAPHID_CBOR : CTAPHID_MSG, response);
  }

  /** §11.2.9.1.7: KEEPALIVE with the latest status every keepaliveIntervalMs while the request is pending. */
  private scheduleKeepalive(p: Pending): void {
    p.keepaliveTimer = this.clock.setTimeout(() => {
      if (this.pending !== p) return;
      this.sendMessage(p.channel.link, p.channel.cid, CTAPHID_KEEPALIVE, Uint8Array.of(p.status));
      this.scheduleKeepalive(p);
    }, this.keepaliveIntervalMs);
  }

  /**
   * Drops the pending request without answering it. The device is free again at once: the Authenticator
   * contract says an aborted request settles promptly, and its late result is discarded.
   */
  private abortPending(p: Pending): void {
    if (this.pending === p) this.pending = undefined;
    this.clock.clearTimeout(p.keepaliveTimer);
    p.abort.abort();
  }

  /** Aborts whatever this channel has in flight (resync, eviction, link close). */
  private abortChannelTransaction(ch: Channel): void {
    if (this.pending?.channel === ch) this.abortPending(this.pending);
    if (this.reassembler.activeChannel === ch.cid) {
      this.reassembler.reset();
      this.clearMessageTimer();
    }
  }

  // ------------------------------------------------------------------------------------------- channels

  private lookup(cid: number, link: LinkState, now: number): Channel | undefined {
    const ch = this.channels.get(cid);
    if (!ch || ch.link !== link) return undefined;
    if (now - ch.lastUsed > this.channelIdleMs && !this.isBusy(ch)) {
      this.dropChannel(ch);
      return undefined;
    }
    return ch;
  }

  private touch(ch: Channel, now: number): void {
    ch.lastUsed = now;
    this.channels.delete(ch.cid);
    this.channels.set(ch.cid, ch);
  }

  private isBusy(ch: Channel): boolean {
    return this.pending?.channel === ch || this.reassembler.activeChannel === ch.cid || this.lock?.cid === ch.cid;
  }

  private allocate(link: LinkState, now: number): Channel | undefined {
    for (const ch of [...this.channels.values()]) {
      if (now - ch.lastUsed > this.channelIdleMs && !this.isBusy(ch)) this.dropChannel(ch);
    }
    while (this.channels.size >= this.maxChannels) {
      let victim: Channel | undefined;
      for (const ch of this.channels.values()) {
        if (!this.isBusy(ch)) {
          victim = ch;
          break;
        }
      }
      if (!victim) return undefined;
      this.dropChannel(victim);
    }
    for (let attempt = 0; attempt < 64; attempt++) {
      const b = this.randomBytes(4);
      if (b.length < 4) break;
      const cid = readCid(b);
      if (cid === CID_RESERVED || cid === CID_BROADCAST || this.channels.has(cid)) continue;
      const ch: Channel = { cid, link, lastUsed: now };
      this.channels.set(cid, ch);
      return ch;
    }
    return undefined;
  }

  private dropChannel(ch: Channel): void {
    this.abortChannelTransaction(ch);
    if (this.lock?.cid === ch.cid) this.lock = undefined;
    this.channels.delete(ch.cid);
  }

  private closeLink(link: LinkState): void {
    if (link.closed) return;
    link.closed = true;
    this.links.delete(link);
    for (const ch of [...this.channels.values()]) if (ch.link === link) this.dropChannel(ch);
  }

  // ------------------------------------------------------------------------------------------- timers, I/O

  private armMessageTimer(delayMs: number = this.messageTimeoutMs): void {
    this.clearMessageTimer();
    this.messageTimer = this.clock.setTimeout(() => {
      this.messageTimer = undefined;
      const res = this.reassembler.expire(this.clock.now());
      if (res?.kind === 'error') {
        const ch = this.channels.get(res.cid);
        if (ch) this.sendError(ch.link, res.cid, res.code);
      } else if (this.reassembler.activeChannel !== undefined) {
        // A real clock may fire a hair early: look again just after the deadline.
        const last = this.reassembler.lastPacketAt ?? this.clock.now();
        this.armMessageTimer(Math.max(1, last + this.messageTimeoutMs - this.clock.now()));
      }
    }, delayMs);
  }

  private clearMessageTimer(): void {
    if (this.messageTimer !== undefined) {
      this.clock.clearTimeout(this.messageTimer);
      this.messageTimer = undefined;
    }
  }

  private sendError(link: LinkState, cid: number, code: CtaphidErrorCode): void {
    this.sendMessage(link, cid, CTAPHID_ERROR, Uint8Array.of(code));
  }

  private sendMessage(link: LinkState, cid: number, cmd: number, payload: Uint8Array): void {
    if (link.closed || this.closed) return;
    for (const report of fragment(cid, cmd, payload)) {
      try {
        link.send(report);
      } catch {
        // A face that cannot deliver (socket gone) is closed by its own lifecycle; nothing to do here.
        return;
      }
    }
  }
}
