/**
 * End to end with the real soft authenticator as "the key": HidAuthenticator -> CTAPHID client ->
 * LoopbackTransport -> loopback face -> CtaphidDevice -> SoftAuthenticator (in-memory store, a presence the
 * test controls). Proves getInfo at open, makeCredential + getAssertion, keepalive UPNEEDED pass-through,
 * cancel while waiting for presence, and a CTAP1 (U2F) message.
 */
import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { type KeepaliveStatus, type RequestContext, STATUS_UPNEEDED } from '../../../../protocol/authenticator.ts';
import { type CborMap, type CborValue, decode, encode, isCborMap } from '../../../../protocol/cbor.ts';
import { CTAP2_GET_ASSERTION, CTAP2_GET_INFO, CTAP2_MAKE_CREDENTIAL, CTAP2_OK } from '../../../../protocol/ctap2.ts';
import { CtaphidDevice } from '../../../../device/ctaphid-device.ts';
import { type LoopbackFace, startLoopbackFace } from '../../../../device/faces/loopback.ts';
import { MemoryStateStore } from '../../../../agent/authenticators/soft/memory-store.ts';
import { FakePresence } from '../../../../agent/presence/fake.ts';
import { KEYTUNNEL_AAGUID, SoftAuthenticator } from '../../../../agent/authenticators/soft/soft-authenticator.ts';
import { loopbackSessionOpener } from '../../../../agent/authenticators/hardware/ctaphid-session.ts';
import type { FidoDeviceInfo } from '../../../../agent/authenticators/hardware/device-info.ts';
import { HidAuthenticator } from '../../../../agent/authenticators/hardware/hid-authenticator.ts';

const info: FidoDeviceInfo = { path: 'loopback', vendorId: 0x1209, productId: 0x0001, product: 'keytunnel soft authenticator', manufacturer: '', serialNumber: '' };

let face: LoopbackFace | undefined;
let device: CtaphidDevice | undefined;
let key: HidAuthenticator | undefined;
afterEach(async () => {
  await key?.close();
  await face?.close();
  device?.close();
  key = face = device = undefined;
});

async function setup(): Promise<{ key: HidAuthenticator; presence: FakePresence }> {
  const presence = new FakePresence('hang'); // the test answers by hand: release() is the touch
  const soft = await SoftAuthenticator.open({ store: new MemoryStateStore(), presence });
  device = new CtaphidDevice(soft, { keepaliveIntervalMs: 20 });
  face = await startLoopbackFace(device, { host: '127.0.0.1' });
  key = await HidAuthenticator.open(info, { openSession: loopbackSessionOpener(face.address) });
  return { key, presence };
}

function ctx(signal: AbortSignal = new AbortController().signal) {
  const statuses: KeepaliveStatus[] = [];
  const c: RequestContext = { signal, onStatus: (s) => statuses.push(s) };
  return { c, statuses };
}

function cborMap(entries: Array<[CborValue, CborValue]>): CborMap {
  return new Map(entries);
}

function sha256(data: string | Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(data).digest());
}

function makeCredentialRequest(rpId: string): Uint8Array {
  const params = cborMap([
    [1, sha256('client data')],
    [2, cborMap([['id', rpId], ['name', 'Example']])],
    [3, cborMap([['id', Uint8Array.of(1, 2, 3, 4)], ['name', 'alice'], ['displayName', 'Alice']])],
    [4, [cborMap([['alg', -7], ['type', 'public-key']])]],
  ]);
  return Uint8Array.of(CTAP2_MAKE_CREDENTIAL, ...encode(params));
}

function decodeAnswer(answer: Uint8Array): CborMap {
  expect(answer[0]).toBe(CTAP2_OK);
  const m = decode(answer.subarray(1));
  if (!isCborMap(m)) throw new Error('answer is not a CBOR map');
  return m;
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > ms) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('HidAuthenticator in front of the soft authenticator (loopback face + device engine)', () => {
  it('has the soft authenticator\'s getInfo at open', async () => {
    const { key } = await setup();
    const gi = decodeAnswer(key.getInfo);
    expect(gi.get(1)).toEqual(expect.arrayContaining(['FIDO_2_0']));
    expect([...(gi.get(3) as Uint8Array)]).toEqual([...KEYTUNNEL_AAGUID]);
    expect(key.descriptor).toMatchObject({ transport: 'hid', ctap1: true, wink: false, label: 'keytunnel soft authenticator' });
    // Asking again through request() gives the same bytes.
    expect([...(await key.request('cbor', Uint8Array.of(CTAP2_GET_INFO), ctx().c))]).toEqual([...key.getInfo]);
  });

  it('makeCredential passes UPNEEDED through while waiting for a touch; getAssertion then finds the credential', async () => {
    const { key, presence } = await setup();
    const { c, statuses } = ctx();
    const pending = key.request('cbor', makeCredentialRequest('example.com'), c);
    await until(() => presence.pending > 0);
    await until(() => statuses.includes(STATUS_UPNEEDED));
    expect(presence.requests[0]).toMatchObject({ action: 'makeCredential', rpId: 'example.com' });
    presence.release('approved');
    const made = decodeAnswer(await pending);
    expect(made.get(1)).toBe('packed');
    const authData = made.get(2) as Uint8Array;
    expect([...authData.subarray(0, 32)]).toEqual([...sha256('example.com')]);
    const credIdLength = (authData[53] << 8) | authData[54];
    const credentialId = authData.slice(55, 55 + credIdLength);

    const assertion = key.request(
      'cbor',
      Uint8Array.of(
        CTAP2_GET_ASSERTION,
        ...encode(cborMap([
          [1, 'example.com'],
          [2, sha256('client data 2')],
          [3, [cborMap([['id', credentialId], ['type', 'public-key']])]],
        ])),
      ),
      ctx().c,
    );
    await until(() => presence.pending > 0);
    presence.release('approved');
    const got = decodeAnswer(await assertion);
    expect([...((got.get(1) as CborMap).get('id') as Uint8Array)]).toEqual([...credentialId]);
    expect((got.get(3) as Uint8Array).length).toBeGreaterThan(60);
  });

  it('cancel while the soft authenticator waits for presence reaches it, and the key works after', async () => {
    const { key, presence } = await setup();
    const ac = new AbortController();
    const pending = key.request('cbor', makeCredentialRequest('example.org'), ctx(ac.signal).c);
    await until(() => presence.pending > 0);
    ac.abort(new Error('browser cancelled'));
    await expect(pending).rejects.toThrow('browser cancelled');
    await until(() => presence.outcomes.filter((o) => o === 'cancelled').length === 1);
    const again = await key.request('cbor', Uint8Array.of(CTAP2_GET_INFO), ctx().c);
    expect(again[0]).toBe(CTAP2_OK);
  });

  it('a CTAP1 VERSION message goes through as CTAPHID_MSG', async () => {
    const { key } = await setup();
    const answer = await key.request('msg', Uint8Array.of(0x00, 0x03, 0x00, 0x00, 0x00), ctx().c);
    expect(Buffer.from(answer.subarray(0, -2)).toString()).toBe('U2F_V2');
    expect([...answer.subarray(-2)]).toEqual([0x90, 0x00]);
  });
});
