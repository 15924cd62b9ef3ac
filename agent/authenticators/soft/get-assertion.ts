/**
 * authenticatorGetAssertion (CTAP 2.1 PS 2021-06-15 §6.2) and authenticatorGetNextAssertion (§6.3), following the
 * numbered steps of §6.2.2 for an authenticator with clientPin and no built-in UV and no display.
 *
 *   - allowList: ids that are not ours (other authenticators, other RPs/scopes, tampered) are skipped;
 *   - no allowList: discoverable credentials of the RP visible in the request's scope, most recent first;
 *     numberOfCredentials is returned (only then, and only when > 1) and the rest are served by
 *     getNextAssertion within 30 s (clock) of the previous call;
 *   - credProtect (§12.1): level 3 needs UV; level 2 needs UV or an allowList;
 *   - user entity: discoverable credentials return the user id; name/displayName only when UV was done and
 *     several accounts are being returned (§6.2.2 step 12 "user identifiable information" rule);
 *   - up=false (silent assertion, §6.2.2 step 9): no presence prompt, UP flag clear — the probe browsers use on
 *     allow and exclude lists; the audit recognises such answers with silent-signature.ts.
 */
import type { RequestContext } from '../../../protocol/authenticator.ts';
import { encode, type CborValue } from '../../../protocol/cbor.ts';
import {
  CTAP2_ERR_INVALID_OPTION,
  CTAP2_ERR_NO_CREDENTIALS,
  CTAP2_ERR_NOT_ALLOWED,
  CTAP2_ERR_PIN_INVALID,
  CTAP2_ERR_PIN_NOT_SET,
  CTAP2_ERR_UNSUPPORTED_OPTION,
} from '../../../protocol/ctap2.ts';
import { FLAG_UP, FLAG_UV } from '../../../protocol/auth-data.ts';
import { PERMISSION_GA } from '../../../protocol/client-pin.ts';
import {
  GET_ASSERTION_PARAM_ALLOW_LIST as P_ALLOW_LIST,
  GET_ASSERTION_PARAM_CLIENT_DATA_HASH as P_CLIENT_DATA_HASH,
  GET_ASSERTION_PARAM_EXTENSIONS as P_EXTENSIONS,
  GET_ASSERTION_PARAM_OPTIONS as P_OPTIONS,
  GET_ASSERTION_PARAM_PIN_UV_AUTH_PARAM as P_PIN_UV_AUTH_PARAM,
  GET_ASSERTION_PARAM_PIN_UV_AUTH_PROTOCOL as P_PIN_UV_AUTH_PROTOCOL,
  GET_ASSERTION_PARAM_RP_ID as P_RP_ID,
  GET_ASSERTION_RESP_AUTH_DATA as R_AUTH_DATA,
  GET_ASSERTION_RESP_CREDENTIAL as R_CREDENTIAL,
  GET_ASSERTION_RESP_NUMBER_OF_CREDENTIALS as R_NUMBER_OF_CREDENTIALS,
  GET_ASSERTION_RESP_SIGNATURE as R_SIGNATURE,
  GET_ASSERTION_RESP_USER as R_USER,
} from '../../../protocol/ctap2.ts';
import { buildAuthData } from './auth-data.ts';
import { visibleInScope } from './credential-id.ts';
import { rpIdHashOf, signWith, type CredentialAlg } from './crypto.ts';
import { cursorOwner, sameCursorOwner, type AssertionCursor, type SoftDevice } from './device.ts';
import { fail } from './errors.ts';
import {
  EXT_CRED_BLOB,
  EXT_HMAC_SECRET,
  hmacSecretOutput,
  parseGetAssertionExtensions,
  prepareHmacSecret,
  type HmacSecretInput,
} from './extensions.ts';
import { MAX_CREDENTIAL_COUNT_IN_LIST, MAX_RP_ID_BYTES, OUR_MAX_CREDENTIAL_ID_LENGTH } from './limits.ts';
import { parseOptions } from './make-credential.ts';
import { parseDescriptorList, type Params } from './parse.ts';
import { selectProtocol, verifyPinUvAuthParam } from './pin-auth.ts';
import {
  CRED_PROTECT_UV_OPTIONAL_WITH_ID_LIST,
  CRED_PROTECT_UV_REQUIRED,
  type CredProtect,
  type ResidentCredential,
} from './state.ts';

/** §6.3: getNextAssertion must come within 30 s of the previous (Next)Assertion. */
export const GET_NEXT_ASSERTION_TIMEOUT_MS = 30_000;

/** One applicable credential: everything needed to sign with it. */
interface Candidate {
  readonly id: Uint8Array;
  readonly alg: CredentialAlg;
  readonly secret: Uint8Array;
  readonly credProtect: CredProtect;
  readonly hmacSecret: boolean;
  readonly credBlob?: Uint8Array;
  readonly resident?: ResidentCredential;
}

