/**
 * Test harness for the CTAPHID device engine (with the shared fake clock): a scriptable Authenticator, and
 * a simulated host that writes reports and parses the device's input reports back into messages.
 */
import type { Authenticator, KeepaliveStatus, RequestContext, RequestKind } from '../../protocol/authenticator.ts';
import { CID_BROADCAST, CTAPHID_INIT, fragment, readCid } from '../../protocol/ctaphid.ts';
import { CtaphidDevice, type CtaphidDeviceOptions } from '../../device/ctaphid-device.ts';
import type { HostLink } from '../../device/host-link.ts';
import type { FakeClock } from '../support/fake-clock.ts';

export interface RecordedRequest {
  kind: RequestKind;
  payload: Uint8Array;
  ctx: RequestContext;
  resolve(response: Uint8Array): void;
  reject(err: Error): void;
}

export class FakeAuthenticator implements Authenticator {
  readonly requests: RecordedRequest[] = [];
  winks = 0;
  readonly descriptor;
  constructor(opts: { ctap1?: boolean; wink?: boolean } = {}) {
    this.descriptor = { id: 'fake', label: 'fake authenticator', transport: 'soft' as const, ctap1: opts.ctap1 ?? false, wink: opts.wink ?? true };
  }
  request(kind: RequestKind, payload: Uint8Array, ctx: RequestContext): Promise<Uint8Array> {
    return new Promise((resolve, reject) => {
      this.requests.push({ kind, payload: payload.slice(), ctx, resolve, reject });
    });
  }
  async wink(): Promise<void> {
    this.winks++;
  }
  get last(): RecordedRequest {
    const r = this.requests[this.requests.length - 1];
    if (!r) throw new Error('no request');
    return r;
  }
}

export interface Message {
  cid: number;
  cmd: number;
  payload: Uint8Array;
}

/** One simulated host connection. */
export class Host {
  readonly reports: Uint8Array[] = [];
  readonly link: HostLink;
  constructor(device: CtaphidDevice) {
    this.link = device.attach((r) => this.reports.push(r.slice()));
  }
  raw(report: Uint8Array): void {
    this.link.receive(report);
  }
  send(cid: number, cmd: number, payload: Uint8Array = new Uint8Array(0)): void {
    for (const r of fragment(cid, cmd, payload)) this.link.receive(r);
  }
  /** Parses and removes all complete messages received so far. */
  take(): Message[] {
    const out: Message[] = [];
    let cur: { cid: number; cmd: number; buf: Uint8Array; filled: number } | undefined;
    let consumed = 0;
    for (let i = 0; i < this.reports.length; i++) {
      const r = this.reports[i];
      if (r.length !== 64) throw new Error(`device sent a ${r.length}-byte report`);
      if (r[4] & 0x80) {
        if (cur) throw new Error('new init packet before the previous message finished');
        const bcnt = (r[5] << 8) | r[6];
        cur = { cid: readCid(r), cmd: r[4] & 0x7f, buf: new Uint8Array(bcnt), filled: 0 };
        const take = Math.min(57, bcnt);
        cur.buf.set(r.subarray(7, 7 + take));
        cur.filled = take;
      } else {
        if (!cur) throw new Error('stray continuation');
        const take = Math.min(59, cur.buf.length - cur.filled);
        cur.buf.set(r.subarray(5, 5 + take), cur.filled);
        cur.filled += take;
      }
      if (cur.filled === cur.buf.length) {
        out.push({ cid: cur.cid, cmd: cur.cmd, payload: cur.buf });
        cur = undefined;
        consumed = i + 1;
      }
    }
    this.reports.splice(0, consumed);
    return out;
  }
  /** CTAPHID_INIT on broadcast; returns the allocated channel. */
  init(nonce = Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8)): number {
    this.send(CID_BROADCAST, CTAPHID_INIT, nonce);
    const msgs = this.take();
    const m = msgs[msgs.length - 1];
    if (!m || m.cmd !== CTAPHID_INIT || m.payload.length !== 17) throw new Error('INIT failed');
    return readCid(m.payload.subarray(8, 12));
  }
}

export function makeDevice(auth: Authenticator, clock: FakeClock, opts: Partial<CtaphidDeviceOptions> = {}): CtaphidDevice {
  let counter = 0x10000;
  return new CtaphidDevice(auth, {
    clock,
    randomBytes: (n) => {
      counter += 0x01010101;
      const b = new Uint8Array(n);
      new DataView(b.buffer).setUint32(0, counter >>> 0);
      return b;
    },
    version: { major: 1, minor: 2, build: 3 },
    ...opts,
  });
}

export type { KeepaliveStatus };
