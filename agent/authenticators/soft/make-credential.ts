/**
 * authenticatorMakeCredential (CTAP 2.1 PS 2021-06-15 §6.1), following the numbered steps of §6.1.2 for an
 * authenticator with clientPin, no built-in UV, makeCredUvNotRqd = true and no enterprise attestation.
 *
 * Attestation: "packed" self attestation (alg + sig by the new credential's own key, no x5c; WebAuthn §8.2) by
 * default, or "none" when configured or when the platform's attestationFormatsPreference (0x0B) lists it first.
 */
import type { RequestContext } from '../../../protocol/authenticator.ts';
import { encode, type CborValue } from '../../../protocol/cbor.ts';
import {
  CTAP1_ERR_INVALID_PARAMETER,
  CTAP2_ERR_CBOR_UNEXPECTED_TYPE,
  CTAP2_ERR_CREDENTIAL_EXCLUDED,
  CTAP2_ERR_INVALID_OPTION,
  CTAP2_ERR_KEEPALIVE_CANCEL,
  CTAP2_ERR_KEY_STORE_FULL,
  CTAP2_ERR_PIN_INVALID,
  CTAP2_ERR_PIN_NOT_SET,
  CTAP2_ERR_PUAT_REQUIRED,
  CTAP2_ERR_UNSUPPORTED_ALGORITHM,
} from '../../../protocol/ctap2.ts';
import { FLAG_UP, FLAG_UV } from '../../../protocol/auth-data.ts';
import { PERMISSION_MC } from '../../../protocol/client-pin.ts';
import {
  MAKE_CREDENTIAL_PARAM_ATTESTATION_FORMATS_PREFERENCE as P_ATTESTATION_FORMATS_PREFERENCE,
  MAKE_CREDENTIAL_PARAM_CLIENT_DATA_HASH as P_CLIENT_DATA_HASH,
  MAKE_CREDENTIAL_PARAM_ENTERPRISE_ATTESTATION as P_ENTERPRISE_ATTESTATION,
  MAKE_CREDENTIAL_PARAM_EXCLUDE_LIST as P_EXCLUDE_LIST,
  MAKE_CREDENTIAL_PARAM_EXTENSIONS as P_EXTENSIONS,
  MAKE_CREDENTIAL_PARAM_OPTIONS as P_OPTIONS,
  MAKE_CREDENTIAL_PARAM_PIN_UV_AUTH_PARAM as P_PIN_UV_AUTH_PARAM,
  MAKE_CREDENTIAL_PARAM_PIN_UV_AUTH_PROTOCOL as P_PIN_UV_AUTH_PROTOCOL,
  MAKE_CREDENTIAL_PARAM_PUB_KEY_CRED_PARAMS as P_PUB_KEY_CRED_PARAMS,
  MAKE_CREDENTIAL_PARAM_RP as P_RP,
  MAKE_CREDENTIAL_PARAM_USER as P_USER,
  MAKE_CREDENTIAL_RESP_ATT_STMT as R_ATT_STMT,
  MAKE_CREDENTIAL_RESP_AUTH_DATA as R_AUTH_DATA,
  MAKE_CREDENTIAL_RESP_FMT as R_FMT,
} from '../../../protocol/ctap2.ts';
import { buildAuthData } from './auth-data.ts';
import { encodeCredentialPublicKey } from './cose.ts';
import { visibleInScope, wrapCredentialId } from './credential-id.ts';
import { AES_GCM_NONCE_LENGTH, constantTimeEqual, generateCredentialKey, isCredentialAlg, rpIdHashOf, sha256, signWith, type CredentialAlg } from './crypto.ts';
import type { SoftDevice } from './device.ts';
import { CtapError, fail } from './errors.ts';
import { acceptedCredBlob, makeCredentialExtensionOutputs, parseMakeCredentialExtensions } from './extensions.ts';
import {
  MAX_CREDENTIAL_COUNT_IN_LIST,
  MAX_PUB_KEY_CRED_PARAMS,
  MAX_RP_ID_BYTES,
  MAX_STORED_STRING_BYTES,
  MAX_USER_ID_LENGTH,
  OUR_MAX_CREDENTIAL_ID_LENGTH,
} from './limits.ts';
import { asParams, parseDescriptorList, truncateUtf8, type CredentialDescriptor, type Params } from './parse.ts';
import { selectProtocol, verifyPinUvAuthParam } from './pin-auth.ts';
import { CRED_PROTECT_UV_OPTIONAL, CRED_PROTECT_UV_REQUIRED, type CredProtect, type ResidentCredential } from './state.ts';

/** Options map: values must be booleans; unknown keys are ignored (§6.1.2 step 5). */
export function parseOptions(options: Params | undefined): { rk?: boolean; up?: boolean; uv?: boolean } {
  if (options === undefined) return {};
  for (const v of options.map.values()) if (typeof v !== 'boolean') fail(CTAP2_ERR_CBOR_UNEXPECTED_TYPE, 'option not bool');
  return { rk: options.optBool('rk'), up: options.optBool('up'), uv: options.optBool('uv') };
}

