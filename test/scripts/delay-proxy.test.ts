/**
 * scripts/delay-proxy.ts: refuses non-loopback addresses, preserves byte order (also while the delay changes
 * and across a half-close), applies at least the configured delay each way (lower bounds only: timing upper
 * bounds would be flaky on a loaded machine), and bounds its memory by pausing a source whose receiver is slow.
 * The CLI is run once as a real process.
 */
import { spawn } from 'node:child_process';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import {
  DelayProxyError,
  parseCliArgs,
  startDelayProxy,
  type DelayProxy,
} from '../../scripts/delay-proxy.ts';

const SCRIPT = fileURLToPath(new URL('../../scripts/delay-proxy.ts', import.meta.url));
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A TCP server on 127.0.0.1 with the given connection handler; closed after the test. */
async function server(onConn: (s: net.Socket) => void, opts: net.ServerOpts = {}): Promise<number> {
  const sockets = new Set<net.Socket>();
  const srv = net.createServer(opts, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    onConn(s);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        srv.close(() => r());
      }),
  );
  return (srv.address() as net.AddressInfo).port;
}

const echo = (s: net.Socket): void => {
  s.pipe(s);
};

async function proxy(targetPort: number, delayMs: number, maxQueuedBytes?: number): Promise<DelayProxy> {
  const p = await startDelayProxy({
    listen: { host: '127.0.0.1', port: 0 },
    target: { host: '127.0.0.1', port: targetPort },
    delayMs,
    maxQueuedBytes,
  });
  cleanups.push(() => p.close());
  return p;
}

async function connect(port: number, opts: Partial<net.NetConnectOpts> = {}): Promise<net.Socket> {
  const s = net.connect({ host: '127.0.0.1', port, ...opts } as net.NetConnectOpts);
  s.setNoDelay(true);
  await new Promise<void>((resolve, reject) => {
    s.once('connect', resolve);
    s.once('error', reject);
  });
  cleanups.push(() => {
    s.destroy();
  });
  return s;
}

/** Resolves with the first `n` bytes the socket receives. */
function receive(s: net.Socket, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    const onData = (b: Buffer): void => {
      chunks.push(b);
      got += b.length;
      if (got >= n) {
        s.off('data', onData);
        resolve(Buffer.concat(chunks).subarray(0, n));
      }
    };
    s.on('data', onData);
    s.once('error', reject);
  });
}

function pattern(n: number, seed = 0): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed + (i >> 8)) & 0xff;
  return b;
}

describe('delay proxy: loopback only', () => {
  it.each(['10.0.2.2', '0.0.0.0', '192.168.1.1', '::', 'example.com', '2001:db8::1'])('refuses to listen on %s', async (host) => {
    await expect(
      startDelayProxy({ listen: { host, port: 0 }, target: { host: '127.0.0.1', port: 1 }, delayMs: 0 }),
    ).rejects.toThrow(DelayProxyError);
  });

  it.each(['10.0.2.2', '8.8.8.8', 'example.com', '::ffff:10.0.0.1'])('refuses to forward to %s', async (host) => {
    await expect(
      startDelayProxy({ listen: { host: '127.0.0.1', port: 0 }, target: { host, port: 80 }, delayMs: 0 }),
    ).rejects.toThrow(/not a loopback address/);
  });

  it('accepts 127.0.0.0/8, ::1 and localhost', async () => {
    const port = await server(echo);
    for (const host of ['127.0.0.1', '127.1.2.3', 'localhost']) {
      const p = await startDelayProxy({ listen: { host, port: 0 }, target: { host: '127.0.0.1', port }, delayMs: 0 });
      expect(p.address.host.startsWith('127.')).toBe(true);
      await p.close();
    }
  });

  it('refuses bad delays and ports', async () => {
    const base = { listen: { host: '127.0.0.1', port: 0 }, target: { host: '127.0.0.1', port: 9 } };
    await expect(startDelayProxy({ ...base, delayMs: -1 })).rejects.toThrow(/delay/);
    await expect(startDelayProxy({ ...base, delayMs: Number.NaN })).rejects.toThrow(/delay/);
    await expect(startDelayProxy({ ...base, target: { host: '127.0.0.1', port: 0 }, delayMs: 0 })).rejects.toThrow(/port/);
    const port = await server(echo);
    const p = await proxy(port, 0);
    expect(() => p.setDelay(-5)).toThrow(DelayProxyError);
    expect(p.delayMs).toBe(0);
  });
});

