/**
 * authenticatorCredentialManagement (CTAP 2.1 PS 2021-06-15 §6.8; also reachable as the 0x41 "preview" command that
 * libfido2 always sends and python-fido2 uses for credentialMgmtPreview authenticators): getCredsMetadata,
 * enumerateRPsBegin/GetNextRP, enumerateCredentialsBegin/GetNextCredential, deleteCredential,
 * updateUserInformation.
 *
 * Every non-"GetNext" subcommand needs pinUvAuthParam = authenticate(pinUvAuthToken, subCommand ||
 * subCommandParams) with the cm permission — or, for command 0x41, a token from getPinToken (0x05), since a
 * platform that knows only the preview command knows only that way to get a token. The credential scope of the
 * request restricts everything to the credentials carrying that tag (counts, enumeration, delete, update).
 */
import type { RequestContext } from '../../../protocol/authenticator.ts';
import { encode, type CborValue } from '../../../protocol/cbor.ts';
import { RP_ID_HASH_LENGTH } from '../../../protocol/auth-data.ts';
import { PERMISSION_CM } from '../../../protocol/client-pin.ts';
import {
  CRED_MGMT_DELETE_CREDENTIAL,
  CRED_MGMT_ENUMERATE_CREDENTIALS_BEGIN,
  CRED_MGMT_ENUMERATE_CREDENTIALS_GET_NEXT_CREDENTIAL,
  CRED_MGMT_ENUMERATE_RPS_BEGIN,
  CRED_MGMT_ENUMERATE_RPS_GET_NEXT_RP,
  CRED_MGMT_GET_CREDS_METADATA,
  CRED_MGMT_PARAM_PIN_UV_AUTH_PARAM,
  CRED_MGMT_PARAM_PIN_UV_AUTH_PROTOCOL,
  CRED_MGMT_PARAM_SUBCOMMAND,
  CRED_MGMT_PARAM_SUBCOMMAND_PARAMS,
  CRED_MGMT_RESP_CRED_PROTECT,
  CRED_MGMT_RESP_CREDENTIAL_ID,
  CRED_MGMT_RESP_EXISTING_RESIDENT_CREDENTIALS_COUNT,
  CRED_MGMT_RESP_MAX_POSSIBLE_REMAINING_RESIDENT_CREDENTIALS_COUNT,
  CRED_MGMT_RESP_PUBLIC_KEY,
  CRED_MGMT_RESP_RP,
  CRED_MGMT_RESP_RP_ID_HASH,
  CRED_MGMT_RESP_TOTAL_CREDENTIALS,
  CRED_MGMT_RESP_TOTAL_RPS,
  CRED_MGMT_RESP_USER,
  CRED_MGMT_SUBPARAM_CREDENTIAL_ID,
  CRED_MGMT_SUBPARAM_RP_ID_HASH,
  CRED_MGMT_SUBPARAM_USER,
  CRED_MGMT_UPDATE_USER_INFORMATION,
} from '../../../protocol/credential-management.ts';
import {
  CTAP1_ERR_INVALID_PARAMETER,
  CTAP2_ERR_INVALID_SUBCOMMAND,
  CTAP2_ERR_MISSING_PARAMETER,
  CTAP2_ERR_NO_CREDENTIALS,
  CTAP2_ERR_NOT_ALLOWED,
  CTAP2_ERR_PIN_AUTH_INVALID,
  CTAP2_ERR_PUAT_REQUIRED,
} from '../../../protocol/ctap2.ts';
import { credentialPublicKeyMap } from './cose.ts';
import { constantTimeEqual, sha256 } from './crypto.ts';
import { cursorOwner, sameCursorOwner, type EnumerationCursor, type SoftDevice } from './device.ts';
import { fail } from './errors.ts';
import { MAX_STORED_STRING_BYTES, MAX_USER_ID_LENGTH } from './limits.ts';
import { truncateUtf8, type Params } from './parse.ts';
import { selectProtocol, verifyPinUvAuthParam } from './pin-auth.ts';
import type { ResidentCredential } from './state.ts';

/** No permission bit beyond a token in use (hasPermission(0) holds for any live token). */
const PERMISSION_NONE = 0;

function rpIdHashOf(rpId: string): Uint8Array {
  return sha256(Buffer.from(rpId, 'utf8'));
}

function userEntity(c: ResidentCredential): Map<CborValue, CborValue> {
  const u = new Map<CborValue, CborValue>([['id', c.userId]]);
  if (c.userName !== undefined) u.set('name', c.userName);
  if (c.userDisplayName !== undefined) u.set('displayName', c.userDisplayName);
  return u;
}

