/**
 * Issue 11 finding 2: the tunnel and the authenticator agree on the largest CTAP request. It is one constant,
 * protocol/ctaphid.ts MAX_MESSAGE_SIZE (what one CTAPHID transaction carries, CTAP 2.1 PS 2021-06-15 §11.2.4): exactly
 * that many bytes pass both the tunnel codec and the soft authenticator; one more is refused by both.
 */
import { describe, expect, it } from 'vitest';
import { CTAP2_ERR_REQUEST_TOO_LARGE } from '../../../protocol/ctap2.ts';
import { SW_WRONG_LENGTH } from '../../../protocol/u2f.ts';
import { MAX_MESSAGE_SIZE } from '../../../protocol/ctaphid.ts';
import {
  decodeFrame,
  encodeFrame,
  FRAME_REQUEST,
  MAX_CTAP_PAYLOAD,
  TunnelProtocolError,
  type Frame,
} from '../../../protocol/tunnel.ts';
import { makeHarness } from './helpers.ts';

/** A REQUEST frame's bytes built by hand (so an over-long payload can be offered to the decoder). */
function rawRequest(payload: Uint8Array): Uint8Array {
  const id = Buffer.from('soft-1', 'ascii');
  const body = Buffer.concat([
    Uint8Array.of(FRAME_REQUEST),
    Uint8Array.of(0, 0, 0, 1), // requestId
    Uint8Array.of(id.length),
    id,
    Uint8Array.of(1), // kind cbor
    Uint8Array.of(payload.length >> 8, payload.length & 0xff),
    payload,
  ]);
  const out = Buffer.alloc(4 + body.length);
  out.writeUInt32BE(body.length, 0);
  body.copy(out, 4);
  return out;
}

/** getInfo (0x04) padded to `n` bytes: a request the authenticator answers when it accepts the size. */
function paddedGetInfo(n: number): Uint8Array {
  const p = new Uint8Array(n);
  p[0] = 0x04;
  return p;
}

describe('one maximum CTAP payload for the tunnel and the authenticator', () => {
  it('is the CTAPHID maximum, 7609 bytes, with no spare byte in the tunnel', () => {
    expect(MAX_MESSAGE_SIZE).toBe(7609);
    expect(MAX_CTAP_PAYLOAD).toBe(MAX_MESSAGE_SIZE);
  });

  it('exactly MAX passes the tunnel codec and the soft authenticator', async () => {
    const payload = paddedGetInfo(MAX_MESSAGE_SIZE);
    const frame: Frame = { type: 'request', requestId: 1, authenticatorId: 'soft-1', kind: 'cbor', payload };
    const wire = encodeFrame(frame);
    expect(Buffer.from(wire)).toEqual(Buffer.from(rawRequest(payload)));
    expect(decodeFrame(wire)).toMatchObject({ type: 'request', payload });
    const h = await makeHarness();
    expect((await h.auth.request('cbor', payload, h.ctx()))[0]).toBe(0);
  });

  it('MAX + 1 is refused by the tunnel codec (both ways) and by the soft authenticator (CBOR and U2F)', async () => {
    const payload = paddedGetInfo(MAX_MESSAGE_SIZE + 1);
    expect(() => decodeFrame(rawRequest(payload))).toThrow(TunnelProtocolError);
    expect(() => encodeFrame({ type: 'request', requestId: 1, authenticatorId: 'soft-1', kind: 'cbor', payload })).toThrow(TunnelProtocolError);
    expect(() => encodeFrame({ type: 'response', requestId: 1, payload })).toThrow(TunnelProtocolError);
    const h = await makeHarness();
    expect((await h.auth.request('cbor', payload, h.ctx()))[0]).toBe(CTAP2_ERR_REQUEST_TOO_LARGE);
    const apdu = new Uint8Array(MAX_MESSAGE_SIZE + 1);
    apdu[1] = 0x03; // U2F_VERSION
    const answer = await h.auth.request('msg', apdu, h.ctx());
    expect((answer[answer.length - 2] << 8) | answer[answer.length - 1]).toBe(SW_WRONG_LENGTH);
  });
});
