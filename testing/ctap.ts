/**
 * The CTAP2 side of the test client: one command as a CTAPHID_CBOR round trip (command byte + CBOR map in,
 * status byte + CBOR map out, CTAP 2.1 PS 2021-06-15 §8) and the authenticatorGetInfo members a platform acts
 * on (§6.4).
 */
import { decode, encode, isCborMap, type CborMap, type CborValue } from '../protocol/cbor.ts';
import { CTAP2_GET_INFO, CTAP2_OK } from '../protocol/ctap2.ts';
import { ctapStatusError, WebAuthnError } from './errors.ts';

/** Sends one CTAP2 command (command byte + CBOR) and answers status byte + CBOR. */
export type CtapCommandPort = (request: Uint8Array, options?: { timeoutMs?: number }) => Promise<Uint8Array>;

/** Runs one CTAP2 command; a non-zero status is a WebAuthnError named as a browser names it. */
export async function ctapCommand(port: CtapCommandPort, cmd: number, params: CborMap | undefined, what: string, timeoutMs?: number): Promise<CborMap> {
  const body = params === undefined ? new Uint8Array(0) : encode(params);
  const request = new Uint8Array(1 + body.length);
  request[0] = cmd;
  request.set(body, 1);
  let answer: Uint8Array;
  try {
    answer = await port(request, { timeoutMs });
  } catch (err) {
    // A timeout or a broken connection: the operation failed without telling why (§5.1.3 step 21: timer expiry).
    throw new WebAuthnError(`${what}: ${err instanceof Error ? err.message : String(err)}`, 'NotAllowedError');
  }
  if (answer.length === 0) throw new WebAuthnError(`${what}: empty CTAP2 answer`, 'UnknownError');
  if (answer[0] !== CTAP2_OK) throw ctapStatusError(answer[0], what);
  if (answer.length === 1) return new Map();
  const value = decode(answer.subarray(1), { canonical: false });
  if (!isCborMap(value)) throw new WebAuthnError(`${what}: answer is not a CBOR map`, 'UnknownError');
  return value;
}

export const isBytes = (v: CborValue | undefined): v is Uint8Array => v instanceof Uint8Array;

export function need<T extends CborValue>(map: CborMap, key: CborValue, check: (v: CborValue | undefined) => v is T, what: string): T {
  const v = map.get(key);
  if (!check(v)) throw new WebAuthnError(`answer lacks a valid ${what}`, 'UnknownError');
  return v;
}

export interface AuthenticatorInfo {
  readonly versions: readonly string[];
  readonly extensions: readonly string[];
  readonly aaguid: Uint8Array;
  readonly options: ReadonlyMap<string, boolean>;
  readonly pinUvAuthProtocols: readonly number[];
  readonly maxCredentialCountInList?: number;
  readonly algorithms?: readonly number[];
  readonly remainingDiscoverableCredentials?: number;
}

/** authenticatorGetInfo (§6.4), the members a platform needs. */
export async function getInfo(port: CtapCommandPort): Promise<AuthenticatorInfo> {
  const m = await ctapCommand(port, CTAP2_GET_INFO, undefined, 'authenticatorGetInfo');
  const strings = (v: CborValue | undefined): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
  const options = new Map<string, boolean>();
  const rawOptions = m.get(0x04);
  if (isCborMap(rawOptions)) for (const [k, v] of rawOptions) if (typeof k === 'string' && typeof v === 'boolean') options.set(k, v);
  const protocols = m.get(0x06);
  const algs = m.get(0x0a);
  const count = m.get(0x07);
  const remaining = m.get(0x14);
  return {
    versions: strings(m.get(0x01)),
    extensions: strings(m.get(0x02)),
    aaguid: isBytes(m.get(0x03)) ? (m.get(0x03) as Uint8Array) : new Uint8Array(16),
    options,
    pinUvAuthProtocols: Array.isArray(protocols) ? protocols.filter((x): x is number => typeof x === 'number') : [],
    maxCredentialCountInList: typeof count === 'number' ? count : undefined,
    algorithms: Array.isArray(algs)
      ? algs.flatMap((a) => (isCborMap(a) && typeof a.get('alg') === 'number' ? [a.get('alg') as number] : []))
      : undefined,
    remainingDiscoverableCredentials: typeof remaining === 'number' ? remaining : undefined,
  };
}
