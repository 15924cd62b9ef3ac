/**
 * examples/python-fido2 as a user runs it: ceremony.py (python-fido2's Fido2Client + Fido2Server over the
 * loopback connection class) against startSoftAuthenticator() in this process, with and without a PIN.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { startSoftAuthenticator, type SoftAuthenticatorHandle } from 'keytunnel/testing';

const SCRIPT = fileURLToPath(new URL('./ceremony.py', import.meta.url));

function ceremony(device: { host: string; port: number }, extra: string[] = []): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    // Asynchronous: the device under test runs in this very process.
    const child = spawn('/usr/bin/python3', [SCRIPT, `${device.host}:${device.port}`, ...extra], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

let soft: SoftAuthenticatorHandle | undefined;
afterEach(async () => {
  await soft?.close();
  soft = undefined;
});

describe('examples/python-fido2', () => {
  it('registers and signs in, verified by Fido2Server', async () => {
    soft = await startSoftAuthenticator();
    const r = await ceremony(soft.device);
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(result).toMatchObject({ ok: true, fmt: 'packed', userVerified: false });
    expect(result.signCount).toBeGreaterThan(0);
  });

  it('with a PIN: user verification required and reported', async () => {
    soft = await startSoftAuthenticator({ pin: '97531' });
    const r = await ceremony(soft.device, ['--pin', '97531']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout.trim().split('\n').pop()!)).toMatchObject({ ok: true, userVerified: true });
    const wrong = await ceremony(soft.device, ['--pin', '00000']);
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toMatch(/PIN_INVALID/);
  });
});
