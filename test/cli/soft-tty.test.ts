/**
 * `keytunnel soft --approve prompt` on a real pseudo-terminal (driven by test/interop/soft_tty.py): the store
 * passphrase is asked twice without echo, the presence prompt names the action, RP and user, Enter approves
 * a python-fido2 makeCredential, 'n' and Esc deny getAssertion (CTAP2_ERR_OPERATION_DENIED), SIGTERM exits 0.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';

const DRIVER = fileURLToPath(new URL('../interop/soft_tty.py', import.meta.url));
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kt-soft-tty-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

it('asks for the passphrase and for presence on the terminal; Enter approves, n and Esc deny', async () => {
  const child = spawn('/usr/bin/python3', [DRIVER, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  expect(code, stderr).toBe(0);
  const summary = JSON.parse(stdout.trim().split('\n').pop() ?? '') as Record<string, unknown>;
  expect(summary.makeCredentialPrompt).toBe('a local client wants to create a passkey for example.com as alice@example.com');
  expect(summary.getAssertionPrompt).toBe('a local client wants to sign in to example.com');
  expect(summary.made).toBe(true);
  expect(summary.denials).toEqual(['OPERATION_DENIED', 'OPERATION_DENIED']);
  expect(summary.exitCode).toBe(0);
  expect(summary.passphraseEchoed).toBe(false);
}, 90_000);
