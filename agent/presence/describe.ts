/**
 * The words every prompt shows (terminal, dialog, notification): who asks, what for, the RP ID and the user.
 * Everything here came from the untrusted VM, so every field goes through displayText (agent/display-text.ts:
 * controls, bidi and other format characters made visible, length bounded) — an RP ID cannot rewrite a
 * terminal, forge a line in a dialog or disguise itself.
 */
import { displayText } from '../display-text.ts';
import type { PresenceAction, PresenceRequest } from './port.ts';

/** What the requester wants, phrased to take the RP ID right after it ("sign in to login.microsoft.com"). */
export const ACTION_TEXT: Readonly<Record<PresenceAction, string>> = {
  makeCredential: 'create a passkey for',
  getAssertion: 'sign in to',
  u2fRegister: 'register a U2F key for',
  u2fAuthenticate: 'sign in (U2F) to',
  reset: 'RESET the authenticator, deleting every credential',
  selection: 'select this authenticator',
  credentialManagement: 'manage the stored credentials',
  setPin: 'SET the authenticator PIN (shared by every VM using it)',
  changePin: 'CHANGE the authenticator PIN (shared by every VM using it)',
};

/** Who is asking: the VM's policy name and the start of its fingerprint ("customer-a (fp 3f:a1:9c:…)"). */
export function describeRequester(request: PresenceRequest): string {
  const name = request.origin?.gatewayName;
  const fp = request.origin?.gatewayFingerprint;
  const shortFp = fp ? `fp ${displayText(fp, 23)}` : undefined;
  if (name && shortFp) return `${displayText(name, 40)} (${shortFp})`;
  if (name) return displayText(name, 40);
  if (shortFp) return `a gateway (${shortFp})`;
  return 'a local client';
}

/**
 * The question, as CTAP's user-presence check is shown to the user:
 * "customer-a (fp 3f:a1:…) wants to sign in to login.microsoft.com as alice@contoso.com".
 */
export function describeRequest(request: PresenceRequest): string {
  let text = `${describeRequester(request)} wants to ${ACTION_TEXT[request.action]}`;
  if (request.rpId !== undefined) text += ` ${displayText(request.rpId)}`;
  if (request.userName !== undefined) text += ` as ${displayText(request.userName, 64)}`;
  return text;
}
