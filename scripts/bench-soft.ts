/**
 * Throughput of the soft authenticator at command level: whole CTAP2 requests (command byte + CBOR) into
 * `SoftAuthenticator.request`, answers checked for CTAP2_OK, one request at a time on one core. The state
 * lives in the in-memory store (no disk, no encryption): this measures the authenticator, not the store.
 *
 *   npx tsx scripts/bench-soft.ts [--seconds S] [--baseline DIR] [--rounds N]
 *
 * --seconds S      time per line (default 2; with --baseline: per line and per side, split into rounds)
 * --baseline DIR   another checkout of keytunnel (e.g. `git worktree add /tmp/kt-old <commit>` with its
 *                  node_modules): its soft authenticator runs in this same process, and every line alternates
 *                  between it and this tree in short rounds (A B A B …), so the two sides share every moment
 *                  of a busy machine; the table gives each side's median rate and the median of the per-round
 *                  ratios. Only the authenticator modules come from DIR; the requests are built here.
 * --rounds N       rounds per line with --baseline (default 10)
 *
 * Targets: ≥ 15,000 getAssertion/s and ≥ 10,000 non-resident makeCredential/s (ES256).
 */
import { cpus } from 'node:os';
import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { encode, decode, isCborMap, type CborMap, type CborValue } from '../protocol/cbor.ts';
import type { RequestContext } from '../protocol/authenticator.ts';
import { CTAP2_GET_ASSERTION, CTAP2_MAKE_CREDENTIAL, CTAP2_OK } from '../protocol/ctap2.ts';
import type { Presence } from '../agent/presence/port.ts';
import { median } from './bench/stats.ts';

const ES256 = -7;
const EDDSA = -8;
const RP_ID = 'bench.example';
const TARGET_GET_ASSERTION = 15_000;
const TARGET_MAKE_CREDENTIAL = 10_000;

interface Args {
  seconds: number;
  baseline?: string;
  rounds: number;
}

function parseArgs(argv: readonly string[]): Args {
  const a: Args = { seconds: 2, rounds: 10 };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i + 1];
    switch (argv[i]) {
      case '--seconds': a.seconds = Number(v); i++; break;
      case '--baseline': if (v === undefined) throw new Error('--baseline needs a directory'); a.baseline = resolve(v); i++; break;
      case '--rounds': a.rounds = Number(v); i++; break;
      default:
        // Backwards compatible: a bare number is the seconds per line.
        if (/^\d+(\.\d+)?$/.test(argv[i])) a.seconds = Number(argv[i]);
        else throw new Error(`unknown argument ${argv[i]}`);
    }
  }
  if (!(a.seconds > 0 && a.seconds <= 60)) throw new Error('--seconds must be in (0, 60]');
  if (!(Number.isInteger(a.rounds) && a.rounds >= 1 && a.rounds <= 100)) throw new Error('--rounds must be 1..100');
  return a;
}

let args: Args;
try {
  args = parseArgs(process.argv.slice(2));
} catch (e) {
  process.stderr.write(`bench-soft: ${(e as Error).message}\nusage: npx tsx scripts/bench-soft.ts [--seconds S] [--baseline DIR] [--rounds N]\n`);
  process.exit(2);
}

/** What the bench needs of a soft authenticator, from this tree or from the baseline checkout. */
interface Auth {
  request(kind: 'cbor', payload: Uint8Array, ctx: RequestContext): Promise<Uint8Array>;
}

async function openAuthenticator(root: string): Promise<Auth> {
  const soft = `${root}/agent/authenticators/soft`;
  const { SoftAuthenticator } = (await import(pathToFileURL(`${soft}/soft-authenticator.ts`).href)) as typeof import('../agent/authenticators/soft/soft-authenticator.ts');
  const { MemoryStateStore } = (await import(pathToFileURL(`${soft}/memory-store.ts`).href)) as typeof import('../agent/authenticators/soft/memory-store.ts');
  // Approves every request. 'approved' is also truthy, so a baseline from before the typed presence outcome
  // (which took a boolean) runs with the same port.
  const presence: Presence = { confirm: async () => 'approved' };
  return SoftAuthenticator.open({ store: new MemoryStateStore(), presence });
}

