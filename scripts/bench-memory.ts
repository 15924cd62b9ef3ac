/**
 * Memory benchmark (host only, no VM):
 *
 * 1. an idle gateway — a real `keytunnel gateway --hid loopback:127.0.0.1:P --connect …` process, connected to a
 *    `keytunnel agent --soft` process, its device up: RSS right after the device appears, and again after one
 *    ceremony and a few idle seconds;
 * 2. the agent serving 50 concurrent gateways doing ceremonies back to back. 50 gateway processes are too heavy
 *    for a 2-core machine, so the gateways run in-process, 10 per process in 5 processes
 *    (scripts/bench/gateway-swarm.ts; each gateway has its own identity, TLS tunnel, device engine and loopback
 *    face — only the Node runtime is shared). The agent's RSS is sampled every 250 ms during the load; we report
 *    the peak, the ceremonies per second and the errors.
 *
 * Targets: zero errors; agent RSS ≤ 150 MB under the load; idle gateway ≤ 60 MB.
 *
 *   npx tsx scripts/bench-memory.ts [--gateways 50] [--per-process 10] [--duration-ms 30000] [--out docs/bench]
 *
 * Writes docs/bench/memory.md (and memory.json). Takes about a minute.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { CtaphidClient } from '../agent/authenticators/hardware/ctaphid-client.ts';
import { LoopbackTransport } from '../agent/authenticators/hardware/loopback-transport.ts';
import { loadOrCreateIdentity } from '../tunnel/identity.ts';
import { runCeremony } from './bench/ceremony.ts';
import { REPO_ROOT } from './bench/guest-run.ts';
import { freePort, mib, readRss, spawnKeytunnel, waitForPort, type KeytunnelChild } from './bench/processes.ts';
import type { SwarmDone, SwarmReady } from './bench/gateway-swarm.ts';

const PASSPHRASE = 'keytunnel bench passphrase (not a secret)';
const MB = 1_000_000;
const TARGET_AGENT_RSS = 150 * MB;
const TARGET_IDLE_GATEWAY_RSS = 60 * MB;
const TSX_LOADER = join(REPO_ROOT, 'node_modules', 'tsx', 'dist', 'loader.mjs');
const SWARM = join(REPO_ROOT, 'scripts', 'bench', 'gateway-swarm.ts');

interface Args {
  /** NODE_OPTIONS for the agent and idle gateway processes (e.g. "--max-semi-space-size=1"). */
  nodeOptions?: string;
  gateways: number;
  perProcess: number;
  durationMs: number;
  out: string;
}

function parseArgs(argv: readonly string[]): Args {
  const a: Args = { gateways: 50, perProcess: 10, durationMs: 30_000, out: join(REPO_ROOT, 'docs', 'bench') };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i + 1];
    const num = (): number => {
      if (v === undefined || !/^\d+$/.test(v) || Number(v) < 1) throw new Error(`${argv[i]} needs a positive integer`);
      i++;
      return Number(v);
    };
    switch (argv[i]) {
      case '--gateways': a.gateways = num(); break;
      case '--per-process': a.perProcess = num(); break;
      case '--duration-ms': a.durationMs = num(); break;
      case '--out': if (v === undefined) throw new Error('--out needs a directory'); a.out = resolve(v); i++; break;
      case '--node-options': if (v === undefined) throw new Error('--node-options needs a value'); a.nodeOptions = v; i++; break;
      default: throw new Error(`unknown argument ${argv[i]}`);
    }
  }
  return a;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Where an idle gateway's RSS goes: processes that only load a runtime layer, measured after 2.5 s. */
const BREAKDOWN_PROBES: readonly { readonly what: string; readonly args: readonly string[] }[] = [
  { what: 'bare node (`node -e`)', args: ['-e', 'setTimeout(() => {}, 4000)'] },
  { what: 'node + tsx loader', args: ['--import', TSX_LOADER, '-e', 'setTimeout(() => {}, 4000)'] },
  { what: 'node + tsx + gateway/gateway.ts (relay core, tunnel, device engine)', args: ['--import', TSX_LOADER, '-e', `await import(${JSON.stringify(join(REPO_ROOT, 'gateway', 'gateway.ts'))}); setTimeout(() => {}, 4000)`] },
  { what: 'node + tsx + cli/commands/gateway.ts (+ identity/x509, pino, agent command module)', args: ['--import', TSX_LOADER, '-e', `await import(${JSON.stringify(join(REPO_ROOT, 'cli', 'commands', 'gateway.ts'))}); setTimeout(() => {}, 4000)`] },
  { what: 'node + tsx + cli/main.ts (every command, node-hid, usb, …)', args: ['--import', TSX_LOADER, '-e', `await import(${JSON.stringify(join(REPO_ROOT, 'cli', 'main.ts'))}); setTimeout(() => {}, 4000)`] },
];

