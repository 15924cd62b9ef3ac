/**
 * The Linux single executable under a real kernel (qemu guest, test/vm/harness.ts): `keytunnel-linux-x64`,
 * copied alone into an empty directory and run with a PATH that holds no node and an empty HOME, is the gateway
 * (`gateway --hid uhid --connect 10.0.2.2:P`) for `keytunnel agent --soft` on the HOST; libfido2's fido2-token,
 * fido2-cred and fido2-assert register and assert through it (test/vm/fixtures/libfido2_checks.sh: non-resident,
 * resident, hmac-secret, then with a PIN); SIGTERM stops it with exit 0 and its device goes.
 *
 * The executable is built for this test (`scripts/build-exe.mjs --only linux`) into the run's share.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateIdentityPem, loadOrCreateIdentity, parseIdentityPem } from '../../tunnel/identity.ts';
import { CHECK_PRELUDE, checkPassed, LIBFIDO2_CHECKS } from './checks.ts';
import { guestHookTimeout, newShare, REPO_ROOT, runInGuest, type GuestResult } from './harness.ts';

const BIN = join(REPO_ROOT, 'bin', 'keytunnel.js');
const GUEST_TIMEOUT_MS = 480_000;

interface HostAgent {
  readonly port: number;
  readonly fingerprint: string;
  readonly process: ChildProcess;
  readonly log: string[];
}

async function startHostAgent(stateDir: string, trustGateway: string): Promise<HostAgent> {
  const { identity } = await loadOrCreateIdentity(stateDir);
  const child = spawn(
    process.execPath,
    [BIN, 'agent', '--soft', '--approve', 'always', '--listen', '127.0.0.1:0', '--trust', trustGateway, '--state-dir', stateDir],
    { env: { ...process.env, KEYTUNNEL_PASSPHRASE: 'exe-vm-test-passphrase', KEYTUNNEL_LOG_LEVEL: 'debug' }, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const log: string[] = [];
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`agent did not listen within 60 s:\n${log.join('\n')}`)), 60_000);
    createInterface({ input: child.stderr! }).on('line', (line) => {
      if (log.length < 2000) log.push(line);
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`agent exited with ${code}:\n${log.join('\n')}`));
    });
  });
  return { port, fingerprint: identity.fingerprint, process: child, log };
}

function guestScript(exeDir: string, agent: HostAgent): string {
  return `${CHECK_PRELUDE}
. "$F/libfido2_checks.sh"
mkdir -p alone empty-bin home gw-state
cp "${exeDir}/keytunnel-linux-x64" alone/ && cp gateway.pem gw-state/identity.pem && chmod 600 gw-state/identity.pem
check exe-alone sh -c '[ "$(ls alone)" = keytunnel-linux-x64 ]'
check no-node-on-path sh -c '! env -i PATH="$PWD/empty-bin" sh -c "command -v node" >/dev/null'
(cd alone && env -i PATH="$PWD/../empty-bin" HOME="$PWD/../home" ./keytunnel-linux-x64 --version) > version.txt 2>&1; cat version.txt
check exe-version grep -q '(commit .*, sea)' version.txt
(cd alone && exec env -i PATH="$PWD/../empty-bin" HOME="$PWD/../home" ./keytunnel-linux-x64 gateway --hid uhid \\
  --connect 10.0.2.2:${agent.port} --trust ${agent.fingerprint} --state-dir "$PWD/../gw-state" --name exe-vm) > gateway.log 2>&1 &
GW=$!
check exe-gateway-device wait_for /dev/hidraw0 1500
libfido2_checks /dev/hidraw0 exe
cd "$KEYTUNNEL_VM_SHARE_DIR"
kill -TERM $GW; wait $GW; echo "gateway exit $?" > gateway.rc; cat gateway.rc
check exe-gateway-exit-0 grep -q 'gateway exit 0' gateway.rc
check exe-device-removed sh -c '! [ -e /dev/hidraw0 ]'
echo "--- gateway.log"; cut -c1-300 gateway.log | tail -30
`;
}

describe('the Linux executable alone in the guest is the gateway for an agent on the host', () => {
  let r: GuestResult | undefined;
  let agent: HostAgent | undefined;
  let exeDir = '';
  const agentDir = mkdtempSync(join(tmpdir(), 'kt-exe-vm-agent-'));

  beforeAll(async () => {
    exeDir = newShare();
    execFileSync(process.execPath, [join(REPO_ROOT, 'scripts', 'build-exe.mjs'), '--only', 'linux', '--out', exeDir], {
      stdio: 'ignore',
      timeout: 300_000,
    });
    const gatewayPem = await generateIdentityPem();
    agent = await startHostAgent(agentDir, parseIdentityPem(gatewayPem, 'gateway').fingerprint);
    r = await runInGuest(`KEYTUNNEL_VM_SHARE_DIR="$PWD"\n${guestScript(exeDir, agent)}`, {
      timeoutMs: GUEST_TIMEOUT_MS,
      keepShare: true,
      files: { 'gateway.pem': gatewayPem },
    });
  }, guestHookTimeout(GUEST_TIMEOUT_MS) + 300_000);

  afterAll(() => {
    agent?.process.kill('SIGTERM');
    rmSync(agentDir, { recursive: true, force: true });
    if (exeDir) rmSync(exeDir, { recursive: true, force: true });
    if (r && r.code === 0) rmSync(r.share, { recursive: true, force: true });
  });

  it('runs alone, with no node on PATH, and knows its version and commit', () => {
    checkPassed(r, 'exe-alone');
    checkPassed(r, 'no-node-on-path');
    checkPassed(r, 'exe-version');
  });
  it('creates its uhid device, connected to the agent on the host', () => checkPassed(r, 'exe-gateway-device'));
  it('libfido2 registers and asserts through it (every check of libfido2_checks.sh)', () => {
    if (!r) throw new Error('the guest did not run');
    for (const name of LIBFIDO2_CHECKS) checkPassed(r, `exe-${name}`);
    expect([...r.console.matchAll(/^CHECK exe-\S+ FAIL/gm)], `agent log:\n${agent?.log.slice(-40).join('\n')}`).toEqual([]);
  });
  it('SIGTERM stops it with exit 0 and its device goes', () => {
    checkPassed(r, 'exe-gateway-exit-0');
    checkPassed(r, 'exe-device-removed');
  });
});
