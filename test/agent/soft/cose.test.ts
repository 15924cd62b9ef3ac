/** COSE_Key encoding of credential public keys: the ES256 byte template equals the canonical encoder's output. */
import { describe, expect, it } from 'vitest';
import { encode } from '../../../protocol/cbor.ts';
import { credentialPublicKeyMap, encodeCredentialPublicKey, ES256_COSE_KEY_LENGTH } from '../../../agent/authenticators/soft/cose.ts';
import { COSE_ALG_EDDSA, COSE_ALG_ES256, generateCredentialKey } from '../../../agent/authenticators/soft/crypto.ts';

describe('encodeCredentialPublicKey', () => {
  it('ES256: the template is the canonical CBOR of the COSE_Key map', () => {
    for (let i = 0; i < 20; i++) {
      const key = generateCredentialKey(COSE_ALG_ES256);
      const bytes = encodeCredentialPublicKey(key);
      expect(bytes.length).toBe(ES256_COSE_KEY_LENGTH);
      expect(Buffer.from(bytes)).toEqual(Buffer.from(encode(credentialPublicKeyMap(key))));
    }
  });

  it('EdDSA: encoded from the map', () => {
    const key = generateCredentialKey(COSE_ALG_EDDSA);
    expect(Buffer.from(encodeCredentialPublicKey(key))).toEqual(Buffer.from(encode(credentialPublicKeyMap(key))));
  });
});
