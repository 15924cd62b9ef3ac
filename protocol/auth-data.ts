/**
 * Authenticator data (WebAuthn Level 2 §6.1, carried by CTAP 2.1 PS 2021-06-15 §6.1 / §6.2 responses as authData):
 *
 *     rpIdHash (32) || flags (1) || signCount (4, big-endian)
 *       || [attestedCredentialData: aaguid (16) || credentialIdLength (2) || credentialId || credentialPublicKey]
 *       || [extensions (CBOR map)]
 *
 * The layout and flag bits, shared by the soft authenticator (which builds it) and the agent's audit (which reads
 * the UP flag of any authenticator's answer), as python-fido2's AuthenticatorData (fido2/webauthn.py) owns FLAG.
 */

/** Length of rpIdHash: SHA-256 of the RP ID (also the U2F application parameter and credential management's rpIDHash). */
export const RP_ID_HASH_LENGTH = 32;
/** Offset of the flags byte. */
export const AUTH_DATA_FLAGS_OFFSET = RP_ID_HASH_LENGTH;
/** Offset of signCount (u32 big-endian). */
export const AUTH_DATA_SIGN_COUNT_OFFSET = AUTH_DATA_FLAGS_OFFSET + 1;
/** rpIdHash + flags + signCount: the shortest authenticator data. */
export const AUTH_DATA_MIN_LENGTH = AUTH_DATA_SIGN_COUNT_OFFSET + 4;
/** attestedCredentialData's aaguid length. */
export const AAGUID_LENGTH = 16;
/** attestedCredentialData's credentialIdLength field length (u16 big-endian). */
export const CREDENTIAL_ID_LENGTH_FIELD = 2;

// §6.1 flags bits.
/** UP: user present. */
export const FLAG_UP = 0x01;
/** UV: user verified. */
export const FLAG_UV = 0x04;
/** AT: attested credential data included. */
export const FLAG_AT = 0x40;
/** ED: extension data included. */
export const FLAG_ED = 0x80;
