/**
 * The container's HEALTHCHECK: finds the running `keytunnel soft --hid loopback:HOST:PORT` (from /proc/<pid>/
 * cmdline, so any port works), connects to that face and sends CTAPHID_INIT on the broadcast channel (CTAP 2.1 PS
 * 2021-06-15 §11.2.9.1.3); healthy when an INIT response echoing our nonce arrives within 2 s. Plain JavaScript, no imports
 * beyond node: it runs next to the bundle as is.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';

const REPORT = 64;
const CTAPHID_INIT = 0x86;

function hidSpec() {
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    let args;
    try {
      args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    const i = args.indexOf('--hid');
    const spec = i >= 0 ? args[i + 1] : args.find((a) => a.startsWith('--hid='))?.slice(6);
    if (spec?.startsWith('loopback:')) return spec.slice('loopback:'.length);
  }
  return undefined;
}

const spec = hidSpec();
const m = spec === undefined ? null : /^\[?([^\]]*?)\]?:(\d+)$/.exec(spec);
if (m === null) {
  console.error('healthcheck: no keytunnel process with --hid loopback:HOST:PORT');
  process.exit(1);
}
const host = m[1] === '0.0.0.0' ? '127.0.0.1' : m[1] === '::' ? '::1' : m[1];
const port = Number(m[2]);
const nonce = randomBytes(8);
const request = Buffer.alloc(REPORT);
request.writeUInt32BE(0xffffffff, 0);
request[4] = CTAPHID_INIT;
request.writeUInt16BE(nonce.length, 5);
nonce.copy(request, 7);

const socket = net.connect({ host, port });
const timer = setTimeout(() => {
  console.error(`healthcheck: no CTAPHID_INIT answer from ${host}:${port}`);
  process.exit(1);
}, 2000);
let buffer = Buffer.alloc(0);
socket.on('connect', () => socket.write(request));
socket.on('data', (chunk) => {
  buffer = Buffer.concat([buffer, chunk]);
  while (buffer.length >= REPORT) {
    const report = buffer.subarray(0, REPORT);
    buffer = buffer.subarray(REPORT);
    if (report.readUInt32BE(0) === 0xffffffff && report[4] === CTAPHID_INIT && report.subarray(7, 15).equals(nonce)) {
      clearTimeout(timer);
      socket.destroy();
      process.exit(0);
    }
  }
});
socket.on('error', (err) => {
  console.error(`healthcheck: ${host}:${port}: ${err.message}`);
  process.exit(1);
});
