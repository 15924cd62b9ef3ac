/**
 * Relay latency benchmark: how long a FIDO2 ceremony takes from inside a VM as the VM ⇄ host round-trip time
 * grows, for three ways of reaching an authenticator (one qemu boot measures all three):
 *
 *   1. direct     `keytunnel soft --hid uhid` in the guest (no network: the floor);
 *   2. keytunnel  `keytunnel gateway --hid uhid` in the guest ⇄ delay proxy ⇄ `keytunnel agent --soft` on the host;
 *   3. USB/IP     `keytunnel soft --hid usbip:127.0.0.1:Q` on the host ⇄ delay proxy ⇄ `usbip attach` in the guest.
 *
 * At each added RTT (default 0, 10, 25, 50, 100 ms) the guest client (scripts/bench/guest-client.ts) runs warm-up +
 * N timed ceremonies (INIT, getInfo, makeCredential, getAssertion) over /dev/hidraw, plus 1024-byte PINGs at 0/10/50 ms
 * to reproduce the measured USB/IP facts. The host sets each RTT on the delay proxy when the guest asks (a JSON
 * control channel on 127.0.0.1, reached from the guest as 10.0.2.2, outside the delayed path).
 *
 * Output: the tables and targets on stdout; docs/bench/relay.md, relay.svg and relay.json.
 *
 *   npx tsx scripts/bench-relay.ts [--reps 20] [--rtts 0,10,25,50,100] [--lines direct,keytunnel,usbip] [--out docs/bench]
 *   npx tsx scripts/bench-relay.ts --render docs/bench/relay.json     (re-render the docs from saved samples)
 *
 * Needs the qemu guest of scripts/vm/ (scripts/provision.sh installs qemu, usbip; scripts/vm/setup.sh fetches the kernel).
 * Takes about 5–10 minutes. Not part of `npm test`.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { CtaphidClient } from '../agent/authenticators/hardware/ctaphid-client.ts';
import { LoopbackTransport } from '../agent/authenticators/hardware/loopback-transport.ts';
import { loadOrCreateIdentity } from '../tunnel/identity.ts';
import { runCeremony, type CeremonyTiming } from './bench/ceremony.ts';
import { startDelayProxy, type DelayProxy } from './delay-proxy.ts';
import { ensureGuest, newBenchShare, REPO_ROOT, runGuestScript } from './bench/guest-run.ts';
import { isLineName, LINES, type LineName, type LinePlan, type PointRequest, type PointResult } from './bench/plan.ts';
import { freePort, spawnKeytunnel, waitForPort, type KeytunnelChild } from './bench/processes.ts';
import { renderChart, renderMarkdown, renderTables, type RelayRun } from './bench/relay-report.ts';
import { fmtMs, median } from './bench/stats.ts';

const PASSPHRASE = 'keytunnel bench passphrase (not a secret)';
const PING_RTTS = [0, 10, 50];
/** Ceremonies per path in the host-only overhead comparison (each takes a few ms). */
const HOST_CEREMONIES = 200;

interface Args {
  reps: number;
  warmup: number;
  pingReps: number;
  rtts: number[];
  lines: LineName[];
  out: string;
  render?: string;
}

function parseArgs(argv: readonly string[]): Args {
  const a: Args = { reps: 20, warmup: 2, pingReps: 3, rtts: [0, 10, 25, 50, 100], lines: [...LINES], out: join(REPO_ROOT, 'docs', 'bench') };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i + 1];
    const num = (): number => {
      if (v === undefined || !/^\d+$/.test(v)) throw new Error(`${argv[i]} needs a non-negative integer`);
      i++;
      return Number(v);
    };
    switch (argv[i]) {
      case '--reps': a.reps = Math.max(1, num()); break;
      case '--warmup': a.warmup = num(); break;
      case '--ping-reps': a.pingReps = num(); break;
      case '--rtts':
        if (v === undefined || !/^\d+(,\d+)*$/.test(v)) throw new Error('--rtts needs a list like 0,10,50');
        a.rtts = v.split(',').map(Number);
        i++;
        break;
      case '--lines':
        if (v === undefined || !v.split(',').every(isLineName)) throw new Error(`--lines takes a subset of ${LINES.join(',')}`);
        a.lines = v.split(',') as LineName[];
        i++;
        break;
      case '--out': if (v === undefined) throw new Error('--out needs a directory'); a.out = resolve(v); i++; break;
      case '--render': if (v === undefined) throw new Error('--render needs relay.json'); a.render = resolve(v); i++; break;
      default: throw new Error(`unknown argument ${argv[i]}`);
    }
  }
  return a;
}

