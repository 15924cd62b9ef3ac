import { describe, expect, it } from 'vitest';
import type { CborMap } from '../../../protocol/cbor.ts';
import {
  CTAP1_ERR_INVALID_COMMAND,
  CTAP1_ERR_INVALID_LENGTH,
  CTAP2_ERR_KEEPALIVE_CANCEL,
  CTAP2_ERR_NO_CREDENTIALS,
  CTAP2_ERR_NOT_ALLOWED,
  CTAP2_ERR_OPERATION_DENIED,
  CTAP2_ERR_REQUEST_TOO_LARGE,
} from '../../../protocol/ctap2.ts';
import { MAX_MESSAGE_SIZE } from '../../../protocol/ctaphid.ts';
import { KEYTUNNEL_AAGUID } from '../../../agent/authenticators/soft/soft-authenticator.ts';
import { ctap, m, makeHarness, mcParams, parseAuthData, PlatformPin, RP_ID, sha256 } from './helpers.ts';

describe('authenticatorGetInfo', () => {
  it('advertises versions, extensions, AAGUID, options, limits and algorithms', async () => {
    const h = await makeHarness();
    const r = await ctap(h, 0x04);
    expect(r.status).toBe(0);
    const info = r.body as CborMap;
    expect(info.get(1)).toEqual(['U2F_V2', 'FIDO_2_0', 'FIDO_2_1']);
    expect(info.get(2)).toEqual(['credProtect', 'credBlob', 'hmac-secret', 'minPinLength']);
    expect(Buffer.from(info.get(3) as Uint8Array).toString('hex')).toBe('70829c58064f4078b3c78dc3b4c185b1');
    expect(info.get(3)).toEqual(KEYTUNNEL_AAGUID);
    const options = info.get(4) as CborMap;
    expect(Object.fromEntries(options)).toMatchObject({
      plat: false,
      rk: true,
      up: true,
      clientPin: false,
      credMgmt: true,
      pinUvAuthToken: true,
      makeCredUvNotRqd: true,
    });
    expect(options.has('uv')).toBe(false);
    expect(info.get(5)).toBe(1200);
    expect(info.get(6)).toEqual([2, 1]);
    expect(info.get(7)).toBe(16);
    expect(info.get(8)).toBe(128);
    expect(info.get(9)).toEqual(['usb']);
    expect(info.get(10)).toEqual([m([['alg', -7], ['type', 'public-key']]), m([['alg', -8], ['type', 'public-key']])]);
    expect(info.get(13)).toBe(4);
    expect(typeof info.get(14)).toBe('number');
    expect(info.get(15)).toBe(32);
    expect(info.get(20)).toBe(256);
  });

  it('descriptor is stable across restarts and differs between devices', async () => {
    const h = await makeHarness();
    const again = await makeHarness({ store: h.store });
    const other = await makeHarness();
    expect(h.auth.descriptor).toMatchObject({ label: 'keytunnel soft authenticator', transport: 'soft', ctap1: true, wink: false });
    expect(again.auth.descriptor.id).toBe(h.auth.descriptor.id);
    expect(other.auth.descriptor.id).not.toBe(h.auth.descriptor.id);
  });

  it('unknown commands, empty and over-long messages', async () => {
    const h = await makeHarness();
    for (const cmd of [0x03, 0x09, 0x0c, 0x0d, 0x40, 0x7f, 0xff]) expect((await ctap(h, cmd)).status).toBe(CTAP1_ERR_INVALID_COMMAND);
    expect((await h.auth.request('cbor', new Uint8Array(0), h.ctx()))[0]).toBe(CTAP1_ERR_INVALID_LENGTH);
    expect((await h.auth.request('cbor', new Uint8Array(MAX_MESSAGE_SIZE + 1), h.ctx()))[0]).toBe(CTAP2_ERR_REQUEST_TOO_LARGE);
    // Beyond maxMsgSize but within what CTAPHID carries: still processed (a long excludeList must not break registration).
    const big = mcParams({ extra: [[5, Array.from({ length: 16 }, (_, i) => m([['id', new Uint8Array(100).fill(i)], ['type', 'public-key']]))]] });
    expect((await ctap(h, 0x01, big)).status).toBe(0);
  });
});

