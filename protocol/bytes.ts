/** Byte-string helpers shared by every layer. */

/**
 * True when `a` and `b` have the same length and the same bytes. Every byte is looked at whatever the first
 * difference, so the time taken does not say where two equal-length strings differ (fit for MACs and hashes).
 */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}