function sh(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'unknown';
  }
}

function machine(): Record<string, string> {
  const cpu = os.cpus()[0]?.model ?? 'unknown';
  let guestKernel = 'unknown';
  try {
    guestKernel = readFileSync(join(os.homedir(), '.cache', 'keytunnel', 'vm', 'kernel-version'), 'utf8').trim();
  } catch { /* not set up */ }
  return {
    host: `${cpu}, ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Linux ${os.release()}`,
    node: process.version,
    qemu: sh('qemu-system-x86_64', ['--version']).split('\n')[0],
    guest: `Debian linux-image ${guestKernel}, qemu TCG (no KVM), 2 vCPUs, 1 GiB`,
  };
}

function planFor(line: LineName, a: Args): LinePlan {
  const ping = { sizes: [1024], reps: a.pingReps };
  if (line === 'direct') return { rtts: [0], reps: a.reps, warmup: a.warmup, ping: { ...ping, rtts: [0] } };
  return { rtts: a.rtts, reps: a.reps, warmup: a.warmup, ping: { ...ping, rtts: PING_RTTS } };
}

function guestScript(a: Args, control: number, ports: { keytunnel: number; usbip: number }, agentFp: string): string {
  const client = (line: LineName): string =>
    `timeout 900 node --import "$TSX" "$R/scripts/bench/guest-client.ts" --line ${line} --control 10.0.2.2:${control} || { echo "guest-client ${line} failed"; rc=1; }`;
  // Wait until no hidraw node is left (the previous line's device is gone) before starting the next line.
  const gone = `i=0; while ls /dev/hidraw* >/dev/null 2>&1 && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done`;
  const parts: string[] = [
    'R="$KEYTUNNEL_REPO"; TSX="$R/node_modules/tsx/dist/loader.mjs"; KT="$R/bin/keytunnel.js"; rc=0',
    `export KEYTUNNEL_PASSPHRASE='${PASSPHRASE}'`,
    'echo "guest: $(nproc) vCPUs, node $(node --version)"',
  ];
  if (a.lines.includes('direct')) {
    parts.push(
      'node "$KT" soft --hid uhid --approve always --state-dir /tmp/soft-direct --log-level warn > soft-direct.log 2>&1 & P=$!',
      client('direct'),
      'kill -TERM $P; wait $P; echo "soft exited $?"',
      gone,
    );
  }
  if (a.lines.includes('keytunnel')) {
    parts.push(
      `node "$KT" gateway --hid uhid --connect 10.0.2.2:${ports.keytunnel} --trust ${agentFp} --state-dir "$PWD/gw-state" --name bench-vm --log-level warn > gateway.log 2>&1 & G=$!`,
      client('keytunnel'),
      'kill -TERM $G; wait $G; echo "gateway exited $?"',
      gone,
    );
  }
  if (a.lines.includes('usbip')) {
    parts.push(
      `usbip --tcp-port ${ports.usbip} attach -r 10.0.2.2 -b 1-1 || { echo "usbip attach failed"; rc=1; }`,
      client('usbip'),
      'usbip port; usbip detach -p 0 || usbip detach -p 8 || true',
    );
  }
  parts.push('cat soft-direct.log gateway.log 2>/dev/null | tail -20', 'exit $rc');
  return parts.join('\n');
}

function progress(r: PointResult): string {
  if (r.kind === 'ceremony') {
    const totals = r.samples.map((s) => s.totalMs);
    return `${r.line.padEnd(9)} RTT ${String(r.rttMs).padStart(3)} ms: ceremony median ${totals.length ? fmtMs(median(totals)) : '—'} ms (${r.samples.length} ok, ${r.errors.length} errors)`;
  }
  return `${r.line.padEnd(9)} RTT ${String(r.rttMs).padStart(3)} ms: PING ${r.size} B median ${r.samplesMs.length ? fmtMs(median(r.samplesMs)) : '—'} ms (${r.errors.length} errors)`;
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolveBody, reject) => {
    let body = '';
    req.on('data', (b: Buffer) => {
      body += b.toString('utf8');
      if (body.length > 4 * 1024 * 1024) reject(new Error('control body too large'));
    });
    req.on('end', () => resolveBody(body));
    req.on('error', reject);
  });
}

