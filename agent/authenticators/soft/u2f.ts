/**
 * CTAP1/U2F over CTAPHID_MSG (FIDO U2F Raw Message Formats v1.2; CTAP 2.1 PS 2021-06-15 §10 and §11.2.9.1.1):
 * U2F_REGISTER, U2F_AUTHENTICATE (check-only 0x07, enforce-user-presence 0x03, and dont-enforce 0x08, which
 * is answered like 0x03: the soft authenticator never signs over U2F without a prompt) and U2F_VERSION, with
 * short and extended ISO 7816-4 APDU encodings, read by protocol/u2f.ts's parseApdu (the parser the agent's
 * policy reads the same APDU with).
 *
 * Key handles are credential ids in the same wrapped format as CTAP2 non-resident credentials, bound to the
 * application parameter (== rpIdHash), so — as §10 requires — a U2F-registered credential also works with
 * CTAP2 getAssertion when rpId hashes to the application parameter, and a CTAP2 ES256 credential works here.
 */
import { sign as nodeSign, type KeyObject } from 'node:crypto';
import type { RequestContext } from '../../../protocol/authenticator.ts';
import {
  parseApdu,
  SW_CLA_NOT_SUPPORTED,
  SW_CONDITIONS_NOT_SATISFIED,
  SW_INS_NOT_SUPPORTED,
  SW_NO_ERROR,
  SW_WRONG_DATA,
  SW_WRONG_LENGTH,
  U2F_APPLICATION_LENGTH,
  U2F_AUTH_CHECK_ONLY,
  U2F_AUTH_DONT_ENFORCE_USER_PRESENCE,
  U2F_AUTH_ENFORCE_USER_PRESENCE,
  U2F_AUTHENTICATE,
  U2F_CHALLENGE_LENGTH,
  U2F_REGISTER,
  U2F_REGISTER_ID,
  U2F_USER_PRESENT,
  U2F_VERSION,
  U2F_VERSION_STRING,
  withStatusWord as sw,
} from '../../../protocol/u2f.ts';
import { visibleInScope, wrapCredentialId } from './credential-id.ts';
import { AES_GCM_NONCE_LENGTH, COSE_ALG_ES256, generateCredentialKey, signWith } from './crypto.ts';
import type { SoftDevice } from './device.ts';
import { u2fPresenceStatus } from '../../presence/outcome-status.ts';
import { CRED_PROTECT_UV_OPTIONAL, CRED_PROTECT_UV_REQUIRED } from './state.ts';

/** Request data: challenge parameter, then application parameter (§4.1 / §5.1). */
const APPLICATION_END = U2F_CHALLENGE_LENGTH + U2F_APPLICATION_LENGTH;
/** U2F_AUTHENTICATE request data: ... then the key handle length byte, then the key handle (§5.1). */
const KEY_HANDLE_LENGTH_OFFSET = APPLICATION_END;