function residentCandidate(c: ResidentCredential): Candidate {
  return {
    id: c.id,
    alg: c.alg,
    secret: c.privateKey,
    credProtect: c.credProtect,
    hmacSecret: c.hmacSecret,
    credBlob: c.credBlob,
    resident: c,
  };
}

/** Parameters fixed by the getAssertion call and reused by getNextAssertion. */
interface AssertionRun {
  readonly rpIdHash: Uint8Array;
  readonly clientDataHash: Uint8Array;
  readonly up: boolean;
  readonly uv: boolean;
  readonly hmac?: HmacSecretInput;
  readonly credBlob: boolean;
  readonly numberOfCredentials: number;
  readonly discoverable: boolean;
}

async function respond(device: SoftDevice, run: AssertionRun, cand: Candidate, first: boolean): Promise<Uint8Array> {
  const ext = new Map<CborValue, CborValue>();
  if (run.credBlob) ext.set(EXT_CRED_BLOB, cand.credBlob ?? new Uint8Array(0));
  if (run.hmac !== undefined && cand.hmacSecret) {
    const credRandom = cand.resident?.credRandom
      ? run.uv
        ? cand.resident.credRandom.subarray(32, 64)
        : cand.resident.credRandom.subarray(0, 32)
      : device.derivedCredRandom(cand.secret, run.uv);
    ext.set(EXT_HMAC_SECRET, hmacSecretOutput(run.hmac, credRandom));
  }
  let signCount: number;
  if (cand.resident !== undefined) {
    // An imported (CXF) passkey keeps a constant 0 counter; every other one counts per credential.
    if (cand.resident.zeroCounter !== true) cand.resident.signCount += 1;
    cand.resident.lastUsedAt = device.clock.now();
    signCount = cand.resident.signCount;
    await device.save();
  } else {
    signCount = await device.nextGlobalCounter();
  }
  const authData = buildAuthData(
    run.rpIdHash,
    (run.up ? FLAG_UP : 0) | (run.uv ? FLAG_UV : 0),
    signCount,
    undefined,
    ext.size > 0 ? encode(ext) : undefined,
  );
  const key = device.credentialKey(cand.id, cand.alg, cand.secret);
  const signature = signWith(key, Buffer.concat([authData, run.clientDataHash]));
  const response = new Map<CborValue, CborValue>([
    [R_CREDENTIAL, new Map<CborValue, CborValue>([['id', cand.id], ['type', 'public-key']])],
    [R_AUTH_DATA, authData],
    [R_SIGNATURE, signature],
  ]);
  if (cand.resident !== undefined) {
    const user = new Map<CborValue, CborValue>([['id', cand.resident.userId]]);
    if (run.uv && run.numberOfCredentials > 1) {
      if (cand.resident.userName !== undefined) user.set('name', cand.resident.userName);
      if (cand.resident.userDisplayName !== undefined) user.set('displayName', cand.resident.userDisplayName);
    }
    response.set(R_USER, user);
  }
  if (first && run.discoverable && run.numberOfCredentials > 1) response.set(R_NUMBER_OF_CREDENTIALS, run.numberOfCredentials);
  return encode(response);
}

