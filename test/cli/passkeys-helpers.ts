/**
 * Shared pieces of the `keytunnel passkeys` tests: a soft authenticator on a real encrypted store, driven by the
 * keytunnel/testing's WebAuthn client (CTAP2 makeCredential/getAssertion as a browser sends them) against a relying party
 * that verifies with @simplewebauthn/server.
 */
import { spawn } from 'node:child_process';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { AlwaysPresence } from '../../agent/presence/always.ts';
import { SoftAuthenticator } from '../../agent/authenticators/soft/soft-authenticator.ts';
import { FileStateStore } from '../../agent/authenticators/soft/store-file.ts';
import type { PasskeysIo } from '../../cli/commands/passkeys.ts';
import { DemoRelyingParty } from '../../cli/demo/relying-party.ts';
import { WebAuthnError, WebAuthnTestClient, type CtapCommandPort } from '../../testing/index.ts';

export { WebAuthnError, type CtapCommandPort };

/** navigator.credentials.create() through keytunnel/testing's client over a CTAP command port. */
export function createCredential(port: CtapCommandPort, options: Parameters<WebAuthnTestClient['register']>[0], origin: string) {
  return new WebAuthnTestClient({ ctap: port, origin }).register(options);
}

/** navigator.credentials.get() through keytunnel/testing's client over a CTAP command port. */
export function getAssertion(port: CtapCommandPort, options: Parameters<WebAuthnTestClient['authenticate']>[0], origin: string) {
  return new WebAuthnTestClient({ ctap: port, origin }).authenticate(options);
}

export const PASS = 'store passphrase one';
export const BACKUP_PASS = 'backup passphrase';
export const BIN = fileURLToPath(new URL('../../bin/keytunnel.js', import.meta.url));

export interface OpenSoft {
  readonly auth: SoftAuthenticator;
  port(scope?: string): CtapCommandPort;
  close(): Promise<void>;
}

export async function openSoft(path: string, passphrase = PASS): Promise<OpenSoft> {
  const store = await FileStateStore.open({ path, passphrase });
  const auth = await SoftAuthenticator.open({ store, presence: new AlwaysPresence() });
  return {
    auth,
    port: (scope) => (request) =>
      auth.request('cbor', request, {
        signal: new AbortController().signal,
        onStatus: () => {},
        ...(scope !== undefined ? { origin: { credentialScope: scope, gatewayFingerprint: scope } } : {}),
      }),
    close: () => store.close(),
  };
}

export function relyingParty(rpId: string): DemoRelyingParty {
  return new DemoRelyingParty(rpId, `${rpId} (test RP)`, `https://${rpId}`);
}

/** Registers a discoverable credential (residentKey required) for `user`; answers its id (base64url). */
export async function register(rp: DemoRelyingParty, port: CtapCommandPort, user: string): Promise<string> {
  const options = await rp.registrationOptions(user);
  const response = await createCredential(
    port,
    { ...options, excludeCredentials: [], authenticatorSelection: { residentKey: 'required', userVerification: 'discouraged' } },
    rp.origin,
  );
  await rp.verifyRegistration(response);
  return response.id;
}

/** Signs in with `credentialId` (allow list) or, when absent, discoverably; the RP verifies with the key it stored. */
export async function signIn(rp: DemoRelyingParty, port: CtapCommandPort, credentialId?: string): Promise<{ id: string; newCounter: number }> {
  const options = await rp.authenticationOptions();
  const response = await getAssertion(
    port,
    { ...options, allowCredentials: credentialId === undefined ? [] : [{ id: credentialId, type: 'public-key' }] },
    rp.origin,
  );
  const { newCounter } = await rp.verifyAuthentication(response);
  return { id: response.id, newCounter };
}

/** Collects a command's output. */
export function captureIo(env: Record<string, string | undefined> = {}): PasskeysIo & { lines: string[]; errors: string[] } {
  const lines: string[] = [];
  const errors: string[] = [];
  return {
    lines,
    errors,
    out: (l) => lines.push(l),
    err: (l) => errors.push(l),
    env: { KEYTUNNEL_PASSPHRASE: PASS, KEYTUNNEL_BACKUP_PASSPHRASE: BACKUP_PASS, ...env },
    input: new PassThrough(), // not a terminal: nothing is ever asked
  };
}

/** Runs the real CLI; resolves with its exit code and output. */
export function runCli(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, KEYTUNNEL_NO_BUNDLE: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
