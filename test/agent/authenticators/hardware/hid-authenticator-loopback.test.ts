/**
 * End to end over the real CTAPHID stack: HidAuthenticator -> CTAPHID client -> LoopbackTransport (TCP on
 * 127.0.0.1) -> loopback face -> CtaphidDevice engine -> a scripted authenticator. Proves getInfo at open,
 * CBOR and MSG round trips, keepalive pass-through, cancel, FIFO and removal through real framing.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  type Authenticator,
  type AuthenticatorDescriptor,
  type KeepaliveStatus,
  type RequestContext,
  type RequestKind,
  STATUS_UPNEEDED,
} from '../../../../protocol/authenticator.ts';
import { CTAP2_GET_INFO, CTAP2_MAKE_CREDENTIAL } from '../../../../protocol/ctap2.ts';
import { CtaphidDevice } from '../../../../device/ctaphid-device.ts';
import { type LoopbackFace, startLoopbackFace } from '../../../../device/faces/loopback.ts';
import type { FidoDeviceInfo } from '../../../../agent/authenticators/hardware/device-info.ts';
import { HidDeviceRemovedError } from '../../../../agent/authenticators/hardware/errors.ts';
import { HidAuthenticator } from '../../../../agent/authenticators/hardware/hid-authenticator.ts';
import { loopbackSessionOpener } from '../../../../agent/authenticators/hardware/ctaphid-session.ts';

const GET_INFO = Uint8Array.of(0x00, 0xa1, 0x01, 0x82, 0x66, ...Buffer.from('U2F_V2'), 0x68, ...Buffer.from('FIDO_2_0'));

interface Seen {
  kind: RequestKind;
  payload: Uint8Array;
  signal: AbortSignal;
}

/** An authenticator whose makeCredential waits for the test to "touch" it, reporting UPNEEDED meanwhile. */
class ScriptedAuthenticator implements Authenticator {
  readonly descriptor: AuthenticatorDescriptor = { id: 'scripted', label: 'scripted', transport: 'soft', ctap1: true, wink: true };
  seen: Seen[] = [];
  winks = 0;
  private touch: (() => void) | null = null;
  async request(kind: RequestKind, payload: Uint8Array, ctx: RequestContext): Promise<Uint8Array> {
    this.seen.push({ kind, payload: payload.slice(), signal: ctx.signal });
    if (kind === 'msg') return Uint8Array.of(0x01, 0x02, 0x90, 0x00);
    if (payload[0] === CTAP2_GET_INFO) return GET_INFO;
    if (payload[0] === CTAP2_MAKE_CREDENTIAL) {
      ctx.onStatus(STATUS_UPNEEDED);
      await new Promise<void>((resolve, reject) => {
        this.touch = resolve;
        ctx.signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true });
      });
      // A large answer (several continuation packets) to exercise reassembly.
      const answer = new Uint8Array(1000).map((_, i) => i & 0xff);
      answer[0] = 0x00;
      return answer;
    }
    return Uint8Array.of(0x01); // CTAP1_ERR_INVALID_COMMAND
  }
  async wink(): Promise<void> {
    this.winks++;
  }
  touched(): boolean {
    const t = this.touch;
    this.touch = null;
    t?.();
    return t !== null;
  }
  get waitingForTouch(): boolean {
    return this.touch !== null;
  }
}

const info: FidoDeviceInfo = { path: 'loopback', vendorId: 0x1209, productId: 0x0001, product: 'Loopback key', manufacturer: '', serialNumber: 'L1' };

let face: LoopbackFace | undefined;
let device: CtaphidDevice | undefined;
const opened: HidAuthenticator[] = [];

afterEach(async () => {
  for (const a of opened.splice(0)) await a.close();
  await face?.close();
  device?.close();
  face = undefined;
  device = undefined;
});

async function setup(auth: Authenticator) {
  device = new CtaphidDevice(auth, { keepaliveIntervalMs: 20 });
  face = await startLoopbackFace(device, { host: '127.0.0.1' });
  const key = await HidAuthenticator.open(info, { openSession: loopbackSessionOpener(face.address) });
  opened.push(key);
  return key;
}

