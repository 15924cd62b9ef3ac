/**
 * RP allow-list matching. An entry is an exact RP ID ("login.microsoft.com"), a suffix wildcard
 * ("*.contoso.com": any subdomain, not contoso.com itself — list both if both are wanted), "*" (any RP), or a
 * U2F AppID URL ("https://contoso.com/appid.json"; FIDO AppID §3), which only U2F requests can match.
 * RP IDs are compared case-insensitively (they are domain names, WebAuthn §5.1.2 / RFC 4343).
 *
 * Only a valid RP ID (rp-id.ts) can match anything: a domain name matches exact and wildcard entries, an OpenSSH
 * "ssh:" application only "*"; anything else matches nothing, not even "*".
 */
import { equalBytes } from '../../protocol/bytes.ts';
import { rpIdHash } from './request-summary.ts';
import { isDomainName, rpIdProblem } from './rp-id.ts';

export const ANY_RP = '*';

/** Throws on an entry that can never match anything, so a typo in the config is an error, not a lock-out. */
export function validateRpPattern(pattern: string): string {
  const p = pattern.trim().toLowerCase();
  const host = p.startsWith('*.') ? p.slice(2) : p;
  if (p === ANY_RP) return p;
  if (p.startsWith('https://')) {
    if (!URL.canParse(pattern.trim())) throw new Error(`not a U2F AppID URL: ${JSON.stringify(pattern)}`);
    return pattern.trim(); // AppIDs are hashed byte for byte: keep their case
  }
  if (!isDomainName(host)) {
    throw new Error(`not an RP ID pattern: ${JSON.stringify(pattern)} (use a domain, *.domain, or *)`);
  }
  return p;
}

export function rpAllowed(allowRps: readonly string[], rpId: string): boolean {
  if (rpIdProblem(rpId) !== undefined) return false;
  if (!isDomainName(rpId)) return allowRps.includes(ANY_RP); // an ssh: application
  const id = rpId.toLowerCase();
  return allowRps.some((p) => p === ANY_RP || p === id || (p.startsWith('*.') && id.endsWith(p.slice(1))));
}

/**
 * For requests that carry only SHA-256(RP ID) (U2F application parameter, credential management rpIDHash):
 * only exact entries can be hashed, so a wildcard entry never matches a hash (fail closed).
 */
export function rpHashAllowed(allowRps: readonly string[], hash: Uint8Array): boolean {
  return allowRps.some((p) => p === ANY_RP || (!p.startsWith('*.') && equalBytes(rpIdHash(p), hash)));
}

export function allowsAnyRp(allowRps: readonly string[]): boolean {
  return allowRps.includes(ANY_RP);
}
