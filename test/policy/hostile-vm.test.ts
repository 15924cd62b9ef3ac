/**
 * A hostile VM against the real processes (security issue #11, findings 2–5): one `keytunnel agent --soft`, two
 * `keytunnel gateway` processes trusted with narrow policies (customer-a may use a.example, customer-b only
 * b.example), each VM's client an ordinary python-fido2 0.9.1 program talking to its gateway's loopback face.
 * Gateway B's VM attacks; A's VM is honest.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CTAP2_ERR_PIN_AUTH_BLOCKED,
  CTAP2_ERR_PIN_INVALID,
} from '../../protocol/ctap2.ts';
import { loadOrCreateIdentity } from '../../tunnel/identity.ts';
import { SYSTEM_PYTHON } from '../interop/run-fido2-script.ts';
import { killAll, runCli, runCliToEnd as runToEnd, type CliProcess as Proc } from '../support/cli-process.ts';
import { waitFor } from '../support/wait-for.ts';

const VM_CLIENT = fileURLToPath(new URL('./vm_client.py', import.meta.url));
const PIN = '246810';
const PERMISSION_GET_ASSERTION = 0x02;
const PERMISSION_CREDENTIAL_MGMT = 0x04;

const children: ChildProcess[] = [];
const dirs: string[] = [];
const run = runCli;

/** These spawn whole CLI processes: give them longer than the in-process default. */
const WAIT_MS = 20_000;

interface StepResult {
  ok: boolean;
  status: number;
  user?: string;
  users?: string[];
  total?: number;
  numberOfCredentials?: number;
  retries?: number;
}

/** One VM's python-fido2 client with its device held open; `step` sends one JSON step and awaits its answer. */
class VmClient {
  private readonly child: ChildProcess;
  private readonly answers: string[] = [];
  private readonly waiters: ((line: string) => void)[] = [];
  private stderr = '';

  constructor(facePort: number) {
    this.child = spawn(SYSTEM_PYTHON, [VM_CLIENT, `127.0.0.1:${facePort}`], { stdio: ['pipe', 'pipe', 'pipe'] });
    children.push(this.child);
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      const waiter = this.waiters.shift();
      if (waiter) waiter(line);
      else this.answers.push(line);
    });
  }

  async step(step: Record<string, unknown>): Promise<StepResult> {
    this.child.stdin!.write(JSON.stringify(step) + '\n');
    const line = this.answers.shift() ?? (await this.next(step));
    return JSON.parse(line) as StepResult;
  }

  private next(step: Record<string, unknown>): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`vm_client ${JSON.stringify(step)}: no answer\n${this.stderr}`)), 15_000);
      this.waiters.push((line) => {
        clearTimeout(timer);
        resolve(line);
      });
    });
  }

  close(): void {
    this.child.stdin!.end();
  }
}

let agentDir: string;
let agent: Proc;
let agentPort: number;
let agentFp: string;
let dirC: string;
const gateways: Record<string, { proc: Proc; facePort: number }> = {};

async function startGateway(name: string, dir: string): Promise<{ proc: Proc; facePort: number }> {
  const proc = run(['gateway', '--hid', 'loopback:127.0.0.1:0', '--connect', `127.0.0.1:${agentPort}`, '--trust', agentFp, '--state-dir', dir, '--name', name]);
  const facePort = Number(await waitFor(`gateway ${name}'s device`, () => /"face":"loopback:127\.0\.0\.1:(\d+)"/.exec(proc.stderr())?.[1], WAIT_MS));
  return { proc, facePort };
}

beforeAll(async () => {
  const temp = async (p: string) => {
    const d = await mkdtemp(join(tmpdir(), p));
    dirs.push(d);
    return d;
  };
  agentDir = await temp('kt-hostile-agent-');
  agentFp = (await loadOrCreateIdentity(agentDir)).identity.fingerprint;
  const dirA = await temp('kt-hostile-a-');
  const dirB = await temp('kt-hostile-b-');
  const fpA = (await loadOrCreateIdentity(dirA)).identity.fingerprint;
  const fpB = (await loadOrCreateIdentity(dirB)).identity.fingerprint;
  dirC = await temp('kt-hostile-c-');
  const fpC = (await loadOrCreateIdentity(dirC)).identity.fingerprint;
  const policies = [[fpA, 'customer-a', 'a.example'], [fpB, 'customer-b', 'b.example'], [fpC, 'customer-c', 'c.example']] as const;
  for (const [fp, name, rp] of policies) {
    const added = await runToEnd(['trust', 'add', fp, '--name', name, '--allow-rp', rp, '--state-dir', agentDir]);
    expect(added.code, added.stderr).toBe(0);
  }
  agent = run(['agent', '--soft', '--approve', 'always', '--listen', '127.0.0.1:0', '--state-dir', agentDir], {
    KEYTUNNEL_PASSPHRASE: 'hostile vm test',
  });
  agentPort = Number(await waitFor('the agent to listen', () => /listening on 127\.0\.0\.1:(\d+)/.exec(agent.stderr())?.[1], WAIT_MS));
  // Both VMs claim to be customer-a: the agent must go by fingerprint.
  gateways.a = await startGateway('customer-a', dirA);
  gateways.b = await startGateway('customer-a', dirB);
}, 60_000);