export async function u2f(device: SoftDevice, payload: Uint8Array, ctx: RequestContext, attestation: () => Promise<{ certificate: Uint8Array; key: KeyObject }>): Promise<Uint8Array> {
  const apdu = parseApdu(payload);
  if (apdu === null) return sw(SW_WRONG_LENGTH);
  if (apdu.cla !== 0) return sw(SW_CLA_NOT_SUPPORTED);
  const scope = ctx.origin?.credentialScope;
  switch (apdu.ins) {
    case U2F_VERSION:
      if (apdu.data.length !== 0) return sw(SW_WRONG_LENGTH);
      return sw(SW_NO_ERROR, Buffer.from(U2F_VERSION_STRING, 'ascii'));

    case U2F_REGISTER: {
      if (apdu.data.length !== APPLICATION_END) return sw(SW_WRONG_LENGTH);
      const challenge = apdu.data.subarray(0, U2F_CHALLENGE_LENGTH);
      const application = apdu.data.subarray(U2F_CHALLENGE_LENGTH, APPLICATION_END);
      const up = await device.checkPresence(ctx, { action: 'u2fRegister', origin: ctx.origin });
      if (up !== 'approved') return sw(u2fPresenceStatus(up));
      const key = generateCredentialKey(COSE_ALG_ES256);
      const keyHandle = wrapCredentialId(device.wrapKey, device.random.bytes(AES_GCM_NONCE_LENGTH), application, scope, {
        alg: COSE_ALG_ES256,
        secret: key.secret,
        resident: false,
        hmacSecret: false,
        credProtect: CRED_PROTECT_UV_OPTIONAL,
      });
      // §4.3: the user public key is an uncompressed P-256 point (0x04 || x || y); the signed data starts with
      // a byte reserved for future use, 0x00.
      const publicKey = Buffer.concat([Uint8Array.of(0x04), key.publicRaw]);
      const att = await attestation();
      const signature = nodeSign('sha256', Buffer.concat([Uint8Array.of(0x00), application, challenge, keyHandle, publicKey]), att.key);
      return sw(
        SW_NO_ERROR,
        Buffer.concat([Uint8Array.of(U2F_REGISTER_ID), publicKey, Uint8Array.of(keyHandle.length), keyHandle, att.certificate, signature]),
      );
    }

    case U2F_AUTHENTICATE: {
      if (apdu.data.length < KEY_HANDLE_LENGTH_OFFSET + 1) return sw(SW_WRONG_LENGTH);
      const challenge = apdu.data.subarray(0, U2F_CHALLENGE_LENGTH);
      const application = apdu.data.subarray(U2F_CHALLENGE_LENGTH, APPLICATION_END);
      const khLength = apdu.data[KEY_HANDLE_LENGTH_OFFSET];
      const keyHandleStart = KEY_HANDLE_LENGTH_OFFSET + 1;
      if (apdu.data.length !== keyHandleStart + khLength) return sw(SW_WRONG_LENGTH);
      const keyHandle = apdu.data.subarray(keyHandleStart, keyHandleStart + khLength);
      const opened = device.openCredentialId(application, keyHandle);
      const w = opened !== null && visibleInScope(opened, scope) ? opened : null;
      const resident = w?.resident ? device.findResident(keyHandle) : undefined;
      // Not ours, deleted, not ECDSA, or needing UV (which U2F cannot provide): "wrong data" (§5.1).
      if (w === null || w.alg !== COSE_ALG_ES256 || w.credProtect === CRED_PROTECT_UV_REQUIRED || (w.resident && resident === undefined)) {
        return sw(SW_WRONG_DATA);
      }
      // Check-only (0x07) signs nothing: "the key handle is ours" is SW_CONDITIONS_NOT_SATISFIED (§5.1).
      if (apdu.p1 === U2F_AUTH_CHECK_ONLY) return sw(SW_CONDITIONS_NOT_SATISFIED);
      if (apdu.p1 !== U2F_AUTH_ENFORCE_USER_PRESENCE && apdu.p1 !== U2F_AUTH_DONT_ENFORCE_USER_PRESENCE) return sw(SW_WRONG_DATA);
      // "dont-enforce-user-presence-and-sign" (0x08) only allows signing without presence; the soft
      // authenticator never signs a U2F challenge without asking (no client needs 0x08 from a CTAP2
      // authenticator: a platform that wants a silent probe sends CTAP2 getAssertion with up=false). So 0x08 is
      // answered exactly like 0x03: a prompt, and the user-presence bit set in the signed data.
      const up = await device.checkPresence(ctx, { action: 'u2fAuthenticate', origin: ctx.origin });
      if (up !== 'approved') return sw(u2fPresenceStatus(up));
      const userPresent = true;
      let counter: number;
      if (resident !== undefined) {
        resident.signCount += 1;
        counter = resident.signCount;
        await device.save();
      } else {
        counter = await device.nextGlobalCounter();
      }
      const flagsAndCounter = Buffer.alloc(5);
      flagsAndCounter[0] = userPresent ? U2F_USER_PRESENT : 0x00;
      flagsAndCounter.writeUInt32BE(counter >>> 0, 1);
      const key = device.credentialKey(keyHandle, w.alg, w.secret);
      const signature = signWith(key, Buffer.concat([application, flagsAndCounter, challenge]));
      return sw(SW_NO_ERROR, Buffer.concat([flagsAndCounter, signature]));
    }

    default:
      return sw(SW_INS_NOT_SUPPORTED);
  }
}