export async function getAssertion(device: SoftDevice, params: Params, ctx: RequestContext): Promise<Uint8Array> {
  const rpId = params.text(P_RP_ID, MAX_RP_ID_BYTES);
  const clientDataHash = params.bytes(P_CLIENT_DATA_HASH, { length: 32 });
  const allowList = parseDescriptorList(params.optArray(P_ALLOW_LIST, MAX_CREDENTIAL_COUNT_IN_LIST) ?? [], OUR_MAX_CREDENTIAL_ID_LENGTH);
  const extIn = parseGetAssertionExtensions(params.optSub(P_EXTENSIONS));
  const options = parseOptions(params.optSub(P_OPTIONS));
  const pinUvAuthParam = params.optBytes(P_PIN_UV_AUTH_PARAM);
  const pinUvAuthProtocol = params.optUint(P_PIN_UV_AUTH_PROTOCOL);
  const scope = ctx.origin?.credentialScope;
  const presenceRequest = { action: 'getAssertion' as const, rpId, origin: ctx.origin };

  // Step 1: the "touch to select" probe.
  if (pinUvAuthParam !== undefined && pinUvAuthParam.length === 0) {
    await device.requirePresence(ctx, presenceRequest);
    fail(device.state.pin !== undefined ? CTAP2_ERR_PIN_INVALID : CTAP2_ERR_PIN_NOT_SET);
  }
  // Step 2.
  const protocol = pinUvAuthParam !== undefined ? selectProtocol(device, pinUvAuthProtocol) : undefined;
  // Step 4: options.
  if (pinUvAuthParam === undefined && options.uv === true) fail(CTAP2_ERR_INVALID_OPTION, 'no built-in UV');
  if (options.rk !== undefined) fail(CTAP2_ERR_UNSUPPORTED_OPTION, 'rk in getAssertion');
  const up = options.up ?? true;

  // Step 6: pinUvAuthParam → uv.
  let uv = false;
  if (pinUvAuthParam !== undefined && protocol !== undefined) {
    verifyPinUvAuthParam(device, protocol, clientDataHash, pinUvAuthParam, PERMISSION_GA, rpId, true);
    uv = true;
  }

  // Step 7: applicable credentials.
  const rpIdHash = rpIdHashOf(rpId);
  const candidates: Candidate[] = [];
  const discoverable = allowList.length === 0;
  if (!discoverable) {
    for (const d of allowList) {
      if (d.type !== 'public-key') continue;
      // A stored (discoverable) credential is found by its id and judged by its record: made here, restored, or
      // imported (an imported id is another manager's and does not unwrap). Else the id must unwrap as ours.
      const stored = device.findResident(d.id);
      let cand: Candidate;
      if (stored !== undefined) {
        if (stored.rpId !== rpId || !device.visible(stored, scope)) continue;
        cand = residentCandidate(stored);
      } else {
        const w = device.openCredentialId(rpIdHash, d.id);
        if (w === null || w.resident || !visibleInScope(w, scope)) continue; // w.resident: deleted
        cand = { id: d.id, alg: w.alg, secret: w.secret, credProtect: w.credProtect, hmacSecret: w.hmacSecret, credBlob: w.credBlob };
      }
      if (cand.credProtect === CRED_PROTECT_UV_REQUIRED && !uv) continue;
      candidates.push(cand);
      // Step 11: with an allowList any one applicable credential is selected.
      break;
    }
  } else {
    const found = device.state.credentials
      .filter((c) => c.rpId === rpId && device.visible(c, scope))
      .filter((c) => uv || (c.credProtect !== CRED_PROTECT_UV_REQUIRED && c.credProtect !== CRED_PROTECT_UV_OPTIONAL_WITH_ID_LIST))
      .sort((a, b) => b.seq - a.seq);
    for (const c of found) candidates.push(residentCandidate(c));
  }
  if (candidates.length === 0) fail(CTAP2_ERR_NO_CREDENTIALS);

  // Step 9: user presence (the prompt names the account when there is exactly one).
  if (up) {
    if (!(pinUvAuthParam !== undefined && device.token.getUserPresentFlagValue(device.clock.now()))) {
      const only = candidates.length === 1 ? candidates[0].resident : undefined;
      await device.requirePresence(ctx, { ...presenceRequest, userName: only?.userName });
    }
    if (pinUvAuthParam !== undefined) {
      device.token.clearUserPresentFlag();
      device.token.clearUserVerifiedFlag();
      device.token.clearPermissionsExceptLbw();
    }
  }

  // Step 10: extensions. §12.5: hmac-secret with "up" false → CTAP2_ERR_UNSUPPORTED_OPTION.
  if (extIn.hmacSecret !== undefined && !up) fail(CTAP2_ERR_UNSUPPORTED_OPTION, 'hmac-secret needs up');
  const hmac = extIn.hmacSecret !== undefined ? prepareHmacSecret(device, extIn.hmacSecret) : undefined;

  const run: AssertionRun = {
    rpIdHash,
    clientDataHash,
    up,
    uv,
    hmac,
    credBlob: extIn.credBlob,
    numberOfCredentials: candidates.length,
    discoverable,
  };
  // Step 12: remember the rest for authenticatorGetNextAssertion.
  if (discoverable && candidates.length > 1) {
    const rest = candidates.slice(1);
    device.assertionCursor = {
      owner: cursorOwner(ctx),
      remaining: () => rest.length,
      respondNext: () => {
        const c = rest.shift();
        if (c === undefined) fail(CTAP2_ERR_NOT_ALLOWED);
        return respond(device, run, c, false);
      },
      lastAt: device.clock.now(),
    };
  }
  return respond(device, run, candidates[0], true);
}

/**
 * authenticatorGetNextAssertion (§6.3). `cursor` is the sequence the request found pending (already taken off the
 * device, see SoftDevice.assertionCursor): it continues only for the same credential scope and gateway that
 * began it, within 30 s; anything else → CTAP2_ERR_NOT_ALLOWED and the sequence is over.
 */
export async function getNextAssertion(device: SoftDevice, cursor: AssertionCursor | undefined, ctx: RequestContext): Promise<Uint8Array> {
  if (cursor === undefined || cursor.remaining() === 0) fail(CTAP2_ERR_NOT_ALLOWED);
  if (!sameCursorOwner(cursor.owner, cursorOwner(ctx))) fail(CTAP2_ERR_NOT_ALLOWED, 'another scope or gateway began this sequence');
  const now = device.clock.now();
  if (now - cursor.lastAt > GET_NEXT_ASSERTION_TIMEOUT_MS || now < cursor.lastAt) fail(CTAP2_ERR_NOT_ALLOWED, 'getNextAssertion timer expired');
  cursor.lastAt = now;
  const out = await cursor.respondNext();
  if (cursor.remaining() > 0) device.assertionCursor = cursor;
  return out;
}