function ctx(signal: AbortSignal = new AbortController().signal) {
  const statuses: KeepaliveStatus[] = [];
  return { c: { signal, onStatus: (s: KeepaliveStatus) => statuses.push(s) } as RequestContext, statuses };
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > ms) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('HidAuthenticator over the loopback face and the CTAPHID device engine', () => {
  it('fetches getInfo at open and describes the key from the INIT capabilities', async () => {
    const auth = new ScriptedAuthenticator();
    const key = await setup(auth);
    expect([...key.getInfo]).toEqual([...GET_INFO]);
    expect(key.descriptor).toMatchObject({ id: 'hid:1209:0001:sn:L1', label: 'Loopback key (serial L1)', transport: 'hid', ctap1: true, wink: true });
    expect(auth.seen.map((s) => s.payload[0])).toEqual([CTAP2_GET_INFO]);
  });

  it('makeCredential: keepalive UPNEEDED reaches ctx.onStatus, the multi-packet answer arrives intact', async () => {
    const auth = new ScriptedAuthenticator();
    const key = await setup(auth);
    const { c, statuses } = ctx();
    const p = key.request('cbor', Uint8Array.of(CTAP2_MAKE_CREDENTIAL, 0xa0), c);
    await until(() => statuses.includes(STATUS_UPNEEDED));
    expect(auth.touched()).toBe(true);
    const answer = await p;
    expect(answer.length).toBe(1000);
    expect(answer[0]).toBe(0x00);
    expect(answer[999]).toBe(999 & 0xff);
    expect([...auth.seen[1].payload]).toEqual([CTAP2_MAKE_CREDENTIAL, 0xa0]);
  });

  it('a CTAP1 message goes as CTAPHID_MSG', async () => {
    const auth = new ScriptedAuthenticator();
    const key = await setup(auth);
    const apdu = Uint8Array.of(0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00);
    expect([...(await key.request('msg', apdu, ctx().c))]).toEqual([0x01, 0x02, 0x90, 0x00]);
    expect(auth.seen[1].kind).toBe('msg');
    expect([...auth.seen[1].payload]).toEqual([...apdu]);
  });

  it('cancel: aborting sends CTAPHID_CANCEL, the authenticator behind the engine is aborted, the key is usable after', async () => {
    const auth = new ScriptedAuthenticator();
    const key = await setup(auth);
    const ac = new AbortController();
    const p = key.request('cbor', Uint8Array.of(CTAP2_MAKE_CREDENTIAL, 0xa0), ctx(ac.signal).c);
    await until(() => auth.waitingForTouch);
    ac.abort(new Error('user closed the dialog'));
    await expect(p).rejects.toThrow('user closed the dialog');
    await until(() => auth.seen[1].signal.aborted);
    // The next request goes through once the key has answered the cancelled one.
    expect([...(await key.request('cbor', Uint8Array.of(CTAP2_GET_INFO), ctx().c))]).toEqual([...GET_INFO]);
  });

  it('two callers are served one after the other', async () => {
    const auth = new ScriptedAuthenticator();
    const key = await setup(auth);
    const first = key.request('cbor', Uint8Array.of(CTAP2_MAKE_CREDENTIAL, 0xa0), ctx().c);
    const second = key.request('cbor', Uint8Array.of(CTAP2_GET_INFO), ctx().c);
    await until(() => auth.waitingForTouch);
    await new Promise((r) => setTimeout(r, 50));
    expect(auth.seen).toHaveLength(2); // getInfo at open + makeCredential; the second caller waits
    auth.touched();
    expect((await first).length).toBe(1000);
    expect([...(await second)]).toEqual([...GET_INFO]);
    expect(auth.seen.map((s) => s.payload[0])).toEqual([CTAP2_GET_INFO, CTAP2_MAKE_CREDENTIAL, CTAP2_GET_INFO]);
  });

  it('wink goes through as CTAPHID_WINK (answered by the engine)', async () => {
    const auth = new ScriptedAuthenticator();
    const key = await setup(auth);
    await key.wink();
  });

  it('removal while a request waits for a touch fails it and the queued one at once', async () => {
    const auth = new ScriptedAuthenticator();
    const key = await setup(auth);
    const first = key.request('cbor', Uint8Array.of(CTAP2_MAKE_CREDENTIAL, 0xa0), ctx().c);
    const second = key.request('cbor', Uint8Array.of(CTAP2_GET_INFO), ctx().c);
    await until(() => auth.waitingForTouch);
    key.markRemoved();
    await expect(first).rejects.toBeInstanceOf(HidDeviceRemovedError);
    await expect(second).rejects.toBeInstanceOf(HidDeviceRemovedError);
    expect(key.gone).toBe(true);
  });

  it('a second program on the same key gets ERR_CHANNEL_BUSY from the device and is retried until it is free', async () => {
    const auth = new ScriptedAuthenticator();
    const key = await setup(auth);
    // Another "program": a second client with its own channel on the same device.
    const other = await HidAuthenticator.open(info, { openSession: loopbackSessionOpener(face!.address) });
    opened.push(other);
    const first = key.request('cbor', Uint8Array.of(CTAP2_MAKE_CREDENTIAL, 0xa0), ctx().c);
    await until(() => auth.waitingForTouch);
    const second = other.request('cbor', Uint8Array.of(CTAP2_GET_INFO), ctx().c);
    await new Promise((r) => setTimeout(r, 250)); // a couple of BUSY answers and retries
    auth.touched();
    expect((await first).length).toBe(1000);
    expect([...(await second)]).toEqual([...GET_INFO]);
  });
});