/** §6.1.2 step 3: the first supported "public-key" algorithm in the platform's order of preference. */
function chooseAlgorithm(items: CborValue[]): CredentialAlg {
  let chosen: CredentialAlg | undefined;
  for (const item of items) {
    const p = asParams(item);
    const type = p.text('type');
    const alg = p.int('alg');
    if (chosen === undefined && type === 'public-key' && isCredentialAlg(alg)) chosen = alg;
  }
  if (chosen === undefined) fail(CTAP2_ERR_UNSUPPORTED_ALGORITHM);
  return chosen;
}

function chooseFormat(device: SoftDevice, prefs: CborValue[] | undefined): 'packed' | 'none' {
  if (prefs !== undefined) {
    for (const f of prefs) {
      if (typeof f !== 'string') fail(CTAP2_ERR_CBOR_UNEXPECTED_TYPE, 'format not text');
      if (f === 'packed' || f === 'none') return f;
    }
  }
  return device.config.attestation;
}

/** §6.1.2 step 12: is this exclude-list entry one of ours for this RP (and, if resident, still stored)? */
function excludedCredProtect(device: SoftDevice, rpIdHash: Uint8Array, scope: string | undefined, d: CredentialDescriptor): CredProtect | undefined {
  if (d.type !== 'public-key') return undefined;
  // A stored credential (also a restored or imported one, whose id may not unwrap) is judged by its record.
  const stored = device.findResident(d.id);
  if (stored !== undefined) {
    return device.visible(stored, scope) && constantTimeEqual(sha256(Buffer.from(stored.rpId, 'utf8')), rpIdHash) ? stored.credProtect : undefined;
  }
  const w = device.openCredentialId(rpIdHash, d.id);
  if (w === null || w.resident || !visibleInScope(w, scope)) return undefined; // w.resident: deleted
  return w.credProtect;
}

