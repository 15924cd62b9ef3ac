/**
 * Credential key generation (agent/authenticators/soft/crypto.ts): a generated P-256 key's stored scalar and
 * COSE public key belong to the KeyObject that signed its attestation, and generation survives a heap that
 * collects garbage all the time (the JWK export it replaced deadlocked there: Node 20 holds the key's mutex while
 * allocating the JWK strings, and a collection in between finalises the key's KeyGenJob, which takes that mutex).
 */
import { spawn } from 'node:child_process';
import { createPublicKey, verify } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { decode } from '../../../protocol/cbor.ts';
import { encodeCredentialPublicKey } from '../../../agent/authenticators/soft/cose.ts';
import {
  COSE_ALG_EDDSA,
  COSE_ALG_ES256,
  generateCredentialKey,
  importCredentialKey,
  signWith,
} from '../../../agent/authenticators/soft/crypto.ts';

const CHILD = fileURLToPath(new URL('./fixtures/keygen-loop.ts', import.meta.url));

function p256PublicKey(publicRaw: Uint8Array) {
  const b = (x: Uint8Array): string => Buffer.from(x).toString('base64url');
  return createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: b(publicRaw.subarray(0, 32)), y: b(publicRaw.subarray(32)) }, format: 'jwk' });
}

describe('generateCredentialKey', () => {
  it('ES256: the stored scalar re-imports to the same public key, and the signature verifies under it', () => {
    for (let i = 0; i < 50; i++) {
      const key = generateCredentialKey(COSE_ALG_ES256);
      expect(key.secret.length).toBe(32);
      expect(key.publicRaw.length).toBe(64);
      expect(Buffer.from(importCredentialKey(COSE_ALG_ES256, key.secret).publicRaw)).toEqual(Buffer.from(key.publicRaw));
      const data = Buffer.from(`attestation ${i}`);
      expect(verify('sha256', data, p256PublicKey(key.publicRaw), signWith(key, data))).toBe(true);
      const cose = decode(encodeCredentialPublicKey(key)) as Map<number, unknown>;
      expect(Buffer.from(cose.get(-2) as Uint8Array)).toEqual(Buffer.from(key.publicRaw.subarray(0, 32)));
      expect(Buffer.from(cose.get(-3) as Uint8Array)).toEqual(Buffer.from(key.publicRaw.subarray(32)));
    }
  });

  it('keys are fresh', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) seen.add(Buffer.from(generateCredentialKey(COSE_ALG_ES256).secret).toString('hex'));
    expect(seen.size).toBe(200);
  });

  it('EdDSA: the stored seed re-imports to the same public key', () => {
    const key = generateCredentialKey(COSE_ALG_EDDSA);
    expect(Buffer.from(importCredentialKey(COSE_ALG_EDDSA, key.secret).publicRaw)).toEqual(Buffer.from(key.publicRaw));
  });

  it('20,000 generations with a 1 MB young generation (constant scavenges) finish', async () => {
    const child = spawn(process.execPath, ['--max-semi-space-size=1', '--min-semi-space-size=1', '--import', 'tsx', CHILD, '20000'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
    const code = await new Promise<number | null>((r) => child.once('close', r));
    clearTimeout(timer);
    expect(out.trim()).toBe('20000');
    expect(code).toBe(0);
  }, 120_000);
});
