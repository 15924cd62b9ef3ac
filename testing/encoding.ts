/** base64url and SHA-256, the two encodings every WebAuthn message uses. */
import { createHash } from 'node:crypto';

export function base64url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
}

/** Strict base64url (RFC 4648 §5, no padding); anything else is a TypeError, as in a browser's JSON parsing. */
export function fromBase64url(text: string, what: string): Uint8Array {
  if (typeof text !== 'string' || !/^[A-Za-z0-9_-]*={0,2}$/.test(text)) throw new TypeError(`${what} is not base64url`);
  return new Uint8Array(Buffer.from(text, 'base64url'));
}

export function sha256(...parts: Uint8Array[]): Uint8Array {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}
