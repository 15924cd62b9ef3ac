/**
 * A clean reference client drives the soft authenticator directly (no HID, no tunnel): python-fido2 0.9's
 * Ctap2, ClientPin with protocols 1 and 2, CredentialManagement and Ctap1, through a stdin/stdout bridge.
 * (The full-stack python-fido2 test over the loopback face lives with the CLI/store tests.)
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const here = fileURLToPath(new URL('.', import.meta.url));
const PYTHON = '/usr/bin/python3';

describe('python-fido2 reference client', () => {
  it('Ctap2 + ClientPin v1/v2 + CredentialManagement + Ctap1 all succeed', async () => {
    expect(existsSync(PYTHON)).toBe(true);
    const tsx = fileURLToPath(new URL('../../../node_modules/.bin/tsx', import.meta.url));
    const { stdout } = await promisify(execFile)(PYTHON, [`${here}fixtures/python_fido2_check.py`, tsx, `${here}fixtures/bridge.ts`], {
      timeout: 60_000,
    });
    const lines = stdout.trim().split('\n');
    expect(lines).toEqual([
      'OK getInfo',
      'OK makeCredential + packed self attestation, protocol 1',
      'OK getAssertion + getNextAssertion, protocol 1',
      'OK credentialManagement, protocol 1',
      'OK changePIN, protocol 1',
      'OK makeCredential + packed self attestation, protocol 2',
      'OK getAssertion + getNextAssertion, protocol 2',
      'OK credentialManagement, protocol 2',
      'OK changePIN, protocol 2',
      'OK ctap1 register/authenticate',
    ]);
  }, 90_000);

  it('a pre-2.1 client (getPinToken + the 0x41 preview command) manages credentials (issue 11 finding 9b)', async () => {
    const tsx = fileURLToPath(new URL('../../../node_modules/.bin/tsx', import.meta.url));
    const { stdout } = await promisify(execFile)(PYTHON, [`${here}fixtures/python_fido2_legacy_credman.py`, tsx, `${here}fixtures/bridge.ts`], {
      timeout: 60_000,
    });
    expect(stdout.trim().split('\n')).toEqual([
      'OK legacy client: no credMgmt, no pinUvAuthToken',
      'OK makeCredential with getPinToken tokens',
      'OK credentialManagement 0x41 with a getPinToken token: metadata, enumerate, delete',
    ]);
  }, 90_000);
});
