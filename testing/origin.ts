/**
 * What a browser checks before it asks an authenticator anything (WebAuthn L3 §5.1.3 steps 5–8, §5.1.4.1 steps
 * 5–8): the caller's origin is a secure context with a domain, and the RP ID is that domain or a registrable
 * suffix of it. A mismatch is a SecurityError.
 *
 * Without the Public Suffix List this accepts an RP ID that equals the origin's host, or a parent domain of it that
 * has at least two labels (so "com" is refused but "example.com" for "login.example.com" is accepted).
 */
import { isIP } from 'node:net';
import { WebAuthnError } from './errors.ts';

export interface CallerOrigin {
  /** The serialised origin ("https://login.example.com", "http://localhost:8080"). */
  readonly origin: string;
  /** Its effective domain (§5.1.3 step 6). */
  readonly effectiveDomain: string;
}

/** Parses and checks the origin a client acts for; a non-secure or opaque origin is a SecurityError. */
export function parseOrigin(origin: string): CallerOrigin {
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    throw new WebAuthnError(`origin ${JSON.stringify(origin)} is not a URL`, 'SecurityError');
  }
  if (url.origin !== origin) {
    throw new WebAuthnError(`origin ${JSON.stringify(origin)} must be a bare origin such as ${JSON.stringify(url.origin)}`, 'SecurityError');
  }
  const host = url.hostname.replace(/^\[|\]$/g, '');
  // Secure contexts: https, or http on localhost (browsers treat it as potentially trustworthy).
  const local = host === 'localhost' || host.endsWith('.localhost');
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && local)) {
    throw new WebAuthnError(`origin ${origin} is not a secure context (https, or http://localhost)`, 'SecurityError');
  }
  // §5.1.3 step 7: an IP address is not a valid domain.
  if (isIP(host) !== 0) throw new WebAuthnError(`origin ${origin} has an IP address, not a domain`, 'SecurityError');
  return { origin, effectiveDomain: host.toLowerCase() };
}

/** §5.1.3 step 8: the RP ID (default: the effective domain) must be it or a registrable domain suffix of it. */
export function checkRpId(caller: CallerOrigin, rpId: string | undefined): string {
  if (rpId === undefined) return caller.effectiveDomain;
  const id = rpId.toLowerCase();
  const domain = caller.effectiveDomain;
  if (id === domain) return id;
  const suffix = domain.endsWith(`.${id}`);
  const registrable = id.includes('.') && !id.startsWith('.') && !id.endsWith('.') && isIP(id) === 0;
  if (suffix && registrable) return id;
  throw new WebAuthnError(`RP ID ${JSON.stringify(rpId)} is not a registrable domain suffix of the origin ${caller.origin}`, 'SecurityError');
}

/** WebAuthn L3 §5.8.1 CollectedClientData, members in the order browsers serialise them (§5.8.1.1). */
export function collectedClientData(type: 'webauthn.create' | 'webauthn.get', challenge: string, caller: CallerOrigin): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({ type, challenge, origin: caller.origin, crossOrigin: false }));
}
