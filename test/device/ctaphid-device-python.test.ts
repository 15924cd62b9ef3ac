/**
 * Interop: python-fido2 0.9's own CTAPHID implementation (fido2.hid.CtapHidDevice, with a TCP connection
 * class in place of hidraw) drives the device engine through the loopback face. Proves INIT, PING framing of
 * every size class, WINK, LOCK, CBOR with KEEPALIVE status, and CANCEL as a real platform library does them.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import type { Authenticator, RequestContext, RequestKind } from '../../protocol/authenticator.ts';
import { STATUS_UPNEEDED } from '../../protocol/authenticator.ts';
import { CtaphidDevice } from '../../device/ctaphid-device.ts';
import { startLoopbackFace, type LoopbackFace } from '../../device/faces/loopback.ts';

const PYTHON = '/usr/bin/python3';

// getInfo answer: status 0 + {1: ["FIDO_2_0"], 3: h'00..0f'}
const GET_INFO = Uint8Array.from([0x00, 0xa2, 0x01, 0x81, 0x68, ...Buffer.from('FIDO_2_0'), 0x03, 0x50, ...Array.from({ length: 16 }, (_, i) => i)]);

class InteropAuthenticator implements Authenticator {
  readonly descriptor = { id: 'py', label: 'interop', transport: 'soft' as const, ctap1: false, wink: true };
  readonly seen: number[] = [];
  aborted = 0;
  winks = 0;
  request(_kind: RequestKind, payload: Uint8Array, ctx: RequestContext): Promise<Uint8Array> {
    this.seen.push(payload[0]);
    if (payload[0] === 0x04) {
      // getInfo, slowly, asking for presence: the host must see KEEPALIVE(UPNEEDED) first.
      ctx.onStatus(STATUS_UPNEEDED);
      return new Promise((resolve) => setTimeout(() => resolve(GET_INFO), 250));
    }
    return new Promise((_resolve, reject) => {
      ctx.signal.addEventListener('abort', () => {
        this.aborted++;
        reject(new Error('aborted'));
      });
    });
  }
  async wink(): Promise<void> {
    this.winks++;
  }
}

const SCRIPT = String.raw`
import socket, struct, sys, threading
from fido2.hid import CtapHidDevice, CTAPHID
from fido2.hid.base import HidDescriptor, CtapHidConnection
from fido2.ctap2 import Ctap2
from fido2.ctap import CtapError

class TcpConnection(CtapHidConnection):
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.s.settimeout(5)
    def write_packet(self, data):
        assert len(data) == 64
        self.s.sendall(data)
    def read_packet(self):
        buf = b""
        while len(buf) < 64:
            chunk = self.s.recv(64 - len(buf))
            if not chunk:
                raise Exception("closed")
            buf += chunk
        return buf
    def close(self):
        self.s.close()

port = int(sys.argv[1])
desc = HidDescriptor("tcp", 0x1209, 0x0001, 64, 64)
dev = CtapHidDevice(desc, TcpConnection(port))
print("version", dev.version, *dev.device_version, dev.capabilities)
for n in (0, 1, 57, 58, 116, 117, 7609):
    data = bytes((i * 7) & 0xff for i in range(n))
    assert dev.ping(data) == data, n
print("ping ok")
dev.wink()
dev.lock(1)
dev.lock(0)
print("wink lock ok")
statuses = []
ctap2 = Ctap2(dev)
print("versions", *ctap2.info.versions, ctap2.info.aaguid.hex())
resp = dev.call(CTAPHID.CBOR, b"\x04", on_keepalive=statuses.append)
print("getinfo", resp[0], resp[1:].hex())
print("keepalive", *[int(s) for s in statuses])
ev = threading.Event()
threading.Timer(0.2, ev.set).start()
resp = dev.call(CTAPHID.CBOR, b"\x02\xa0", event=ev)
print("cancel", resp.hex())
try:
    dev.call(0x40)
except CtapError as e:
    print("vendor", int(e.code))
print("done")
`;

let face: LoopbackFace | undefined;
let device: CtaphidDevice | undefined;
afterEach(async () => {
  await face?.close();
  device?.close();
});

describe('python-fido2 CtapHidDevice against the engine', () => {
  it('speaks CTAPHID with python-fido2 0.9 over the loopback face', async () => {
    expect(existsSync(PYTHON)).toBe(true);
    const auth = new InteropAuthenticator();
    device = new CtaphidDevice(auth, { version: { major: 1, minor: 2, build: 3 } });
    face = await startLoopbackFace(device, { host: '127.0.0.1', port: 0 });
    const out = await new Promise<string>((resolve, reject) => {
      execFile(PYTHON, ['-c', SCRIPT, String(face!.address.port)], { timeout: 15_000 }, (err, stdout, stderr) =>
        err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout),
      );
    });
    const lines = out.trim().split('\n');
    // Protocol 2, device 1.2.3, capabilities WINK|LOCK|CBOR|NMSG = 0x0f.
    expect(lines[0]).toBe('version 2 1 2 3 15');
    expect(lines).toContain('ping ok');
    expect(lines).toContain('wink lock ok');
    expect(lines).toContain('versions FIDO_2_0 000102030405060708090a0b0c0d0e0f');
    expect(lines).toContain(`getinfo 0 ${Buffer.from(GET_INFO.subarray(1)).toString('hex')}`);
    const ka = lines.find((l) => l.startsWith('keepalive'))!.split(' ').slice(1).map(Number);
    expect(ka.length).toBeGreaterThanOrEqual(1);
    expect(ka.every((s) => s === STATUS_UPNEEDED)).toBe(true);
    expect(lines).toContain('cancel 2d');
    expect(lines).toContain('vendor 1');
    expect(lines[lines.length - 1]).toBe('done');
    expect(auth.winks).toBe(1);
    expect(auth.aborted).toBe(1);
    expect(auth.seen.filter((c) => c === 0x04).length).toBeGreaterThanOrEqual(1);
  });
});