async function probeRss(args: readonly string[]): Promise<number> {
  const child = spawn(process.execPath, [...args], { stdio: 'ignore', cwd: REPO_ROOT });
  await sleep(2500);
  let rss = Number.NaN;
  try {
    rss = readRss(child.pid ?? -1).rss;
  } catch { /* exited early */ }
  child.kill('SIGKILL');
  await new Promise((r) => child.once('close', r));
  return rss;
}

/** Reads JSON lines from a child's stdout, resolving the first one that satisfies `pick`. */
function nextJson<T>(child: ChildProcessWithoutNullStreams, pick: (v: Record<string, unknown>) => boolean, timeoutMs: number): Promise<T> {
  return new Promise((resolvePromise, reject) => {
    const rl = createInterface({ input: child.stdout });
    const timer = setTimeout(() => {
      rl.close();
      reject(new Error(`no answer from a swarm process within ${timeoutMs} ms`));
    }, timeoutMs);
    rl.on('line', (line) => {
      let v: unknown;
      try {
        v = JSON.parse(line);
      } catch {
        return;
      }
      if (typeof v === 'object' && v !== null && pick(v as Record<string, unknown>)) {
        clearTimeout(timer);
        rl.close();
        resolvePromise(v as T);
      }
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      reject(new Error(`swarm process exited ${code}`));
    });
  });
}

interface MemoryRun {
  readonly startedAt: string;
  readonly machine: string;
  readonly node: string;
  readonly command: string;
  readonly nodeOptions?: string;
  readonly idleGateway: { readonly afterConnect: number; readonly afterCeremonyIdle: number; readonly peak: number };
  readonly agentIdle: number;
  readonly breakdown: readonly { readonly what: string; readonly rss: number }[];
  readonly load: {
    readonly gateways: number;
    readonly processes: number;
    readonly durationMs: number;
    readonly ceremonies: number;
    readonly ceremoniesPerSecond: number;
    readonly errors: number;
    readonly errorSamples: readonly string[];
    readonly agentRssPeakSampled: number;
    readonly agentRssAfter: number;
    readonly agentVmHwm: number;
    readonly swarmProcessRss: readonly number[];
  };
}

