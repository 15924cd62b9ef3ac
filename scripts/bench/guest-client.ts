/**
 * The benchmark's client inside the qemu guest: a TypeScript CTAPHID client (agent/authenticators/hardware/
 * ctaphid-client.ts) over /dev/hidrawN (scripts/bench/hidraw-port.ts), driven by the host's control channel
 * (scripts/bench/plan.ts). For its line it waits for the FIDO hidraw node, then for each planned RTT asks the host
 * to set it, runs warm-up + timed ceremonies (scripts/bench/ceremony.ts) and CTAPHID_PINGs, and posts the samples.
 *
 *   node --import tsx scripts/bench/guest-client.ts --line usbip --control 10.0.2.2:PORT
 *
 * Exits 0 when every point was measured without errors, 1 otherwise, 2 on bad usage.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { CID_BROADCAST, CTAPHID_INIT, fragment, INIT_NONCE_SIZE } from '../../protocol/ctaphid.ts';
import { CtaphidClient } from '../../agent/authenticators/hardware/ctaphid-client.ts';
import { runCeremony, type CeremonyTiming } from './ceremony.ts';
import { findFidoHidraw, HidrawPort } from './hidraw-port.ts';
import { isLineName, type LineName, type LinePlan, type PointResult } from './plan.ts';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const lineArg = arg('--line');
const control = arg('--control');
if (!isLineName(lineArg) || control === undefined || !/^[\d.]+:\d+$/.test(control)) {
  process.stderr.write('usage: guest-client --line direct|keytunnel|usbip --control HOST:PORT\n');
  process.exit(2);
}
const line: LineName = lineArg;
const base = `http://${control}`;

async function call<T>(path: string, body?: unknown): Promise<T> {
  const res = await fetch(base + path, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`control ${path}: HTTP ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

function log(msg: string): void {
  process.stdout.write(`[guest-client ${line}] ${msg}\n`);
}

async function waitForDevice(timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const path = findFidoHidraw();
    if (path !== undefined) return path;
    if (Date.now() > deadline) throw new Error(`no FIDO hidraw device within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function main(): Promise<number> {
  const plan = await call<LinePlan>(`/plan?line=${line}`);
  const path = await waitForDevice(240_000);
  const tOpen = performance.now();
  const port = HidrawPort.open(path);
  const client = await CtaphidClient.open(port, { timeoutMs: 60_000, initTimeoutMs: 10_000 });
  log(`${path} open + INIT in ${(performance.now() - tOpen).toFixed(1)} ms (cid 0x${client.cid?.toString(16)})`);
  let failed = false;

  for (const rttMs of plan.rtts) {
    await call('/point', { line, rttMs });
    const samples: CeremonyTiming[] = [];
    const errors: string[] = [];
    for (let i = 0; i < plan.warmup + plan.reps; i++) {
      try {
        const t = await runCeremony(client);
        if (i >= plan.warmup) samples.push(t);
      } catch (err) {
        errors.push(`${(err as Error).name}: ${(err as Error).message}`);
        if (errors.length >= 5) break;
      }
    }
    if (errors.length > 0) failed = true;
    const result: PointResult = { kind: 'ceremony', line, rttMs, samples, errors };
    await call('/result', result);
  }

  for (const rttMs of plan.ping.rtts) {
    await call('/point', { line, rttMs });
    for (const size of plan.ping.sizes) {
      const data = new Uint8Array(size).map((_, i) => (i * 7 + 3) & 0xff);
      const samplesMs: number[] = [];
      const errors: string[] = [];
      for (let i = 0; i < plan.ping.reps + 1; i++) {
        try {
          const t0 = performance.now();
          const echo = await client.ping(data);
          const ms = performance.now() - t0;
          if (echo.length !== size || echo.some((b, j) => b !== data[j])) throw new Error('PING echo differs');
          if (i > 0) samplesMs.push(ms); // the first one is a warm-up
        } catch (err) {
          errors.push(`${(err as Error).name}: ${(err as Error).message}`);
        }
      }
      if (errors.length > 0) failed = true;
      const result: PointResult = { kind: 'ping', line, rttMs, size, samplesMs, errors };
      await call('/result', result);
    }
  }
  if (port.dropped > 0) log(`WARNING: ${port.dropped} input reports dropped by the port queue`);
  // A broadcast CTAPHID_INIT (CTAP 2.1 PS 2021-06-15 §11.2.9.1.3) makes the device answer, which frees the read blocked in the thread pool.
  const wake = fragment(CID_BROADCAST, CTAPHID_INIT, new Uint8Array(randomBytes(INIT_NONCE_SIZE)))[0];
  if (!(await port.shutdown(wake))) {
    log(failed ? 'done with errors (hidraw read still blocked: exiting hard)' : 'done (hidraw read still blocked: exiting hard)');
    process.kill(process.pid, 'SIGKILL');
  }
  log(failed ? 'done with errors' : 'done');
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    log(`FAILED: ${(err as Error).stack ?? String(err)}`);
    process.exit(1);
  },
);
