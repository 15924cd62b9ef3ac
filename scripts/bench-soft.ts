/**
 * Throughput of the soft authenticator at command level: whole CTAP2 requests (command byte + CBOR) into
 * `SoftAuthenticator.request`, answers checked for CTAP2_OK, one request at a time on one core. The state
 * lives in the in-memory store (no disk, no encryption): this measures the authenticator, not the store.
 *
 *   npx tsx scripts/bench-soft.ts [seconds-per-line]
 *
 * Targets: ≥ 15,000 getAssertion/s and ≥ 10,000 non-resident makeCredential/s (ES256).
 */
import { cpus } from 'node:os';
import { createHash } from 'node:crypto';
import { encode, decode, isCborMap, type CborMap, type CborValue } from '../protocol/cbor.ts';
import type { RequestContext } from '../protocol/authenticator.ts';
import { CTAP2_GET_ASSERTION, CTAP2_MAKE_CREDENTIAL, CTAP2_OK } from '../protocol/ctap2.ts';
import { MemoryStateStore } from '../agent/authenticators/soft/memory-store.ts';
import { AlwaysPresence } from '../agent/presence/always.ts';
import { SoftAuthenticator } from '../agent/authenticators/soft/soft-authenticator.ts';

const ES256 = -7;
const EDDSA = -8;
const RP_ID = 'bench.example';
const TARGET_GET_ASSERTION = 15_000;
const TARGET_MAKE_CREDENTIAL = 10_000;

const seconds = Number(process.argv[2] ?? 2);
if (!(seconds > 0 && seconds <= 60)) {
  process.stderr.write('usage: npx tsx scripts/bench-soft.ts [seconds-per-line (0-60]]\n');
  process.exit(2);
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

async function call(auth: SoftAuthenticator, payload: Uint8Array): Promise<Uint8Array> {
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

async function measure(name: string, fn: () => Promise<unknown>, target?: number): Promise<number> {
  for (let i = 0; i < 200; i++) await fn(); // warm-up: JIT, key cache
  const deadline = performance.now() + seconds * 1000;
  const start = performance.now();
  let n = 0;
  while (performance.now() < deadline) {
    for (let i = 0; i < 50; i++) await fn();
    n += 50;
  }
  const rate = n / ((performance.now() - start) / 1000);
  const verdict = target === undefined ? '' : rate >= target ? `  (target ≥ ${target.toLocaleString('en-US')}: met)` : `  (target ≥ ${target.toLocaleString('en-US')}: MISSED)`;
  process.stdout.write(`${name.padEnd(46)} ${Math.round(rate).toLocaleString('en-US').padStart(9)} /s${verdict}\n`);
  return rate;
}

const auth = await SoftAuthenticator.open({ store: new MemoryStateStore(), presence: new AlwaysPresence() });
process.stdout.write(
  'keytunnel soft authenticator benchmark: command level (CTAP2 request bytes in, answer bytes out), one\n' +
    'request at a time on one core, IN-MEMORY store (MemoryStateStore: no disk I/O, no encryption).\n' +
    `node ${process.version}, ${cpus()[0]?.model ?? 'unknown CPU'}, ${seconds} s per line\n\n`,
);

const userId = new Uint8Array(16).fill(7);
const mcEs256 = makeCredentialRequest(ES256, false, userId);
const mcEs256Rk = makeCredentialRequest(ES256, true, userId); // same user: replaces, never fills the store
const mcEdDsa = makeCredentialRequest(EDDSA, false, userId);
const mcEdDsaRk = makeCredentialRequest(EDDSA, true, new Uint8Array(16).fill(8));
const es256Id = credentialIdOf(await call(auth, mcEs256));
const edDsaId = credentialIdOf(await call(auth, mcEdDsa));
await call(auth, mcEs256Rk);
const gaEs256 = getAssertionRequest(es256Id);
const gaEdDsa = getAssertionRequest(edDsaId);
const gaResident = getAssertionRequest(); // discoverable: the one resident ES256 credential for the RP

const results = {
  makeCredentialEs256: await measure('makeCredential ES256 non-resident', () => call(auth, mcEs256), TARGET_MAKE_CREDENTIAL),
  getAssertionEs256: await measure('getAssertion ES256 non-resident (allowList)', () => call(auth, gaEs256), TARGET_GET_ASSERTION),
  makeCredentialEs256Rk: await measure('makeCredential ES256 resident', () => call(auth, mcEs256Rk)),
  getAssertionResident: await measure('getAssertion ES256 resident (discoverable)', () => call(auth, gaResident)),
  makeCredentialEdDsa: await measure('makeCredential EdDSA non-resident', () => call(auth, mcEdDsa)),
  getAssertionEdDsa: await measure('getAssertion EdDSA non-resident (allowList)', () => call(auth, gaEdDsa)),
};
await call(auth, mcEdDsaRk);
const met =
  results.getAssertionEs256 >= TARGET_GET_ASSERTION && results.makeCredentialEs256 >= TARGET_MAKE_CREDENTIAL;
process.stdout.write(`\ntargets (ES256): ${met ? 'met' : 'NOT met'}\n`);
