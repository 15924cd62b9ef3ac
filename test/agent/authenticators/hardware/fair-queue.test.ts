/**
 * A hardware key shared by several gateways (issue 11, finding 4): one gateway's backlog on a slow key neither
 * refuses another gateway's request nor makes it wait for the backlog — per-gateway sub-queues, served round-robin.
 */
import { describe, expect, it } from 'vitest';
import type { RequestContext } from '../../../../protocol/authenticator.ts';
import { CAPABILITY_CBOR } from '../../../../protocol/ctaphid.ts';
import type { FidoDeviceInfo } from '../../../../agent/authenticators/hardware/device-info.ts';
import { HidQueueFullError } from '../../../../agent/authenticators/hardware/errors.ts';
import type { CtaphidSession } from '../../../../agent/authenticators/hardware/ctaphid-session.ts';
import { HidAuthenticator } from '../../../../agent/authenticators/hardware/hid-authenticator.ts';
import { DEFAULT_PER_ORIGIN_QUEUE_LIMIT } from '../../../../agent/authenticators/hardware/transaction-queue.ts';

const GET_INFO_ANSWER = Uint8Array.of(0x00, 0xa0);

/** A key that takes `ms` per transaction and records which payload it served, in order. */
class SlowKey implements CtaphidSession {
  readonly capabilities = CAPABILITY_CBOR;
  readonly served: string[] = [];
  constructor(private readonly ms: number) {}
  transact(_cmd: number, payload: Uint8Array): Promise<Uint8Array> {
    if (payload.length === 1 && payload[0] === 0x04) return Promise.resolve(GET_INFO_ANSWER);
    const tag = new TextDecoder().decode(payload.subarray(1));
    return new Promise((resolve) =>
      setTimeout(() => {
        this.served.push(tag);
        resolve(Uint8Array.of(0x00));
      }, this.ms),
    );
  }
  async close(): Promise<void> {}
}

const info: FidoDeviceInfo = { path: '/dev/hidraw9', vendorId: 0x1050, productId: 0x0407, product: 'Key', manufacturer: 'Yubico', serialNumber: '1' };

const from = (fingerprint: string): RequestContext => ({
  signal: new AbortController().signal,
  onStatus() {},
  origin: { gatewayFingerprint: fingerprint, gatewayName: fingerprint },
});
const request = (tag: string) => Uint8Array.of(0x01, ...new TextEncoder().encode(tag));

describe('a hardware key shared by gateways', () => {
  it("gateway A's 40 queued requests neither refuse gateway B's request nor delay it until A's backlog drains", async () => {
    const key = new SlowKey(5);
    const auth = await HidAuthenticator.open(info, { openSession: async () => key });
    const a = Array.from({ length: 40 }, (_, i) => auth.request('cbor', request(`A${i}`), from('fp-a')).then(
      () => 'ok' as const,
      (err: unknown) => err,
    ));
    const b = auth.request('cbor', request('B0'), from('fp-b'));
    await expect(b).resolves.toEqual(Uint8Array.of(0x00));
    // B was served right after the request A had running, long before A's backlog drained.
    expect(key.served).toEqual(['A0', 'B0']);
    const outcomes = await Promise.all(a);
    // A alone is bounded: one running plus its own sub-queue; the rest refused with QUEUE_FULL.
    const served = outcomes.filter((o) => o === 'ok').length;
    expect(served).toBe(1 + DEFAULT_PER_ORIGIN_QUEUE_LIMIT);
    for (const o of outcomes.filter((o) => o !== 'ok')) expect(o).toBeInstanceOf(HidQueueFullError);
    expect(key.served.filter((t) => t.startsWith('A'))).toEqual(Array.from({ length: served }, (_, i) => `A${i}`));
    await auth.close();
  });

  it('three gateways with backlogs are served in turn, one request each', async () => {
    const key = new SlowKey(2);
    const auth = await HidAuthenticator.open(info, { openSession: async () => key });
    const all: Promise<unknown>[] = [];
    for (const g of ['a', 'b', 'c']) for (let i = 0; i < 3; i++) all.push(auth.request('cbor', request(`${g}${i}`), from(`fp-${g}`)));
    await Promise.all(all);
    expect(key.served).toEqual(['a0', 'b0', 'c0', 'a1', 'b1', 'c1', 'a2', 'b2', 'c2']);
    await auth.close();
  });
});