afterAll(async () => {
  killAll();
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

describe('a hostile VM (gateway B) against an honest one (gateway A) on one agent', () => {
  let a: VmClient;
  let b: VmClient;

  beforeAll(async () => {
    a = new VmClient(gateways.a!.facePort);
    b = new VmClient(gateways.b!.facePort);
    expect(await a.step({ op: 'make', rp: 'a.example', user: 'alice@tenant-a', uid: 'alice' })).toMatchObject({ ok: true });
    expect(await a.step({ op: 'make', rp: 'a.example', user: 'bob@tenant-a', uid: 'bob' })).toMatchObject({ ok: true });
    expect(await a.step({ op: 'setpin', pin: PIN })).toMatchObject({ ok: true });
  }, 60_000);

  afterAll(() => {
    a.close();
    b.close();
  });

  it("B's decoy + enumerateCredentialsGetNextCredential gets nothing of A's enumeration (finding 2)", async () => {
    expect(await a.step({ op: 'token', pin: PIN, perm: PERMISSION_CREDENTIAL_MGMT })).toMatchObject({ ok: true });
    const first = await a.step({ op: 'creds_begin', rp: 'a.example' });
    expect(first).toMatchObject({ ok: true, total: 2 });
    expect(first.user).toMatch(/@tenant-a$/);

    const decoy = await b.step({ op: 'cm_raw', sub: 0x99 });
    expect(decoy.ok).toBe(false);
    const stolen = await b.step({ op: 'creds_next' });
    expect(stolen.ok).toBe(false);
    expect(JSON.stringify(stolen)).not.toContain('tenant-a');
  });

  it("B's decoy + getNextAssertion gets nothing of A's getAssertion (finding 2)", async () => {
    expect(await a.step({ op: 'token', pin: PIN, perm: PERMISSION_GET_ASSERTION, rp: 'a.example' })).toMatchObject({ ok: true });
    const first = await a.step({ op: 'assert', rp: 'a.example', pin: true });
    expect(first).toMatchObject({ ok: true, numberOfCredentials: 2 });

    expect((await b.step({ op: 'cm_raw', sub: 0x99 })).ok).toBe(false);
    const stolen = await b.step({ op: 'next_assertion' });
    expect(stolen.ok).toBe(false);
    expect(JSON.stringify(stolen)).not.toContain('tenant-a');
  });

  it("after B's 10 wrong PINs, A's correct PIN works and at least 6 retries remain (finding 3)", async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) statuses.push((await b.step({ op: 'token', pin: `wrong${i}`, perm: PERMISSION_GET_ASSERTION, rp: 'b.example' })).status);
    expect(statuses.slice(0, 2)).toEqual([CTAP2_ERR_PIN_INVALID, CTAP2_ERR_PIN_INVALID]);
    expect(new Set(statuses.slice(2))).toEqual(new Set([CTAP2_ERR_PIN_AUTH_BLOCKED]));

    expect(await a.step({ op: 'token', pin: PIN, perm: PERMISSION_GET_ASSERTION, rp: 'a.example' })).toMatchObject({ ok: true });
    const retries = (await a.step({ op: 'retries' })).retries!;
    expect(retries).toBeGreaterThanOrEqual(6);
  });

  it('`keytunnel audit` after a forged user name prints no escape character and no forged row (finding 5)', async () => {
    const forgedRow = '2026-12-01 09:00:00Z  customer-a  soft  makeCredential  a.example  root  allowed  0x00  1';
    const forged = `mallory\n${forgedRow}\r\x1b[2J\x1b]0;pwned\x07\u202e`;
    const refused = await b.step({ op: 'make', rp: 'a.example', user: forged, uid: 'mallory' });
    expect(refused.ok).toBe(false);

    const audit = await runToEnd(['audit', '--state-dir', agentDir]);
    expect(audit.code, audit.stderr).toBe(0);
    expect(audit.stdout).toContain('customer-b');
    expect(audit.stdout).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f\u202e]/);
    expect(audit.stdout.split('\n').some((line) => line.startsWith('2026-12-01 09:00:00Z'))).toBe(false);
  });
});

describe('the listener under a flood of idle connections (finding 4)', () => {
  it('after 200 idle TCP connections to the agent, a new gateway connects and serves a ceremony within 2 s', async () => {
    const idle: Socket[] = [];
    try {
      for (let i = 0; i < 200; i++) {
        const socket = connect(agentPort, '127.0.0.1');
        socket.on('error', () => {}); // the agent may evict it
        idle.push(socket);
      }
      await Promise.all(idle.map((s) => new Promise((r) => (s.connecting ? s.once('connect', r).once('close', r) : r(null)))));

      const c = await startGateway('customer-c', dirC);
      const log = c.proc
        .stderr()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { time: number | string; msg: string });
      const started = Date.parse(String(log[0]!.time)) || Number(log[0]!.time);
      const connectedLine = log.find((l) => l.msg === 'agent connected')!;
      const connected = Date.parse(String(connectedLine.time)) || Number(connectedLine.time);

      const vm = new VmClient(c.facePort);
      expect(await vm.step({ op: 'ready' })).toMatchObject({ ok: true }); // python-fido2's own start-up is not the agent's
      const t0 = performance.now();
      // A set the authenticator's PIN earlier: C's VM uses it like any client would.
      expect(await vm.step({ op: 'make', rp: 'c.example', user: 'carol@tenant-c', uid: 'carol', pin: PIN })).toMatchObject({ ok: true });
      const ceremonyMs = performance.now() - t0;
      vm.close();
      expect(connected - started + ceremonyMs).toBeLessThan(2_000);
    } finally {
      for (const s of idle) s.destroy();
    }
  }, 60_000);
});