export async function makeCredential(device: SoftDevice, params: Params, ctx: RequestContext): Promise<Uint8Array> {
  // ---- Parse everything first: malformed requests fail before any user interaction or state change.
  const clientDataHash = params.bytes(P_CLIENT_DATA_HASH, { length: 32 });
  const rp = params.sub(P_RP);
  const rpId = rp.text('id', MAX_RP_ID_BYTES);
  const rpNameRaw = rp.optText('name');
  const user = params.sub(P_USER);
  const userId = user.bytes('id', { max: MAX_USER_ID_LENGTH });
  const userNameRaw = user.optText('name');
  const userDisplayNameRaw = user.optText('displayName');
  const pubKeyCredParams = params.array(P_PUB_KEY_CRED_PARAMS, MAX_PUB_KEY_CRED_PARAMS);
  const excludeList = parseDescriptorList(params.optArray(P_EXCLUDE_LIST, MAX_CREDENTIAL_COUNT_IN_LIST) ?? [], OUR_MAX_CREDENTIAL_ID_LENGTH);
  const ext = parseMakeCredentialExtensions(params.optSub(P_EXTENSIONS));
  const options = parseOptions(params.optSub(P_OPTIONS));
  const pinUvAuthParam = params.optBytes(P_PIN_UV_AUTH_PARAM);
  const pinUvAuthProtocol = params.optUint(P_PIN_UV_AUTH_PROTOCOL);
  const enterpriseAttestation = params.optUint(P_ENTERPRISE_ATTESTATION);
  const formatPrefs = params.optArray(P_ATTESTATION_FORMATS_PREFERENCE, 16);
  const scope = ctx.origin?.credentialScope;
  const presenceRequest = { action: 'makeCredential' as const, rpId, userName: userNameRaw, origin: ctx.origin };

  // Step 1: a zero-length pinUvAuthParam is the platform's "touch to select this authenticator" probe.
  if (pinUvAuthParam !== undefined && pinUvAuthParam.length === 0) {
    await device.requirePresence(ctx, presenceRequest);
    fail(device.state.pin !== undefined ? CTAP2_ERR_PIN_INVALID : CTAP2_ERR_PIN_NOT_SET);
  }
  // Step 2: protocol present and supported.
  const protocol = pinUvAuthParam !== undefined ? selectProtocol(device, pinUvAuthProtocol) : undefined;
  // Step 3: algorithm.
  const alg = chooseAlgorithm(pubKeyCredParams);
  // Step 5: options. No built-in UV: "uv": true (without pinUvAuthParam) is an invalid option.
  if (pinUvAuthParam === undefined && options.uv === true) fail(CTAP2_ERR_INVALID_OPTION, 'no built-in UV');
  const rk = options.rk ?? false;
  if (options.up === false) fail(CTAP2_ERR_INVALID_OPTION, 'up=false');
  // Step 7 (makeCredUvNotRqd = true): a discoverable credential on a PIN-protected authenticator needs a token.
  if (device.state.pin !== undefined && pinUvAuthParam === undefined && rk) fail(CTAP2_ERR_PUAT_REQUIRED);
  // Step 9: we are not enterprise-attestation capable.
  if (enterpriseAttestation !== undefined) fail(CTAP1_ERR_INVALID_PARAMETER, 'enterpriseAttestation');
  const fmt = chooseFormat(device, formatPrefs);

  // Step 11: verify the pinUvAuthParam → uv.
  let uv = false;
  if (pinUvAuthParam !== undefined && protocol !== undefined) {
    verifyPinUvAuthParam(device, protocol, clientDataHash, pinUvAuthParam, PERMISSION_MC, rpId, true);
    uv = true;
  }

  const rpIdHash = rpIdHashOf(rpId);
  // Step 12: excludeList.
  for (const d of excludeList) {
    const level = excludedCredProtect(device, rpIdHash, scope, d);
    if (level === undefined) continue;
    if (level === CRED_PROTECT_UV_REQUIRED && !uv) continue; // invisible without UV (§12.1)
    const upAlready = pinUvAuthParam !== undefined && device.token.getUserPresentFlagValue(device.clock.now());
    if (!upAlready) {
      try {
        await device.requirePresence(ctx, presenceRequest);
      } catch (e) {
        // "Regardless of whether user presence is obtained ... return CTAP2_ERR_CREDENTIAL_EXCLUDED" — unless cancelled.
        if (e instanceof CtapError && e.status === CTAP2_ERR_KEEPALIVE_CANCEL) throw e;
      }
    }
    fail(CTAP2_ERR_CREDENTIAL_EXCLUDED);
  }

  // Step 14: user presence (a token may already carry it).
  if (!(pinUvAuthParam !== undefined && device.token.getUserPresentFlagValue(device.clock.now()))) {
    await device.requirePresence(ctx, presenceRequest);
  }
  if (pinUvAuthParam !== undefined) {
    device.token.clearUserPresentFlag();
    device.token.clearUserVerifiedFlag();
    device.token.clearPermissionsExceptLbw();
  }

  // Step 15: extensions.
  const credProtect: CredProtect = ext.credProtect ?? CRED_PROTECT_UV_OPTIONAL;
  const credBlob = acceptedCredBlob(ext);
  const extensionOutputs = makeCredentialExtensionOutputs(device, rpId, ext, credProtect);

  // Step 16/17: the key pair and the credential.
  if (rk && device.remainingResidentSlots() === 0) {
    // An overwrite of the same (rp, user) does not need a new slot.
    const replaces = device.state.credentials.some((c) => c.rpId === rpId && c.scope === scope && Buffer.compare(c.userId, userId) === 0);
    if (!replaces) fail(CTAP2_ERR_KEY_STORE_FULL);
  }
  const key = generateCredentialKey(alg);
  const credentialId = wrapCredentialId(device.wrapKey, device.random.bytes(AES_GCM_NONCE_LENGTH), rpIdHash, scope, {
    alg,
    secret: key.secret,
    resident: rk,
    hmacSecret: ext.hmacSecret,
    credProtect,
    credBlob: rk ? undefined : credBlob,
  });
  device.keyCache.set(Buffer.from(credentialId).toString('latin1'), key);

  let signCount: number;
  if (rk) {
    for (const old of device.state.credentials.filter((c) => c.rpId === rpId && c.scope === scope && Buffer.compare(c.userId, userId) === 0)) {
      device.removeResident(old);
    }
    const cred: ResidentCredential = {
      id: credentialId,
      rpId,
      rpName: rpNameRaw === undefined ? undefined : truncateUtf8(rpNameRaw, MAX_STORED_STRING_BYTES),
      userId,
      userName: userNameRaw === undefined ? undefined : truncateUtf8(userNameRaw, MAX_STORED_STRING_BYTES),
      userDisplayName: userDisplayNameRaw === undefined ? undefined : truncateUtf8(userDisplayNameRaw, MAX_STORED_STRING_BYTES),
      alg,
      privateKey: key.secret,
      credProtect,
      credBlob,
      hmacSecret: ext.hmacSecret,
      credRandom: ext.hmacSecret ? device.random.bytes(64) : undefined,
      signCount: 0,
      createdAt: device.clock.now(),
      seq: device.state.nextSeq++,
      scope,
    };
    device.addResident(cred);
    signCount = 0;
    await device.save();
  } else {
    signCount = await device.nextGlobalCounter();
  }

  const authData = buildAuthData(
    rpIdHash,
    FLAG_UP | (uv ? FLAG_UV : 0),
    signCount,
    { aaguid: device.config.aaguid, credentialId, publicKey: encodeCredentialPublicKey(key) },
    extensionOutputs,
  );
  const attStmt =
    fmt === 'packed'
      ? new Map<CborValue, CborValue>([
          ['alg', alg],
          ['sig', signWith(key, Buffer.concat([authData, clientDataHash]))],
        ])
      : new Map<CborValue, CborValue>();
  return encode(
    new Map<CborValue, CborValue>([
      [R_FMT, fmt],
      [R_AUTH_DATA, authData],
      [R_ATT_STMT, attStmt],
    ]),
  );
}