/**
 * `cursor` is the enumeration the request found pending (already taken off the device, see
 * SoftDevice.enumerationCursor): only the matching GetNext from the same credential scope and gateway that began
 * it continues it; every other request, whatever its answer, has ended it. `preview`: the request came as the
 * 0x41 prototype command, which also accepts a getPinToken token (see
 * PinUvAuthToken.grantsLegacyCredentialManagement).
 */
export async function credentialManagement(
  device: SoftDevice,
  params: Params,
  ctx: RequestContext,
  cursor: EnumerationCursor | undefined,
  preview = false,
): Promise<Uint8Array> {
  const sub = params.uint(CRED_MGMT_PARAM_SUBCOMMAND);
  const subParams = params.optSub(CRED_MGMT_PARAM_SUBCOMMAND_PARAMS);
  const scope = ctx.origin?.credentialScope;
  const owner = cursorOwner(ctx);

  if (sub === CRED_MGMT_ENUMERATE_RPS_GET_NEXT_RP || sub === CRED_MGMT_ENUMERATE_CREDENTIALS_GET_NEXT_CREDENTIAL) {
    const kind = sub === CRED_MGMT_ENUMERATE_RPS_GET_NEXT_RP ? 'rps' : 'credentials';
    if (cursor === undefined || cursor.kind !== kind || cursor.pending.length === 0) fail(CTAP2_ERR_NOT_ALLOWED);
    if (!sameCursorOwner(cursor.owner, owner)) fail(CTAP2_ERR_NOT_ALLOWED, 'another scope or gateway began this enumeration');
    const next = cursor.pending.shift() as Uint8Array;
    if (cursor.pending.length > 0) device.enumerationCursor = cursor;
    return next;
  }
  if (
    sub !== CRED_MGMT_GET_CREDS_METADATA &&
    sub !== CRED_MGMT_ENUMERATE_RPS_BEGIN &&
    sub !== CRED_MGMT_ENUMERATE_CREDENTIALS_BEGIN &&
    sub !== CRED_MGMT_DELETE_CREDENTIAL &&
    sub !== CRED_MGMT_UPDATE_USER_INFORMATION
  ) {
    fail(CTAP2_ERR_INVALID_SUBCOMMAND);
  }

  // Parse the subcommand's own parameters before authenticating (malformed → typed errors).
  const rpIdHash = sub === CRED_MGMT_ENUMERATE_CREDENTIALS_BEGIN ? requireSub(subParams).bytes(CRED_MGMT_SUBPARAM_RP_ID_HASH, { length: RP_ID_HASH_LENGTH }) : undefined;
  const credentialId =
    sub === CRED_MGMT_DELETE_CREDENTIAL || sub === CRED_MGMT_UPDATE_USER_INFORMATION
      ? requireSub(subParams).sub(CRED_MGMT_SUBPARAM_CREDENTIAL_ID).bytes('id')
      : undefined;
  const user = sub === CRED_MGMT_UPDATE_USER_INFORMATION ? requireSub(subParams).sub(CRED_MGMT_SUBPARAM_USER) : undefined;
  const userUpdate =
    user === undefined
      ? undefined
      : { id: user.bytes('id', { max: MAX_USER_ID_LENGTH }), name: user.optText('name'), displayName: user.optText('displayName') };

  // §6.8 step: authenticate subCommand || subCommandParams with a cm-permission token.
  const pinUvAuthParam = params.optBytes(CRED_MGMT_PARAM_PIN_UV_AUTH_PARAM);
  if (pinUvAuthParam === undefined) fail(CTAP2_ERR_PUAT_REQUIRED);
  const protocol = selectProtocol(device, params.optUint(CRED_MGMT_PARAM_PIN_UV_AUTH_PROTOCOL));
  const message = subParams === undefined ? Uint8Array.of(sub) : Buffer.concat([Uint8Array.of(sub), encode(subParams.map)]);
  // cm, or (0x41 only) a legacy getPinToken token: the only token a pre-2.1 platform can obtain.
  const permission = preview && device.token.grantsLegacyCredentialManagement() ? PERMISSION_NONE : PERMISSION_CM;
  verifyPinUvAuthParam(device, protocol, message, pinUvAuthParam, permission, undefined, false);
  const boundRpId = device.token.boundRpId();

  const visible = device.state.credentials.filter((c) => device.visible(c, scope));
  switch (sub) {
    case CRED_MGMT_GET_CREDS_METADATA:
      // Metadata and RP enumeration span all RPs: a token bound to one RP may not see them.
      if (boundRpId !== undefined) fail(CTAP2_ERR_PIN_AUTH_INVALID, 'token bound to an RP');
      return encode(
        new Map<CborValue, CborValue>([
          [CRED_MGMT_RESP_EXISTING_RESIDENT_CREDENTIALS_COUNT, visible.length],
          [CRED_MGMT_RESP_MAX_POSSIBLE_REMAINING_RESIDENT_CREDENTIALS_COUNT, device.remainingResidentSlots()],
        ]),
      );
    case CRED_MGMT_ENUMERATE_RPS_BEGIN: {
      if (boundRpId !== undefined) fail(CTAP2_ERR_PIN_AUTH_INVALID, 'token bound to an RP');
      const rps = new Map<string, ResidentCredential>();
      for (const c of visible) if (!rps.has(c.rpId) || c.rpName !== undefined) rps.set(c.rpId, c);
      if (rps.size === 0) fail(CTAP2_ERR_NO_CREDENTIALS);
      const responses = [...rps.values()].map((c, i) => {
        const rp = new Map<CborValue, CborValue>([['id', c.rpId]]);
        if (c.rpName !== undefined) rp.set('name', c.rpName);
        const m = new Map<CborValue, CborValue>([
          [CRED_MGMT_RESP_RP, rp],
          [CRED_MGMT_RESP_RP_ID_HASH, rpIdHashOf(c.rpId)],
        ]);
        if (i === 0) m.set(CRED_MGMT_RESP_TOTAL_RPS, rps.size);
        return encode(m);
      });
      if (responses.length > 1) device.enumerationCursor = { owner, kind: 'rps', pending: responses.slice(1) };
      return responses[0];
    }
    case CRED_MGMT_ENUMERATE_CREDENTIALS_BEGIN: {
      const hash = rpIdHash as Uint8Array;
      if (boundRpId !== undefined && !constantTimeEqual(rpIdHashOf(boundRpId), hash)) fail(CTAP2_ERR_PIN_AUTH_INVALID, 'rpId binding');
      const creds = visible.filter((c) => constantTimeEqual(rpIdHashOf(c.rpId), hash)).sort((a, b) => b.seq - a.seq);
      if (creds.length === 0) fail(CTAP2_ERR_NO_CREDENTIALS);
      const responses = creds.map((c, i) => {
        const key = device.credentialKey(c.id, c.alg, c.privateKey);
        const m = new Map<CborValue, CborValue>([
          [CRED_MGMT_RESP_USER, userEntity(c)],
          [CRED_MGMT_RESP_CREDENTIAL_ID, new Map<CborValue, CborValue>([['id', c.id], ['type', 'public-key']])],
          [CRED_MGMT_RESP_PUBLIC_KEY, credentialPublicKeyMap(key)],
          [CRED_MGMT_RESP_CRED_PROTECT, c.credProtect],
        ]);
        if (i === 0) m.set(CRED_MGMT_RESP_TOTAL_CREDENTIALS, creds.length);
        return encode(m);
      });
      if (responses.length > 1) device.enumerationCursor = { owner, kind: 'credentials', pending: responses.slice(1) };
      return responses[0];
    }
    case CRED_MGMT_DELETE_CREDENTIAL: {
      const cred = findVisible(device, credentialId as Uint8Array, scope);
      if (boundRpId !== undefined && boundRpId !== cred.rpId) fail(CTAP2_ERR_PIN_AUTH_INVALID, 'rpId binding');
      device.removeResident(cred);
      await device.save();
      return new Uint8Array(0);
    }
    default: {
      // CRED_MGMT_UPDATE_USER_INFORMATION
      const cred = findVisible(device, credentialId as Uint8Array, scope);
      if (boundRpId !== undefined && boundRpId !== cred.rpId) fail(CTAP2_ERR_PIN_AUTH_INVALID, 'rpId binding');
      const u = userUpdate as { id: Uint8Array; name?: string; displayName?: string };
      // §6.8.6: the user handle must be that of the credential.
      if (!constantTimeEqual(u.id, cred.userId)) fail(CTAP1_ERR_INVALID_PARAMETER, 'user id mismatch');
      // Absent members are removed (§6.8.6 "replace").
      cred.userName = u.name === undefined ? undefined : truncateUtf8(u.name, MAX_STORED_STRING_BYTES);
      cred.userDisplayName = u.displayName === undefined ? undefined : truncateUtf8(u.displayName, MAX_STORED_STRING_BYTES);
      await device.save();
      return new Uint8Array(0);
    }
  }
}

function requireSub(p: Params | undefined): Params {
  if (p === undefined) fail(CTAP2_ERR_MISSING_PARAMETER, 'subCommandParams missing');
  return p;
}

function findVisible(device: SoftDevice, id: Uint8Array, scope: string | undefined): ResidentCredential {
  const cred = device.findResident(id);
  if (cred === undefined || !device.visible(cred, scope)) fail(CTAP2_ERR_NO_CREDENTIALS);
  return cred;
}