describe('authenticatorReset', () => {
  it('wipes credentials and PIN, invalidates old ids, keeps the device id', async () => {
    const h = await makeHarness();
    const pin = new PlatformPin(h, 2);
    const nr = await ctap(h, 0x01, mcParams());
    const nrId = parseAuthData((nr.body as CborMap).get(2) as Uint8Array).credentialId as Uint8Array;
    expect(await pin.setPin('1234')).toBe(0);
    // Use the id first so every cache (opened ids, keys) is warm before the reset.
    expect((await ctap(h, 0x02, m([[1, RP_ID], [2, sha256('x')], [3, [m([['id', nrId], ['type', 'public-key']])]]]))).status).toBe(0);
    expect((await ctap(h, 0x07)).status).toBe(0);
    expect(h.presence.requests.at(-1)?.action).toBe('reset');
    const info = await ctap(h, 0x04);
    expect(((info.body as CborMap).get(4) as CborMap).get('clientPin')).toBe(false);
    expect((await ctap(h, 0x02, m([[1, RP_ID], [2, sha256('x')], [3, [m([['id', nrId], ['type', 'public-key']])]]]))).status).toBe(CTAP2_ERR_NO_CREDENTIALS);
    const reopened = await makeHarness({ store: h.store, clock: h.clock });
    expect(reopened.auth.descriptor.id).toBe(h.auth.descriptor.id);
    expect(((await ctap(reopened, 0x04)).body as CborMap).get(4)).toBeInstanceOf(Map);
  });

  it('only within the reset window after power-up; presence denied/cancelled → no wipe', async () => {
    const h = await makeHarness({ resetWindowMs: 10_000 });
    expect(await new PlatformPin(h, 1).setPin('1234')).toBe(0);
    h.presence.answer = 'denied';
    expect((await ctap(h, 0x07)).status).toBe(CTAP2_ERR_OPERATION_DENIED);
    h.presence.answer = 'hang';
    const ac = new AbortController();
    const pending = h.auth.request('cbor', Uint8Array.of(0x07), h.ctx(undefined, ac.signal));
    ac.abort();
    expect((await pending)[0]).toBe(CTAP2_ERR_KEEPALIVE_CANCEL);
    h.presence.answer = 'approved';
    h.clock.advance(10_001);
    expect((await ctap(h, 0x07)).status).toBe(CTAP2_ERR_NOT_ALLOWED);
    const info = await ctap(h, 0x04);
    expect(((info.body as CborMap).get(4) as CborMap).get('clientPin')).toBe(true);
    // A restart opens a new window.
    const reopened = await makeHarness({ store: h.store, clock: h.clock });
    expect((await ctap(reopened, 0x07)).status).toBe(0);
  });
});

describe('authenticatorSelection', () => {
  it('asks for presence and answers OK / OPERATION_DENIED', async () => {
    const h = await makeHarness();
    expect((await ctap(h, 0x0b)).status).toBe(0);
    expect(h.presence.requests.at(-1)?.action).toBe('selection');
    h.presence.answer = 'denied';
    expect((await ctap(h, 0x0b)).status).toBe(CTAP2_ERR_OPERATION_DENIED);
  });
});

describe('one transaction at a time', () => {
  it('queues a second request behind a pending presence prompt', async () => {
    const h = await makeHarness();
    h.presence.answer = 'hang';
    const ac = new AbortController();
    const order: string[] = [];
    const first = h.auth.request('cbor', Uint8Array.of(0x0b), h.ctx(undefined, ac.signal)).then((r) => {
      order.push(`selection:${r[0]}`);
    });
    const second = h.auth.request('cbor', Uint8Array.of(0x04), h.ctx()).then((r) => {
      order.push(`info:${r[0]}`);
    });
    await new Promise((r) => setTimeout(r, 10));
    expect(order).toEqual([]);
    ac.abort();
    await Promise.all([first, second]);
    expect(order).toEqual([`selection:${CTAP2_ERR_KEEPALIVE_CANCEL}`, 'info:0']);
  });
});

describe('presence outcomes (agent/presence/outcome-status.ts)', () => {
  it('timeout → USER_ACTION_TIMEOUT for reset, selection and makeCredential; denied → OPERATION_DENIED', async () => {
    const h = await makeHarness();
    h.presence.answer = 'timeout';
    expect((await ctap(h, 0x0b)).status).toBe(0x2f);
    expect((await ctap(h, 0x07)).status).toBe(0x2f);
    expect((await ctap(h, 0x01, mcParams())).status).toBe(0x2f);
    h.presence.answer = 'denied';
    expect((await ctap(h, 0x0b)).status).toBe(CTAP2_ERR_OPERATION_DENIED);
    expect((await ctap(h, 0x07)).status).toBe(CTAP2_ERR_OPERATION_DENIED);
    h.presence.answer = 'cancelled';
    expect((await ctap(h, 0x0b)).status).toBe(CTAP2_ERR_KEEPALIVE_CANCEL);
    expect((await ctap(h, 0x07)).status).toBe(CTAP2_ERR_KEEPALIVE_CANCEL);
    expect((await ctap(h, 0x01, mcParams())).status).toBe(CTAP2_ERR_KEEPALIVE_CANCEL);
    h.presence.answer = 'approved';
    expect((await ctap(h, 0x0b)).status).toBe(0);
    expect((await ctap(h, 0x01, mcParams())).status).toBe(0);
    expect(h.presence.outcomes).toEqual(['timeout', 'timeout', 'timeout', 'denied', 'denied', 'cancelled', 'cancelled', 'cancelled', 'approved', 'approved']);
  });

  it('a presence port that throws is a denial, never an approval', async () => {
    const h = await makeHarness();
    h.presence.answer = () => Promise.reject(new Error('the prompt program crashed'));
    expect((await ctap(h, 0x0b)).status).toBe(CTAP2_ERR_OPERATION_DENIED);
    expect((await ctap(h, 0x01, mcParams())).status).toBe(CTAP2_ERR_OPERATION_DENIED);
  });
});
