/**
 * Many gateways in one process, for scripts/bench-memory.ts: `--count` in-process gateways (startGatewayService —
 * what `keytunnel gateway` runs — each with its own identity in `<state-base>/gw-<index>-<i>` and a loopback face),
 * all dialling one agent. When every device is up it prints `{"ready":…}`; on "go" (a line on stdin) each gateway's
 * own CTAPHID client runs ceremonies (scripts/bench/ceremony.ts) back to back for `--duration-ms`; then it prints
 * `{"done":…}` with the counts, stops every gateway and exits.
 *
 *   node --import tsx scripts/bench/gateway-swarm.ts --count 10 --agent 127.0.0.1:P --agent-fp FP \
 *        --state-base DIR --index 0 --duration-ms 30000
 */
import { createInterface } from 'node:readline';
import { pino } from 'pino';
import { CtaphidClient } from '../../agent/authenticators/hardware/ctaphid-client.ts';
import { LoopbackTransport } from '../../agent/authenticators/hardware/loopback-transport.ts';
import { startGatewayService, type GatewayService } from '../../cli/commands/gateway.ts';
import { runCeremony } from './ceremony.ts';

function arg(name: string): string {
  const i = process.argv.indexOf(name);
  const v = i >= 0 ? process.argv[i + 1] : undefined;
  if (v === undefined) {
    process.stderr.write(`gateway-swarm: missing ${name}\n`);
    process.exit(2);
  }
  return v;
}

export interface SwarmReady {
  readonly ready: number;
  readonly rss: number;
}

export interface SwarmDone {
  readonly done: true;
  readonly ceremonies: number;
  readonly errors: number;
  readonly errorSamples: readonly string[];
  readonly elapsedMs: number;
  readonly rss: number;
}

const count = Number(arg('--count'));
const [agentHost, agentPort] = arg('--agent').split(':');
const agentFp = arg('--agent-fp');
const stateBase = arg('--state-base');
const index = Number(arg('--index'));
const durationMs = Number(arg('--duration-ms'));

async function main(): Promise<void> {
  const log = pino({ level: 'warn' }, pino.destination(2));
  const gateways: GatewayService[] = [];
  const clients: CtaphidClient[] = [];
  for (let i = 0; i < count; i++) {
    gateways.push(
      await startGatewayService(
        {
          hid: { kind: 'loopback', host: '127.0.0.1', port: 0 },
          connect: { host: agentHost, port: Number(agentPort) },
          trust: [agentFp],
          stateDir: `${stateBase}/gw-${index}-${i}`,
          name: `bench-gw-${index}-${i}`,
        },
        { log },
      ),
    );
  }
  // Wait for each gateway's virtual device (the agent's soft authenticator), then connect a client to it.
  const deadline = Date.now() + 60_000;
  for (const g of gateways) {
    for (;;) {
      const dev = g.core.list()[0];
      if (dev?.address !== undefined) {
        clients.push(await CtaphidClient.open(await LoopbackTransport.connect(dev.address.host, dev.address.port), { timeoutMs: 60_000 }));
        break;
      }
      if (Date.now() > deadline) throw new Error('a gateway got no device within 60 s');
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  const ready: SwarmReady = { ready: gateways.length, rss: process.memoryUsage.rss() };
  process.stdout.write(JSON.stringify(ready) + '\n');

  await new Promise<void>((resolve) => {
    const rl = createInterface({ input: process.stdin });
    rl.on('line', (l) => {
      if (l.trim() === 'go') {
        rl.close();
        resolve();
      }
    });
  });
  const start = Date.now();
  const end = start + durationMs;
  let ceremonies = 0;
  let errors = 0;
  const errorSamples: string[] = [];
  await Promise.all(
    clients.map(async (c) => {
      while (Date.now() < end) {
        try {
          await runCeremony(c);
          ceremonies++;
        } catch (err) {
          errors++;
          if (errorSamples.length < 5) errorSamples.push(`${(err as Error).name}: ${(err as Error).message}`);
        }
      }
    }),
  );
  const done: SwarmDone = { done: true, ceremonies, errors, errorSamples, elapsedMs: Date.now() - start, rss: process.memoryUsage.rss() };
  process.stdout.write(JSON.stringify(done) + '\n');
  for (const c of clients) await c.close();
  for (const g of gateways) await g.close();
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`gateway-swarm ${index}: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
