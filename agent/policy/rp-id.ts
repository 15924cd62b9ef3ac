/**
 * What the policy accepts as an RP ID before it matches one against an allow-list (issue 11, finding 8).
 *
 * An RP ID from a VM is judged on the agent and then handed to an authenticator whose firmware parses it again:
 * a string with NUL, '/', spaces or other odd bytes could be read differently there (a C string ends at NUL), or
 * be shown misleadingly in a prompt or the audit log. So the policy only lets through:
 *
 * - a domain name (WebAuthn §5.1.2: "a valid domain string"; RFC 1035 §2.3.1 / RFC 1123 §2.1 "LDH" syntax):
 *   1..253 characters, dot-separated labels of 1..63 letters, digits and hyphens, no label starting or ending
 *   with a hyphen, no empty label (so no leading/trailing dot). Single-label names are domains too, so
 *   `localhost` (which WebAuthn clients allow for testing on http://localhost) and intranet names pass.
 *   IP addresses do not: WebAuthn clients refuse them (an IP host is not a "valid domain" — WHATWG URL §3.5
 *   parses a host whose last label is a number as IPv4), IPv6 literals are not LDH anyway, and refusing them
 *   here keeps "127.0.0.1" from ever matching an allow-list entry by accident.
 * - an OpenSSH FIDO application string (`ssh:` or `ssh:NAME`, PROTOCOL.u2f: "the application string ... MUST
 *   begin with ssh:"), which ssh-keygen -t ed25519-sk sends as rp.id. It cannot be mistaken for a web RP (no
 *   domain contains ':') and only the allow-list entry `*` matches it (see rp-match.ts).
 *
 * Internationalised domains arrive as A-labels ("xn--..."), which are LDH.
 */

/** RFC 1035 §2.3.4: at most 255 octets on the wire, i.e. 253 characters in dotted form without the root dot. */
export const MAX_RP_ID_LENGTH = 253;
/** RFC 1035 §2.3.4: labels are 63 octets or less. */
export const MAX_LABEL_LENGTH = 63;
/** Longest NAME after "ssh:" we accept (OpenSSH sets no limit; real ones are short). */
export const MAX_SSH_APPLICATION_NAME = 64;

const LDH_LABEL = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/i;
/** WHATWG URL "ends in a number checker": the last label is decimal digits or 0x-hex, so the host is IPv4. */
const NUMERIC_LABEL = /^(?:[0-9]+|0x[0-9a-f]*)$/i;
const SSH_APPLICATION = new RegExp(`^ssh:[A-Za-z0-9._-]{0,${MAX_SSH_APPLICATION_NAME}}$`);

/** Whether `s` is a domain name in LDH syntax that is not an IPv4 address. */
export function isDomainName(s: string): boolean {
  if (s.length === 0 || s.length > MAX_RP_ID_LENGTH) return false;
  const labels = s.split('.');
  for (const label of labels) {
    if (label.length > MAX_LABEL_LENGTH || !LDH_LABEL.test(label)) return false;
  }
  return !NUMERIC_LABEL.test(labels[labels.length - 1]!);
}

/** Whether `s` is an OpenSSH FIDO application string ("ssh:" or "ssh:NAME"). */
export function isSshApplication(s: string): boolean {
  return SSH_APPLICATION.test(s);
}

/** Why `rpId` is not acceptable as an RP ID, or undefined when it is (a domain name or an ssh: application). */
export function rpIdProblem(rpId: string): string | undefined {
  if (isDomainName(rpId) || isSshApplication(rpId)) return undefined;
  return 'the RP ID is not a valid domain name';
}