const ctx: RequestContext = { signal: new AbortController().signal, onStatus: () => undefined };
const cdh = createHash('sha256').update('bench client data').digest();

function m(entries: Array<[CborValue, CborValue]>): CborMap {
  return new Map(entries);
}

function command(cmd: number, params: CborMap): Uint8Array {
  const body = encode(params);
  const out = new Uint8Array(1 + body.length);
  out[0] = cmd;
  out.set(body, 1);
  return out;
}

function makeCredentialRequest(alg: number, resident: boolean, userId: Uint8Array): Uint8Array {
  const params = m([
    [1, cdh],
    [2, m([['id', RP_ID], ['name', 'Bench RP']])],
    [3, m([['id', userId], ['name', 'bench@example.com']])],
    [4, [m([['alg', alg], ['type', 'public-key']])]],
  ]);
  if (resident) params.set(7, m([['rk', true]]));
  return command(CTAP2_MAKE_CREDENTIAL, params);
}

function getAssertionRequest(credentialId?: Uint8Array): Uint8Array {
  const params = m([
    [1, RP_ID],
    [2, cdh],
  ]);
  if (credentialId) params.set(3, [m([['id', credentialId], ['type', 'public-key']])]);
  return command(CTAP2_GET_ASSERTION, params);
}

async function call(auth: Auth, payload: Uint8Array): Promise<Uint8Array> {
  const answer = await auth.request('cbor', payload, ctx);
  if (answer[0] !== CTAP2_OK) throw new Error(`CTAP2 status 0x${answer[0].toString(16).padStart(2, '0')}`);
  return answer;
}

/** The credential ID from a makeCredential answer (authData: rpIdHash 32, flags 1, counter 4, aaguid 16, len 2, id). */
function credentialIdOf(answer: Uint8Array): Uint8Array {
  const response = decode(answer.subarray(1));
  if (!isCborMap(response)) throw new Error('makeCredential answer is not a map');
  const authData = response.get(2);
  if (!(authData instanceof Uint8Array)) throw new Error('no authData');
  const len = (authData[53] << 8) | authData[54];
  return authData.subarray(55, 55 + len);
}

interface Line {
  readonly name: string;
  readonly key: string;
  readonly target?: number;
}

const LINES: readonly Line[] = [
  { name: 'makeCredential ES256 non-resident', key: 'makeCredentialEs256', target: TARGET_MAKE_CREDENTIAL },
  { name: 'getAssertion ES256 non-resident (allowList)', key: 'getAssertionEs256', target: TARGET_GET_ASSERTION },
  { name: 'makeCredential ES256 resident', key: 'makeCredentialEs256Rk' },
  { name: 'getAssertion ES256 resident (discoverable)', key: 'getAssertionResident' },
  { name: 'makeCredential EdDSA non-resident', key: 'makeCredentialEdDsa' },
  { name: 'getAssertion EdDSA non-resident (allowList)', key: 'getAssertionEdDsa' },
];

/** One authenticator with its credentials made and the request of every line ready. */
async function prepare(auth: Auth): Promise<Record<string, () => Promise<unknown>>> {
  const userId = new Uint8Array(16).fill(7);
  const mcEs256 = makeCredentialRequest(ES256, false, userId);
  const mcEs256Rk = makeCredentialRequest(ES256, true, userId); // same user: replaces, never fills the store
  const mcEdDsa = makeCredentialRequest(EDDSA, false, userId);
  const es256Id = credentialIdOf(await call(auth, mcEs256));
  const edDsaId = credentialIdOf(await call(auth, mcEdDsa));
  await call(auth, mcEs256Rk);
  const gaEs256 = getAssertionRequest(es256Id);
  const gaEdDsa = getAssertionRequest(edDsaId);
  const gaResident = getAssertionRequest(); // discoverable: the one resident ES256 credential for the RP
  return {
    makeCredentialEs256: () => call(auth, mcEs256),
    getAssertionEs256: () => call(auth, gaEs256),
    makeCredentialEs256Rk: () => call(auth, mcEs256Rk),
    getAssertionResident: () => call(auth, gaResident),
    makeCredentialEdDsa: () => call(auth, mcEdDsa),
    getAssertionEdDsa: () => call(auth, gaEdDsa),
  };
}