/** The control channel: plan, per-point RTT, results. */
async function startControl(a: Args, proxies: Partial<Record<LineName, DelayProxy>>, results: PointResult[]): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const reply = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://control');
      if (req.method === 'GET' && url.pathname === '/plan') {
        const line = url.searchParams.get('line');
        if (!isLineName(line)) return reply(400, { error: 'bad line' });
        return reply(200, planFor(line, a));
      }
      if (req.method === 'POST' && url.pathname === '/point') {
        const p = JSON.parse(await readBody(req)) as PointRequest;
        if (!isLineName(p.line) || typeof p.rttMs !== 'number') return reply(400, { error: 'bad point' });
        proxies[p.line]?.setDelay(p.rttMs / 2);
        return reply(200, { ok: true });
      }
      if (req.method === 'POST' && url.pathname === '/result') {
        const r = JSON.parse(await readBody(req)) as PointResult;
        if (!isLineName(r.line)) return reply(400, { error: 'bad result' });
        results.push(r);
        process.stdout.write(`  ${progress(r)}\n`);
        return reply(200, { ok: true });
      }
      reply(404, { error: 'not found' });
    })().catch((err: unknown) => reply(500, { error: (err as Error).message }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/**
 * Ceremonies from this process over two loopback faces, alternating between them (A, B, A, B, …) so that background
 * load on the machine hits both paths alike: the host-only relay overhead comparison.
 */
async function hostCeremonies(portA: number, portB: number, count: number, warmup: number): Promise<[CeremonyTiming[], CeremonyTiming[]]> {
  const a = await CtaphidClient.open(await LoopbackTransport.connect('127.0.0.1', portA), { timeoutMs: 30_000 });
  const b = await CtaphidClient.open(await LoopbackTransport.connect('127.0.0.1', portB), { timeoutMs: 30_000 });
  const outA: CeremonyTiming[] = [];
  const outB: CeremonyTiming[] = [];
  try {
    for (let i = 0; i < warmup + count; i++) {
      const ta = await runCeremony(a);
      const tb = await runCeremony(b);
      if (i >= warmup) {
        outA.push(ta);
        outB.push(tb);
      }
    }
  } finally {
    await a.close();
    await b.close();
  }
  return [outA, outB];
}

function publish(run: RelayRun, out: string): void {
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'relay.json'), JSON.stringify(run, null, 1) + '\n');
  writeFileSync(join(out, 'relay.svg'), renderChart(run));
  writeFileSync(join(out, 'relay.md'), renderMarkdown(run));
}