describe('delay proxy: order and delay', () => {
  it('delivers a 2 MiB stream in order through an echo server', async () => {
    const port = await server(echo);
    const p = await proxy(port, 3);
    const s = await connect(p.address.port);
    const data = pattern(2 * 1024 * 1024);
    const got = receive(s, data.length);
    for (let off = 0; off < data.length; off += 1000) s.write(data.subarray(off, off + 1000));
    expect((await got).equals(data)).toBe(true);
    expect(p.stats().forwardedBytes).toBe(2 * data.length);
  });

  it('keeps order while the delay drops from 40 ms to 0 mid-stream', async () => {
    const port = await server(echo);
    const p = await proxy(port, 40);
    const s = await connect(p.address.port);
    const messages = Array.from({ length: 200 }, (_, i) => Buffer.from(`<${String(i).padStart(4, '0')}>`));
    const total = messages.reduce((n, m) => n + m.length, 0);
    const got = receive(s, total);
    for (let i = 0; i < messages.length; i++) {
      if (i === 50) p.setDelay(0);
      if (i === 120) p.setDelay(15);
      s.write(messages[i]);
      if (i % 10 === 0) await new Promise((r) => setImmediate(r));
    }
    expect((await got).toString()).toBe(Buffer.concat(messages).toString());
  });

  it('adds at least the delay each way: one-way ≥ d, round trip ≥ 2d', async () => {
    const arrivals: number[] = [];
    const port = await server((s) => {
      s.on('data', (b) => {
        arrivals.push(performance.now());
        s.write(b);
      });
    });
    for (const d of [0, 5, 20]) {
      const p = await proxy(port, d);
      const s = await connect(p.address.port);
      for (let i = 0; i < 5; i++) {
        arrivals.length = 0;
        const sent = performance.now();
        const back = receive(s, 4);
        s.write('ping');
        await back;
        const rtt = performance.now() - sent;
        expect(arrivals[0] - sent).toBeGreaterThanOrEqual(d);
        expect(rtt).toBeGreaterThanOrEqual(2 * d);
      }
      s.destroy();
      await p.close();
    }
  });

  it('a delay change applies to data arriving afterwards', async () => {
    const port = await server(echo);
    const p = await proxy(port, 0);
    const s = await connect(p.address.port);
    p.setDelay(25);
    expect(p.delayMs).toBe(25);
    const sent = performance.now();
    const back = receive(s, 1);
    s.write('x');
    await back;
    expect(performance.now() - sent).toBeGreaterThanOrEqual(50);
  });

  it('forwards a half-close in order, after the delayed data, and the other direction keeps flowing', async () => {
    // The target reads until the client's FIN, then answers with everything it got, reversed, and closes.
    const port = await server(
      (s) => {
        const chunks: Buffer[] = [];
        s.on('data', (b) => chunks.push(b));
        s.on('end', () => {
          s.end(Buffer.from(Buffer.concat(chunks).toString().split('').reverse().join('')));
        });
      },
      { allowHalfOpen: true },
    );
    const p = await proxy(port, 10);
    const s = await connect(p.address.port, { allowHalfOpen: true });
    const answer = new Promise<string>((resolve) => {
      const chunks: Buffer[] = [];
      s.on('data', (b) => chunks.push(b));
      s.on('end', () => resolve(Buffer.concat(chunks).toString()));
    });
    s.write('abc');
    s.write('def');
    s.end();
    expect(await answer).toBe('fedcba');
  });

  it('closes the client when the target refuses the connection', async () => {
    const port = await server(echo);
    const p = await proxy(port, 0);
    const closedPort = await (async () => {
      const tmp = net.createServer();
      await new Promise<void>((r) => tmp.listen(0, '127.0.0.1', r));
      const n = (tmp.address() as net.AddressInfo).port;
      await new Promise<void>((r) => tmp.close(() => r()));
      return n;
    })();
    const dead = await proxy(closedPort, 0);
    const s = await connect(dead.address.port);
    await new Promise<void>((resolve) => s.once('close', () => resolve()));
    expect(dead.stats().connections).toBe(0);
    expect(p.stats().accepted).toBe(0);
  });
});