function render(run: MemoryRun): string {
  const verdict = (ok: boolean): string => (ok ? 'PASS' : 'FAIL');
  const l = run.load;
  const perGateway = l.swarmProcessRss.reduce((a, b) => a + b, 0) / l.gateways;
  return [
    '# Memory: idle gateway, and one agent serving 50 gateways',
    '',
    `Measured ${run.startedAt} with \`${run.command}\` on ${run.machine}, Node ${run.node}. RSS is VmRSS from /proc (MB = 10^6 bytes).` +
      (run.nodeOptions ? ` The agent and the idle gateway ran with NODE_OPTIONS="${run.nodeOptions}".` : ''),
    '',
    `- Idle gateway (\`keytunnel gateway --hid loopback:… --connect …\` process, tunnel up, device ready): **${(run.idleGateway.afterConnect / MB).toFixed(1)} MB** ` +
      `right after its device appeared, ${(run.idleGateway.afterCeremonyIdle / MB).toFixed(1)} MB after one ceremony and 3 s idle (peak ${(run.idleGateway.peak / MB).toFixed(1)} MB).`,
    `- Agent (\`keytunnel agent --soft\` process) with one idle gateway: ${(run.agentIdle / MB).toFixed(1)} MB.`,
    `- Agent serving ${l.gateways} gateways doing ceremonies back to back for ${(l.durationMs / 1000).toFixed(0)} s: peak sampled RSS **${(l.agentRssPeakSampled / MB).toFixed(1)} MB** ` +
      `(VmHWM ${(l.agentVmHwm / MB).toFixed(1)} MB, ${(l.agentRssAfter / MB).toFixed(1)} MB at the end); **${l.ceremonies} ceremonies, ` +
      `${l.ceremoniesPerSecond.toFixed(1)} ceremonies/s, ${l.errors} errors**.`,
    `- The ${l.gateways} gateways ran in-process, ${l.gateways / l.processes} per process in ${l.processes} processes (50 gateway processes are too heavy ` +
      `for this 2-core machine); those processes were ${l.swarmProcessRss.map((r) => (r / MB).toFixed(0)).join(', ')} MB each at the end (≈ ${(perGateway / MB).toFixed(1)} MB ` +
      'per gateway including each process\'s share of the Node runtime and its clients).',
    '',
    'Where the idle gateway\'s memory goes (processes that load only one layer more each; RSS after 2.5 s):',
    '',
    '| process | RSS |',
    '|---|---:|',
    ...run.breakdown.map((b) => `| ${b.what} | ${(b.rss / MB).toFixed(1)} MB |`),
    `| the real idle gateway process (\`bin/keytunnel.js gateway\`) | ${(run.idleGateway.afterCeremonyIdle / MB).toFixed(1)} MB |`,
    '',
    'A ceremony is CTAPHID_INIT, getInfo, makeCredential (ES256, packed), getAssertion, from a TS CTAPHID client on each gateway\'s loopback face.',
    '',
    '| target | measured | verdict |',
    '|---|---|---|',
    `| zero errors under load | ${l.errors} | ${verdict(l.errors === 0)} |`,
    `| agent RSS ≤ 150 MB with ${l.gateways} gateways | ${(l.agentRssPeakSampled / MB).toFixed(1)} MB (VmHWM ${(l.agentVmHwm / MB).toFixed(1)} MB) | ${verdict(l.agentVmHwm <= TARGET_AGENT_RSS)} |`,
    `| idle gateway ≤ 60 MB | ${(run.idleGateway.afterCeremonyIdle / MB).toFixed(1)} MB | ${verdict(run.idleGateway.afterCeremonyIdle <= TARGET_IDLE_GATEWAY_RSS)} |`,
    ...(l.errorSamples.length > 0 ? ['', 'Error samples:', ...l.errorSamples.map((e) => `- ${e}`)] : []),
    '',
  ].join('\n');
}