/** Requests per second of `fn` over `ms` milliseconds (in batches of 50). */
async function rate(fn: () => Promise<unknown>, ms: number): Promise<number> {
  const start = performance.now();
  const deadline = start + ms;
  let n = 0;
  while (performance.now() < deadline) {
    for (let i = 0; i < 50; i++) await fn();
    n += 50;
  }
  return n / ((performance.now() - start) / 1000);
}

async function warmUp(fn: () => Promise<unknown>): Promise<void> {
  for (let i = 0; i < 200; i++) await fn(); // JIT, key cache
}

const fmt = (r: number): string => Math.round(r).toLocaleString('en-US').padStart(9);
const verdict = (r: number, target: number | undefined): string =>
  target === undefined ? '' : `  (target ≥ ${target.toLocaleString('en-US')}: ${r >= target ? 'met' : 'MISSED'})`;

const header =
  'keytunnel soft authenticator benchmark: command level (CTAP2 request bytes in, answer bytes out), one\n' +
  'request at a time on one core, IN-MEMORY store (MemoryStateStore: no disk I/O, no encryption).\n' +
  `node ${process.version}, ${cpus()[0]?.model ?? 'unknown CPU'}`;

const here = await prepare(await openAuthenticator(resolve(import.meta.dirname, '..')));
const results: Record<string, number> = {};
if (args.baseline === undefined) {
  process.stdout.write(`${header}, ${args.seconds} s per line\n\n`);
  for (const line of LINES) {
    await warmUp(here[line.key]);
    const r = await rate(here[line.key], args.seconds * 1000);
    results[line.key] = r;
    process.stdout.write(`${line.name.padEnd(46)} ${fmt(r)} /s${verdict(r, line.target)}\n`);
  }
} else {
  const base = await prepare(await openAuthenticator(args.baseline));
  const slice = (args.seconds * 1000) / args.rounds;
  process.stdout.write(
    `${header}\nbaseline (A): ${args.baseline}\nthis tree (B): ${resolve(import.meta.dirname, '..')}\n` +
      `${args.rounds} rounds of A then B, ${slice.toFixed(0)} ms each, per line; medians of the rounds\n\n` +
      `${'line'.padEnd(46)} ${'A /s'.padStart(9)}    ${'B /s'.padStart(9)}    B/A (min–max)\n`,
  );
  for (const line of LINES) {
    await warmUp(base[line.key]);
    await warmUp(here[line.key]);
    const a: number[] = [];
    const b: number[] = [];
    const ratios: number[] = [];
    for (let i = 0; i < args.rounds; i++) {
      a.push(await rate(base[line.key], slice));
      b.push(await rate(here[line.key], slice));
      ratios.push(b[i] / a[i]);
    }
    results[line.key] = median(b);
    process.stdout.write(
      `${line.name.padEnd(46)} ${fmt(median(a))}    ${fmt(median(b))}    ${median(ratios).toFixed(2)} ` +
        `(${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)})${verdict(median(b), line.target)}\n`,
    );
  }
}
const met = results.getAssertionEs256 >= TARGET_GET_ASSERTION && results.makeCredentialEs256 >= TARGET_MAKE_CREDENTIAL;
process.stdout.write(`\ntargets (ES256, this tree): ${met ? 'met' : 'NOT met'}\n`);
