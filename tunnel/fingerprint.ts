/**
 * Certificate fingerprints: SHA-256 of the DER certificate, written as lowercase hex pairs joined by ':'
 * (`3f:a1:...`, 95 characters). This is how peers are pinned (like SSH known_hosts or WireGuard public keys):
 * certificates are self-signed, so the fingerprint *is* the identity.
 */
import { createHash } from 'node:crypto';
import { KeytunnelError } from '../protocol/errors.ts';

/** Number of bytes in a SHA-256 fingerprint. */
export const FINGERPRINT_BYTES = 32;

export class FingerprintError extends KeytunnelError {
  override readonly name = 'FingerprintError';
  readonly code = 'FINGERPRINT';
}

/** The canonical fingerprint of a DER certificate. */
export function fingerprintOf(der: Uint8Array): string {
  const digest = createHash('sha256').update(der).digest('hex');
  return digest.match(/../g)!.join(':');
}

/**
 * Parse a user-supplied fingerprint: 64 hex digits, with or without ':' between the pairs, any case, surrounding
 * whitespace ignored. Returns the canonical form; throws FingerprintError otherwise.
 */
export function parseFingerprint(input: string): string {
  const trimmed = input.trim();
  let digits: string;
  if (/^[0-9a-fA-F]{64}$/.test(trimmed)) digits = trimmed;
  else if (/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){31}$/.test(trimmed)) digits = trimmed.replaceAll(':', '');
  else {
    throw new FingerprintError(
      `not a SHA-256 fingerprint: expected 64 hex digits, optionally as 32 colon-separated pairs (got ${JSON.stringify(
        trimmed.slice(0, 120),
      )})`,
    );
  }
  return digits.toLowerCase().match(/../g)!.join(':');
}

/** Whether `input` parses as a fingerprint. */
export function isFingerprint(input: string): boolean {
  try {
    parseFingerprint(input);
    return true;
  } catch {
    return false;
  }
}
