/**
 * One WebAuthn-style ceremony as the benchmarks time it, over any CTAPHID transport: what a browser does to
 * register and then sign in with a security key —
 *   CTAPHID_INIT (§11.2.9.1.3) → authenticatorGetInfo (§6.4) → authenticatorMakeCredential (§6.1, "packed"
 *   attestation) → authenticatorGetAssertion (§6.2, allowList = the new credential)
 * — timing each command with performance.now(). Non-resident credentials, so repeated ceremonies do not grow the
 * authenticator's store. Every answer is checked (CTAP2_OK, fmt "packed", credential id present) so a benchmark
 * never times errors.
 */
import { createHash, randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { CtaphidClient } from '../../agent/authenticators/hardware/ctaphid-client.ts';
import { parseAuthData } from '../../testing/auth-data.ts';
import { decode, encode, isCborMap, type CborMap, type CborValue } from '../../protocol/cbor.ts';
import { CTAP2_GET_ASSERTION, CTAP2_GET_INFO, CTAP2_MAKE_CREDENTIAL, CTAP2_OK } from '../../protocol/ctap2.ts';

/** COSE algorithm ES256 (RFC 8152 §8.1). */
const COSE_ES256 = -7;

export const COMMANDS = ['init', 'getInfo', 'makeCredential', 'getAssertion'] as const;
export type CommandName = (typeof COMMANDS)[number];

export interface CeremonyTiming {
  /** Milliseconds per command. */
  readonly ms: Readonly<Record<CommandName, number>>;
  /** The whole ceremony (first byte of INIT to the last byte of the assertion), milliseconds. */
  readonly totalMs: number;
  /** Response sizes in bytes (status byte + CBOR), to relate times to report counts. */
  readonly bytes: { readonly getInfo: number; readonly makeCredential: number; readonly getAssertion: number };
  /** Request sizes in bytes (command byte + CBOR). */
  readonly requestBytes: { readonly getInfo: number; readonly makeCredential: number; readonly getAssertion: number };
}

export class CeremonyError extends Error {
  override readonly name = 'CeremonyError';
}

function sha256(data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(data).digest());
}

function request(cmd: number, params?: CborMap): Uint8Array {
  if (params === undefined) return Uint8Array.of(cmd);
  const body = encode(params);
  const out = new Uint8Array(1 + body.length);
  out[0] = cmd;
  out.set(body, 1);
  return out;
}

function answerMap(what: string, answer: Uint8Array): CborMap {
  if (answer.length === 0) throw new CeremonyError(`${what}: empty answer`);
  if (answer[0] !== CTAP2_OK) throw new CeremonyError(`${what}: CTAP2 status 0x${answer[0].toString(16).padStart(2, '0')}`);
  const value = decode(answer.subarray(1), { canonical: false });
  if (!isCborMap(value)) throw new CeremonyError(`${what}: answer is not a CBOR map`);
  return value;
}

/**
 * authenticatorMakeCredential parameters (CTAP 2.1 PS 2021-06-15 §6.1): ES256, packed attestation preferred,
 * rk = false.
 */
export function makeCredentialRequest(rpId: string, userId: Uint8Array, challenge: Uint8Array): Uint8Array {
  return request(
    CTAP2_MAKE_CREDENTIAL,
    new Map<CborValue, CborValue>([
      [1, sha256(challenge)],
      [2, new Map<CborValue, CborValue>([['id', rpId], ['name', 'keytunnel bench']])],
      [3, new Map<CborValue, CborValue>([['id', userId], ['name', 'bench@example.com'], ['displayName', 'Bench User']])],
      [4, [new Map<CborValue, CborValue>([['alg', COSE_ES256], ['type', 'public-key']])]],
      [7, new Map<CborValue, CborValue>([['rk', false]])],
    ]),
  );
}

/** authenticatorGetAssertion parameters (CTAP 2.1 §6.2) for one known credential. */
export function getAssertionRequest(rpId: string, credentialId: Uint8Array, challenge: Uint8Array): Uint8Array {
  return request(
    CTAP2_GET_ASSERTION,
    new Map<CborValue, CborValue>([
      [1, rpId],
      [2, sha256(challenge)],
      [3, [new Map<CborValue, CborValue>([['id', credentialId], ['type', 'public-key']])]],
    ]),
  );
}

/** Runs one ceremony on `client` (which is re-INITed first, as a browser does per request). */
export async function runCeremony(client: CtaphidClient, rpId = 'bench.keytunnel.test'): Promise<CeremonyTiming> {
  const t0 = performance.now();
  await client.init();
  const t1 = performance.now();
  const infoReq = request(CTAP2_GET_INFO);
  const info = await client.cbor(infoReq);
  answerMap('getInfo', info);
  const t2 = performance.now();
  const makeReq = makeCredentialRequest(rpId, new Uint8Array(randomBytes(16)), new Uint8Array(randomBytes(32)));
  const made = await client.cbor(makeReq);
  const t3 = performance.now();
  const att = answerMap('makeCredential', made);
  if (att.get(1) !== 'packed') throw new CeremonyError(`makeCredential: attestation format ${String(att.get(1))}, expected packed`);
  const authData = att.get(2);
  if (!(authData instanceof Uint8Array)) throw new CeremonyError('makeCredential: no authData');
  const credentialId = parseAuthData(authData).credentialId;
  if (credentialId === undefined) throw new CeremonyError('makeCredential: authData has no attested credential');
  const getReq = getAssertionRequest(rpId, credentialId, new Uint8Array(randomBytes(32)));
  const t4 = performance.now();
  const asserted = await client.cbor(getReq);
  const t5 = performance.now();
  const assertion = answerMap('getAssertion', asserted);
  if (!(assertion.get(3) instanceof Uint8Array)) throw new CeremonyError('getAssertion: no signature');
  return {
    // Answer checks (t3..t4) are client work, not device time: left out of the per-command and total times.
    ms: { init: t1 - t0, getInfo: t2 - t1, makeCredential: t3 - t2, getAssertion: t5 - t4 },
    totalMs: t3 - t0 + (t5 - t4),
    bytes: { getInfo: info.length, makeCredential: made.length, getAssertion: asserted.length },
    requestBytes: { getInfo: infoReq.length, makeCredential: makeReq.length, getAssertion: getReq.length },
  };
}
