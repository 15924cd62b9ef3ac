/**
 * `keytunnel trust unblock NAME|FP` (issue 11 finding 3): a person on the agent lifts a gateway's PIN block, from
 * a process separate from the running agent; `trust list` shows blocked gateways; `trust --help` names it.
 */
import { spawn } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { encode, type CborValue } from '../../protocol/cbor.ts';
import { CTAP2_CLIENT_PIN, CTAP2_ERR_PIN_INVALID, CTAP2_OK } from '../../protocol/ctap2.ts';
import { FilePinBlockStore, PinGuard, type PinPass, type PinRequester } from '../../agent/policy/pin-guard.ts';
import { trustAdd, trustList, trustUnblock } from '../../cli/commands/trust.ts';
import { FakePresence } from '../../agent/presence/fake.ts';

const BIN = fileURLToPath(new URL('../../bin/keytunnel.js', import.meta.url));
const FP_A = 'aa'.repeat(32).match(/../g)!.join(':');
const FP_B = 'bb'.repeat(32).match(/../g)!.join(':');
const GET_PIN_TOKEN = Uint8Array.of(CTAP2_CLIENT_PIN, ...encode(new Map<CborValue, CborValue>([[1, 2], [2, 0x05]])));

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, KEYTUNNEL_NO_BUNDLE: '1' }, stdio: 'pipe' });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const who = (fp: string, name: string): PinRequester => ({ origin: { gatewayFingerprint: fp, gatewayName: name }, authenticator: 'hid-1' });
const ctx = () => ({ signal: new AbortController().signal, onStatus: () => {} });

/** Two wrong PINs from `fp` through the guard: the guard blocks it and records the block in the state dir. */
async function blockGateway(guard: PinGuard, fp: string, name: string): Promise<void> {
  for (let i = 0; i < 2; i++) {
    const pass = (await guard.admit('cbor', GET_PIN_TOKEN, who(fp, name), ctx())) as PinPass;
    expect(pass.refused).toBe(false);
    pass.settle(Uint8Array.of(CTAP2_ERR_PIN_INVALID));
  }
  expect(guard.isBlocked(fp)).toBe(true);
  expect(await guard.recorded(fp)).toBe(true);
}

async function tryPin(guard: PinGuard, fp: string, name: string): Promise<number> {
  const admission = (await guard.admit('cbor', GET_PIN_TOKEN, who(fp, name), ctx()))!;
  if (admission.refused) return admission.answer[0]!;
  admission.settle(Uint8Array.of(CTAP2_OK));
  return CTAP2_OK;
}

describe('keytunnel trust unblock', () => {
  it('lifts the block of a running agent by name or fingerprint; trust list shows it; other blocks stay', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kt-unblock-'));
    await trustAdd({ fingerprint: FP_B, name: 'customer-b', 'state-dir': dir }, () => {});
    await trustAdd({ fingerprint: FP_A, name: 'customer-a', 'state-dir': dir }, () => {});
    const guard = await PinGuard.open(dir, new FakePresence()); // the running agent's guard
    await blockGateway(guard, FP_B, 'customer-b');
    await blockGateway(guard, FP_A, 'customer-a');

    const listed: string[] = [];
    await trustList(dir, (l) => listed.push(l));
    expect(listed.find((l) => l.startsWith(FP_B))).toMatch(/customer-b {2}PIN-BLOCKED since \d{4}-\d\d-\d\dT.*\(keytunnel trust unblock bb:bb/);

    const out: string[] = [];
    await trustUnblock({ gateway: 'customer-b', 'state-dir': dir }, (l) => out.push(l));
    expect(out).toEqual([`unblocked ${FP_B} (customer-b): its PIN attempts reach the authenticators again`]);
    expect(await tryPin(guard, FP_B, 'customer-b')).toBe(CTAP2_OK);
    expect(guard.isBlocked(FP_B)).toBe(false);
    expect(guard.isBlocked(FP_A)).toBe(true);
    expect(await tryPin(guard, FP_A, 'customer-a')).not.toBe(CTAP2_OK);

    await trustUnblock({ gateway: 'customer-b', 'state-dir': dir }, (l) => out.push(l));
    expect(out.at(-1)).toMatch(/customer-b\) is not blocked/);
    await trustUnblock({ gateway: 'AA'.repeat(32), 'state-dir': dir }, (l) => out.push(l));
    expect(out.at(-1)).toBe(`unblocked ${FP_A} (customer-a): its PIN attempts reach the authenticators again`);
    expect(await tryPin(guard, FP_A, 'customer-a')).toBe(CTAP2_OK);
  });

  it('resolves names only from what a person set, refuses unknown and ambiguous names', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kt-unblock-'));
    const guard = await PinGuard.open(dir, new FakePresence());
    // B is trusted without a name and announced "customer-a": that name must not resolve to B.
    await trustAdd({ fingerprint: FP_B, 'state-dir': dir }, () => {});
    await blockGateway(guard, FP_B, 'customer-a');
    await expect(trustUnblock({ gateway: 'customer-a', 'state-dir': dir }, () => {})).rejects.toThrow(/no trusted gateway is named "customer-a"/);
    expect(await new FilePinBlockStore(dir).isBlocked(FP_B)).toBe(true);

    await trustAdd({ fingerprint: FP_A, name: 'twin', 'state-dir': dir }, () => {});
    await trustAdd({ fingerprint: FP_B, name: 'twin', 'state-dir': dir }, () => {});
    await expect(trustUnblock({ gateway: 'twin', 'state-dir': dir }, () => {})).rejects.toThrow(/several gateways are named "twin"/);
  });

  it('works as a separate process, and trust --help lists it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kt-unblock-'));
    await trustAdd({ fingerprint: FP_B, name: 'customer-b', 'state-dir': dir }, () => {});
    const guard = await PinGuard.open(dir, new FakePresence());
    await blockGateway(guard, FP_B, 'customer-b');

    const unblock = await run(['trust', 'unblock', 'customer-b', '--state-dir', dir]);
    expect(unblock.stderr).toBe('');
    expect(unblock.code).toBe(0);
    expect(unblock.stdout).toContain(`unblocked ${FP_B} (customer-b)`);
    expect(await tryPin(guard, FP_B, 'customer-b')).toBe(CTAP2_OK);

    const help = await run(['trust', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/trust unblock <gateway>\s+On the agent: let a gateway try PINs again/);
    const unknown = await run(['trust', 'unblock', 'nobody', '--state-dir', dir]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('no trusted gateway is named "nobody"');
  }, 60_000);
});
