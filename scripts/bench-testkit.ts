/**
 * Ceremonies per second through keytunnel/testing in one process: WebAuthnTestClient → CTAPHID over the
 * loopback face → startSoftAuthenticator's device engine → soft authenticator, each response verified by
 * @simplewebauthn/server as a relying party's test would. The number a CI suite that registers thousands of
 * users cares about.
 *
 *   npx tsx scripts/bench-testkit.ts [--seconds S] [--out docs/bench]
 *
 * Lines (each run for S seconds, one ceremony at a time):
 *   register            client.register() only (non-resident, attestation none), ES256 and EdDSA
 *   register+verify     + verifyRegistrationResponse
 *   sign-in+verify      client.authenticate() + verifyAuthenticationResponse, allow list of one
 *   user (reg+sign-in)  a whole new user: register, verify, sign in, verify
 * Writes testkit.md and testkit.json to --out (default: print only).
 */
import { writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import {
  generateAuthenticationOptions,
  generateRegistrationOptions,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
  type WebAuthnCredential,
} from '@simplewebauthn/server';
import { startSoftAuthenticator, WebAuthnTestClient } from '../testing/index.ts';

const RP_ID = 'example.com';
const ORIGIN = 'https://example.com';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i < 0 ? undefined : process.argv[i + 1];
}
const seconds = Number(arg('--seconds') ?? 3);
const out = arg('--out');
if (!(seconds > 0 && seconds <= 120)) {
  process.stderr.write('usage: npx tsx scripts/bench-testkit.ts [--seconds S (0-120]] [--out DIR]\n');
  process.exit(2);
}

const soft = await startSoftAuthenticator();
const client = new WebAuthnTestClient({ device: soft.device, origin: ORIGIN });
let users = 0;

async function register(alg: number, verify: boolean): Promise<WebAuthnCredential | undefined> {
  const options = await generateRegistrationOptions({
    rpName: 'bench',
    rpID: RP_ID,
    userName: `user${users++}`,
    supportedAlgorithmIDs: [alg],
    authenticatorSelection: { residentKey: 'discouraged', userVerification: 'discouraged' },
  });
  const response = await client.register(options);
  if (!verify) return undefined;
  const result = await verifyRegistrationResponse({ response, expectedChallenge: options.challenge, expectedOrigin: ORIGIN, expectedRPID: RP_ID, requireUserVerification: false, supportedAlgorithmIDs: [alg] });
  if (!result.verified) throw new Error('registration not verified');
  return result.registrationInfo.credential;
}

async function signIn(credential: WebAuthnCredential): Promise<WebAuthnCredential> {
  const options = await generateAuthenticationOptions({ rpID: RP_ID, userVerification: 'discouraged', allowCredentials: [{ id: credential.id }] });
  const response = await client.authenticate(options);
  const result = await verifyAuthenticationResponse({ response, expectedChallenge: options.challenge, expectedOrigin: ORIGIN, expectedRPID: RP_ID, credential, requireUserVerification: false });
  if (!result.verified) throw new Error('authentication not verified');
  return { ...credential, counter: result.authenticationInfo.newCounter };
}

interface Line {
  readonly name: string;
  readonly alg: string;
  readonly count: number;
  readonly perSecond: number;
  readonly meanMs: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
}

async function measure(name: string, alg: string, op: () => Promise<void>): Promise<Line> {
  for (let i = 0; i < 50; i++) await op(); // warm-up
  const times: number[] = [];
  const start = performance.now();
  const end = start + seconds * 1000;
  while (performance.now() < end) {
    const t = performance.now();
    await op();
    times.push(performance.now() - t);
  }
  const elapsed = performance.now() - start;
  const sorted = [...times].sort((a, b) => a - b);
  const pct = (p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
  const line = { name, alg, count: times.length, perSecond: (times.length * 1000) / elapsed, meanMs: elapsed / times.length, p50Ms: pct(0.5), p90Ms: pct(0.9) };
  process.stderr.write(
    `${name.padEnd(20)} ${alg.padEnd(6)} ${line.perSecond.toFixed(0).padStart(6)}/s  p50 ${line.p50Ms.toFixed(2)} ms  p90 ${line.p90Ms.toFixed(2)} ms\n`,
  );
  return line;
}

const lines: Line[] = [];
for (const [alg, label] of [[-7, 'ES256'], [-8, 'EdDSA']] as const) {
  lines.push(await measure('register', label, async () => void (await register(alg, false))));
  lines.push(await measure('register+verify', label, async () => void (await register(alg, true))));
  let credential = (await register(alg, true))!;
  lines.push(await measure('sign-in+verify', label, async () => void (credential = await signIn(credential))));
  lines.push(await measure('user (reg+sign-in)', label, async () => void (await signIn((await register(alg, true))!))));
}
await client.close();
await soft.close();

const when = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
const machine = `${cpus()[0]?.model.trim() ?? 'unknown CPU'}, ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB RAM, Node ${process.version}`;
const load = loadavg()[0].toFixed(1);
const table = [
  '| ceremony | alg | per second | mean | p50 | p90 |',
  '|---|---|---:|---:|---:|---:|',
  ...lines.map(
    (l) => `| ${l.name} | ${l.alg} | **${l.perSecond.toFixed(0)}** | ${l.meanMs.toFixed(2)} ms | ${l.p50Ms.toFixed(2)} ms | ${l.p90Ms.toFixed(2)} ms |`,
  ),
].join('\n');
const md = `# keytunnel/testing: ceremonies per second in-process

Measured ${when} with \`npx tsx scripts/bench-testkit.ts --seconds ${seconds}\` on ${machine}; 1-minute load
average ${load} when it finished (other work shared the cores: the p50 column is the undisturbed cost of one
ceremony, "per second" what this run achieved).

One process, one ceremony at a time: \`WebAuthnTestClient\` → CTAPHID over the loopback face (TCP on 127.0.0.1) →
\`startSoftAuthenticator()\`'s device engine → the soft authenticator (in-memory state, presence approved). Each
ceremony is what \`register()\` / \`authenticate()\` do (getInfo, then makeCredential or getAssertion), with
options made by @simplewebauthn/server; "+verify" adds its verify*Response call, as a relying party's test does.
Non-resident credentials, no PIN, attestation "none".

${table}

"user (reg+sign-in)" is a whole new user per iteration: registration options, register, verify, authentication
options, sign in, verify — the rate at which a suite can create signed-in users.
`;
process.stdout.write(md);
if (out !== undefined) {
  writeFileSync(join(out, 'testkit.md'), md);
  writeFileSync(join(out, 'testkit.json'), JSON.stringify({ when, machine, load: Number(load), seconds, lines }, null, 2) + '\n');
}