describe('delay proxy: bounded memory', () => {
  it('pauses the source when the receiver stops reading, never holds much more than the bound, then delivers everything in order', async () => {
    const MAX = 256 * 1024;
    let target: net.Socket | undefined;
    const received: Buffer[] = [];
    const port = await server((s) => {
      target = s;
      s.pause(); // a receiver that does not read
      s.on('data', (b) => received.push(b));
    });
    const p = await proxy(port, 1, MAX);
    const s = await connect(p.address.port);
    const data = pattern(16 * 1024 * 1024, 7);
    let offset = 0;
    // Write until the kernel and the proxy push back; a bounded proxy makes this stop well before 16 MiB.
    await new Promise<void>((resolve) => {
      const pump = (): void => {
        while (offset < data.length) {
          const ok = s.write(data.subarray(offset, offset + 65536));
          offset += 65536;
          if (!ok) {
            s.once('drain', pump);
            return;
          }
        }
      };
      pump();
      setTimeout(resolve, 600);
    });
    const stats = p.stats();
    expect(stats.pauses).toBeGreaterThanOrEqual(1);
    // One read chunk (≤ 64 KiB) may arrive before the pause takes effect.
    expect(stats.peakQueuedBytes).toBeLessThanOrEqual(MAX + 65536);
    // The writer is held back: it could not hand over all 16 MiB.
    expect(offset).toBeLessThan(data.length);
    // Now read: everything arrives, in order.
    target!.resume();
    await new Promise<void>((resolve) => {
      const check = (): void => {
        const got = received.reduce((n, b) => n + b.length, 0);
        if (got >= data.length) resolve();
      };
      target!.on('data', check);
      s.on('drain', () => undefined);
    });
    const all = Buffer.concat(received);
    expect(all.length).toBe(data.length);
    expect(all.equals(data)).toBe(true);
    expect(p.stats().peakQueuedBytes).toBeLessThanOrEqual(MAX + 65536);
  }, 30_000);
});

describe('delay proxy: CLI', () => {
  it('parses its arguments and rejects bad ones', () => {
    expect(parseCliArgs(['--listen', '127.0.0.1:0', '--target', '127.0.0.1:9', '--delay-ms', '25'])).toEqual({
      listen: { host: '127.0.0.1', port: 0 },
      target: { host: '127.0.0.1', port: 9 },
      delayMs: 25,
      maxQueuedBytes: undefined,
    });
    expect(parseCliArgs(['--listen=[::1]:5', '--target=localhost:9', '--delay-ms=0.5', '--max-queued-bytes=4096'])).toEqual({
      listen: { host: '::1', port: 5 },
      target: { host: 'localhost', port: 9 },
      delayMs: 0.5,
      maxQueuedBytes: 4096,
    });
    expect(() => parseCliArgs(['--listen', '127.0.0.1:0'])).toThrow(/usage/);
    expect(() => parseCliArgs(['--listen', '127.0.0.1', '--target', '127.0.0.1:9', '--delay-ms', '1'])).toThrow(/HOST:PORT/);
    expect(() => parseCliArgs(['--listen', '127.0.0.1:0', '--target', '127.0.0.1:9', '--delay-ms', 'x'])).toThrow(/number/);
    expect(() => parseCliArgs(['--bogus'])).toThrow(/unknown/);
  });

  it('runs as a process: refuses a non-loopback listen address, forwards with the delay, stops on SIGTERM', async () => {
    const refused = spawn(process.execPath, ['--import', 'tsx', SCRIPT, '--listen', '0.0.0.0:0', '--target', '127.0.0.1:9', '--delay-ms', '1'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    refused.stderr.on('data', (b: Buffer) => (err += b.toString()));
    expect(await new Promise((r) => refused.on('close', r))).toBe(2);
    expect(err).toMatch(/not a loopback address/);

    const port = await server(echo);
    const child = spawn(process.execPath, ['--import', 'tsx', SCRIPT, '--listen', '127.0.0.1:0', '--target', `127.0.0.1:${port}`, '--delay-ms', '10'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    cleanups.push(() => {
      child.kill('SIGKILL');
    });
    const line = await new Promise<string>((resolve) => {
      let out = '';
      child.stdout.on('data', (b: Buffer) => {
        out += b.toString();
        if (out.includes('\n')) resolve(out);
      });
    });
    const m = /listening on 127\.0\.0\.1:(\d+), \+10 ms each way \(\+20 ms RTT\)/.exec(line);
    expect(m).not.toBeNull();
    const s = await connect(Number(m![1]));
    const sent = performance.now();
    const back = receive(s, 5);
    s.write('hello');
    expect((await back).toString()).toBe('hello');
    expect(performance.now() - sent).toBeGreaterThanOrEqual(20);
    s.destroy();
    child.kill('SIGTERM');
    expect(await new Promise((r) => child.on('close', r))).toBe(0);
  }, 30_000);
});