async function main(): Promise<number> {
  const a = parseArgs(process.argv.slice(2));
  if (a.render !== undefined) {
    const run = JSON.parse(readFileSync(a.render, 'utf8')) as RelayRun;
    process.stdout.write(renderTables(run) + '\n');
    publish(run, a.out);
    return 0;
  }
  const started = Date.now();
  const startedAt = new Date(started).toISOString().replace(/\.\d+Z$/, 'Z');
  ensureGuest();
  const share = newBenchShare();
  const hostDir = mkdtempSync(join(os.tmpdir(), 'kt-bench-relay-'));
  const children: KeytunnelChild[] = [];
  const proxies: Partial<Record<LineName, DelayProxy>> = {};
  const results: PointResult[] = [];
  let control: { port: number; close(): Promise<void> } | undefined;
  try {
    // Identities first, so each side can be told the other's fingerprint (pinning both ways).
    const agentFp = (await loadOrCreateIdentity(join(hostDir, 'agent'))).identity.fingerprint;
    const gatewayFp = (await loadOrCreateIdentity(join(share, 'gw-state'))).identity.fingerprint;
    const hostGatewayFp = (await loadOrCreateIdentity(join(hostDir, 'gw-host'))).identity.fingerprint;
    const env = { KEYTUNNEL_PASSPHRASE: PASSPHRASE };
    const ports = { keytunnel: 0, usbip: 0 };
    const agentPort = await freePort();
    if (a.lines.includes('keytunnel')) {
      children.push(
        spawnKeytunnel(
          ['agent', '--soft', '--approve', 'always', '--listen', `127.0.0.1:${agentPort}`, '--trust', gatewayFp, '--trust', hostGatewayFp, '--state-dir', join(hostDir, 'agent'), '--log-level', 'warn'],
          { logPath: join(share, 'agent.log'), env },
        ),
      );
      await waitForPort(agentPort);
      proxies.keytunnel = await startDelayProxy({ listen: { host: '127.0.0.1', port: 0 }, target: { host: '127.0.0.1', port: agentPort }, delayMs: 0 });
      ports.keytunnel = proxies.keytunnel.address.port;
    }
    if (a.lines.includes('usbip')) {
      const usbipPort = await freePort();
      children.push(
        spawnKeytunnel(
          ['soft', '--hid', `usbip:127.0.0.1:${usbipPort}`, '--approve', 'always', '--state-dir', join(hostDir, 'soft-usbip'), '--log-level', 'warn'],
          { logPath: join(share, 'soft-usbip.log'), env },
        ),
      );
      await waitForPort(usbipPort);
      proxies.usbip = await startDelayProxy({ listen: { host: '127.0.0.1', port: 0 }, target: { host: '127.0.0.1', port: usbipPort }, delayMs: 0 });
      ports.usbip = proxies.usbip.address.port;
    }
    // Host only, before the guest boots (nothing else running): the relay's own cost per CTAP command, with the
    // authenticator, the gateway and the client all native — soft on a loopback face vs gateway ⇄ TLS ⇄ agent.
    let hostOverhead: RelayRun['hostOverhead'];
    if (a.lines.includes('keytunnel') && a.lines.includes('direct')) {
      const softPort = await freePort();
      const gwPort = await freePort();
      const hostChildren = [
        spawnKeytunnel(['soft', '--hid', `loopback:127.0.0.1:${softPort}`, '--approve', 'always', '--state-dir', join(hostDir, 'soft-loop'), '--log-level', 'warn'], {
          logPath: join(share, 'soft-loop.log'),
          env,
        }),
        spawnKeytunnel(
          ['gateway', '--hid', `loopback:127.0.0.1:${gwPort}`, '--connect', `127.0.0.1:${agentPort}`, '--trust', agentFp, '--state-dir', join(hostDir, 'gw-host'), '--log-level', 'warn'],
          { logPath: join(share, 'gw-host.log'), env },
        ),
      ];
      children.push(...hostChildren);
      await waitForPort(softPort);
      await waitForPort(gwPort);
      const [hostDirect, hostKeytunnel] = await hostCeremonies(softPort, gwPort, HOST_CEREMONIES, 20);
      hostOverhead = { direct: hostDirect, keytunnel: hostKeytunnel };
      for (const c of hostChildren) await c.stop();
      process.stdout.write(
        `  host only: ceremony median direct ${fmtMs(median(hostOverhead.direct.map((t) => t.totalMs)))} ms, keytunnel (no added delay) ${fmtMs(median(hostOverhead.keytunnel.map((t) => t.totalMs)))} ms\n`,
      );
    }
    control = await startControl(a, proxies, results);
    process.stdout.write(`bench-relay: lines ${a.lines.join(', ')}; RTTs ${a.rtts.join(', ')} ms; ${a.reps} ceremonies per point; share ${share}\n`);
    const guest = await runGuestScript(share, guestScript(a, control.port, ports, agentFp), {
      timeoutMs: 25 * 60_000,
      onLine: (l) => {
        if (/^\[guest-client|guest-client .* failed|usbip attach failed|^guest:|^\[run-guest\]|^run-guest:/.test(l)) process.stdout.write(`  ${l}\n`);
      },
    });
    const run: RelayRun = {
      startedAt,
      machine: machine(),
      command: `npx tsx scripts/bench-relay.ts${process.argv.slice(2).length ? ' ' + process.argv.slice(2).join(' ') : ''}`,
      reps: a.reps,
      rtts: a.rtts,
      results,
      hostOverhead,
      durationS: (Date.now() - started) / 1000,
    };
    process.stdout.write('\n' + renderTables(run) + '\n\n');
    if (!results.some((r) => r.kind === 'ceremony' && r.samples.length > 0)) {
      // Never overwrite published results with an empty run.
      process.stdout.write(`bench-relay: the guest measured nothing (exit ${guest.code}); see ${guest.consolePath}\n`);
      return 1;
    }
    publish(run, a.out);
    process.stdout.write(`wrote ${join(a.out, 'relay.md')}, relay.svg, relay.json (guest console: ${guest.consolePath})\n`);
    if (guest.code !== 0) {
      process.stdout.write(`bench-relay: the guest script exited ${guest.code}; see ${guest.consolePath}\n`);
      return 1;
    }
    return 0;
  } finally {
    await control?.close();
    for (const p of Object.values(proxies)) await p?.close();
    for (const c of children) await c.stop();
    rmSync(hostDir, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench-relay: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