async function main(): Promise<number> {
  const a = parseArgs(process.argv.slice(2));
  const startedAt = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const dir = mkdtempSync(join(os.tmpdir(), 'kt-bench-memory-'));
  const children: KeytunnelChild[] = [];
  const swarms: ChildProcessWithoutNullStreams[] = [];
  const env: NodeJS.ProcessEnv = { KEYTUNNEL_PASSPHRASE: PASSPHRASE, NODE_OPTIONS: a.nodeOptions ?? '' };
  try {
    const processes = Math.ceil(a.gateways / a.perProcess);
    // Identities up front so the agent can trust every gateway by fingerprint.
    const agentFp = (await loadOrCreateIdentity(join(dir, 'agent'))).identity.fingerprint;
    const idleFp = (await loadOrCreateIdentity(join(dir, 'gw-idle'))).identity.fingerprint;
    const swarmFps: string[] = [];
    for (let p = 0; p < processes; p++) {
      for (let i = 0; i < Math.min(a.perProcess, a.gateways - p * a.perProcess); i++) {
        swarmFps.push((await loadOrCreateIdentity(join(dir, `gw-${p}-${i}`))).identity.fingerprint);
      }
    }
    const agentPort = await freePort();
    const agent = spawnKeytunnel(
      ['agent', '--soft', '--approve', 'always', '--listen', `127.0.0.1:${agentPort}`, '--state-dir', join(dir, 'agent'), '--log-level', 'warn',
        '--trust', idleFp, ...swarmFps.flatMap((fp) => ['--trust', fp])],
      { logPath: join(dir, 'agent.log'), env },
    );
    children.push(agent);
    await waitForPort(agentPort);

    // 1. The idle gateway process.
    const facePort = await freePort();
    const gw = spawnKeytunnel(
      ['gateway', '--hid', `loopback:127.0.0.1:${facePort}`, '--connect', `127.0.0.1:${agentPort}`, '--trust', agentFp, '--state-dir', join(dir, 'gw-idle'), '--log-level', 'warn'],
      { logPath: join(dir, 'gateway.log'), env },
    );
    children.push(gw);
    await waitForPort(facePort);
    await sleep(1000);
    const afterConnect = readRss(gw.pid).rss;
    const client = await CtaphidClient.open(await LoopbackTransport.connect('127.0.0.1', facePort));
    await runCeremony(client);
    await client.close();
    await sleep(3000);
    const idle = readRss(gw.pid);
    const agentIdle = readRss(agent.pid).rss;
    process.stdout.write(`idle gateway: ${mib(afterConnect)} MiB after connect, ${mib(idle.rss)} MiB after a ceremony + 3 s idle; agent ${mib(agentIdle)} MiB\n`);

    const breakdown: { what: string; rss: number }[] = [];
    for (const p of BREAKDOWN_PROBES) breakdown.push({ what: p.what, rss: await probeRss(p.args) });

    // 2. The load: swarm processes, started one after another (their startups would otherwise fight for the CPU).
    for (let p = 0; p < processes; p++) {
      const count = Math.min(a.perProcess, a.gateways - p * a.perProcess);
      const child = spawn(
        process.execPath,
        ['--import', TSX_LOADER, SWARM, '--count', String(count), '--agent', `127.0.0.1:${agentPort}`, '--agent-fp', agentFp,
          '--state-base', dir, '--index', String(p), '--duration-ms', String(a.durationMs)],
        { stdio: ['pipe', 'pipe', 'pipe'] },
      );
      child.stderr.on('data', (b: Buffer) => process.stderr.write(`[swarm ${p}] ${b.toString()}`));
      swarms.push(child);
      const ready = await nextJson<SwarmReady>(child, (v) => 'ready' in v, 120_000);
      process.stdout.write(`swarm ${p}: ${ready.ready} gateways ready (process RSS ${mib(ready.rss)} MiB)\n`);
    }
    const dones = swarms.map((c) => nextJson<SwarmDone>(c, (v) => v['done'] === true, a.durationMs + 120_000));
    for (const c of swarms) c.stdin.write('go\n');
    let peak = 0;
    const sampler = setInterval(() => {
      try {
        peak = Math.max(peak, readRss(agent.pid).rss);
      } catch { /* exiting */ }
    }, 250);
    const results = await Promise.all(dones);
    clearInterval(sampler);
    const after = readRss(agent.pid);
    peak = Math.max(peak, after.rss);
    const ceremonies = results.reduce((n, r) => n + r.ceremonies, 0);
    const elapsed = Math.max(...results.map((r) => r.elapsedMs));
    const run: MemoryRun = {
      startedAt,
      machine: `${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM`,
      node: process.version,
      command: `npx tsx scripts/bench-memory.ts${process.argv.slice(2).length ? ' ' + process.argv.slice(2).join(' ') : ''}`,
      nodeOptions: a.nodeOptions,
      idleGateway: { afterConnect, afterCeremonyIdle: idle.rss, peak: idle.peak },
      agentIdle,
      breakdown,
      load: {
        gateways: a.gateways,
        processes,
        durationMs: elapsed,
        ceremonies,
        ceremoniesPerSecond: ceremonies / (elapsed / 1000),
        errors: results.reduce((n, r) => n + r.errors, 0),
        errorSamples: results.flatMap((r) => r.errorSamples).slice(0, 10),
        agentRssPeakSampled: peak,
        agentRssAfter: after.rss,
        agentVmHwm: after.peak,
        swarmProcessRss: results.map((r) => r.rss),
      },
    };
    const text = render(run);
    process.stdout.write('\n' + text);
    mkdirSync(a.out, { recursive: true });
    writeFileSync(join(a.out, 'memory.md'), text);
    writeFileSync(join(a.out, 'memory.json'), JSON.stringify(run, null, 1) + '\n');
    process.stdout.write(`\nwrote ${join(a.out, 'memory.md')} and memory.json\n`);
    return run.load.errors === 0 ? 0 : 1;
  } finally {
    for (const s of swarms) if (s.exitCode === null) s.kill('SIGTERM');
    for (const c of children.reverse()) await c.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench-memory: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
