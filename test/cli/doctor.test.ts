/**
 * `keytunnel doctor`: every check on both outcomes through injected ports (this machine has no uhid, no
 * vhci-hcd and is not Windows), the state-dir checks on real temporary state dirs, the peer check against the real
 * tunnel listener on 127.0.0.1, and the command itself as a child process.
 */
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { checkNtp, checkOwnCertificate, checkPeerCertificate } from '../../cli/doctor/clock.ts';
import { checkElevation } from '../../cli/doctor/elevation.ts';
import { exitCodeFor, formatFinding, type Finding } from '../../cli/doctor/finding.ts';
import { checkHidraw, findKeytunnelHidraw, KEYTUNNEL_HID_ID, parseUevent } from '../../cli/doctor/hidraw.ts';
import { checkIdentity, checkTrust } from '../../cli/doctor/identity.ts';
import { checkPeer } from '../../cli/doctor/peer.ts';
import { systemPorts, type CommandResult, type DoctorPorts } from '../../cli/doctor/ports.ts';
import { runDoctor } from '../../cli/doctor/run.ts';
import { checkUdevRule, checkUhid } from '../../cli/doctor/uhid.ts';
import { checkUsbip, USBIP_WIN2_PATH } from '../../cli/doctor/usbip.ts';
import { generateIdentityPem, loadOrCreateIdentity, parseIdentityPem } from '../../tunnel/identity.ts';
import { listen } from '../../tunnel/tls.ts';
import { addToTrustFile, loadTrust, TrustSet } from '../../tunnel/trust.ts';
import { REPO_ROOT } from '../vm/harness.ts';

/** A machine described by a few maps: which paths exist, which are read-writable, file contents, commands. */
interface FakeMachine {
  platform?: NodeJS.Platform;
  now?: Date;
  exists?: string[];
  rw?: string[];
  files?: Record<string, string>;
  dirs?: Record<string, string[]>;
  commands?: Record<string, CommandResult>;
}

function fakePorts(m: FakeMachine): DoctorPorts {
  const real = systemPorts();
  const files = m.files ?? {};
  return {
    platform: m.platform ?? 'linux',
    now: () => m.now ?? new Date(),
    exists: async (p) => (m.exists ?? []).includes(p) || p in files || p in (m.dirs ?? {}),
    canReadWrite: async (p) => (m.rw ?? []).includes(p),
    listDir: async (p) => m.dirs?.[p] ?? [],
    // State-dir files (identity.pem) come from the real disk; sysfs from the map.
    readText: async (p, max) => (p in files ? files[p]!.slice(0, max) : p.startsWith('/sys/') ? undefined : real.readText(p, max)),
    run: async (file, args) => m.commands?.[[file, ...args].join(' ')],
    tcpConnect: real.tcpConnect,
    tlsPeerCertificate: real.tlsPeerCertificate,
  };
}

const byStatus = (fs: readonly Finding[], status: Finding['status']): Finding[] => fs.filter((f) => f.status === status);

const dirs: string[] = [];
function stateDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'kt-doctor-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('uhid and udev checks', () => {
  it('FAILs with `modprobe uhid` when /dev/uhid is missing', async () => {
    const f = await checkUhid(fakePorts({}));
    expect(f.status).toBe('FAIL');
    expect(f.fix).toContain('modprobe uhid');
  });
  it('FAILs with the udev rule + group fix when /dev/uhid is not writable', async () => {
    const f = await checkUhid(fakePorts({ exists: ['/dev/uhid'] }));
    expect(f.status).toBe('FAIL');
    expect(f.message).toContain('not readable and writable');
    expect(f.fix).toContain('install-service');
    expect(f.fix).toContain('usermod -aG keytunnel');
  });
  it('is ok when /dev/uhid is usable, n/a off Linux', async () => {
    expect((await checkUhid(fakePorts({ exists: ['/dev/uhid'], rw: ['/dev/uhid'] }))).status).toBe('ok');
    expect((await checkUhid(fakePorts({ platform: 'win32' }))).status).toBe('n/a');
    expect((await checkUhid(fakePorts({ platform: 'darwin' }))).status).toBe('n/a');
  });
  it('warns when the udev rule is not installed, ok when it is', async () => {
    const missing = await checkUdevRule(fakePorts({}));
    expect(missing.status).toBe('warn');
    expect(missing.fix).toContain('install-service');
    expect((await checkUdevRule(fakePorts({ exists: ['/usr/lib/udev/rules.d/70-keytunnel.rules'] }))).status).toBe('ok');
    expect((await checkUdevRule(fakePorts({ platform: 'win32' }))).status).toBe('n/a');
  });
});

describe('hidraw check', () => {
  const sysfs = (ours: string[], others: string[]): FakeMachine => {
    const files: Record<string, string> = {};
    for (const n of ours) files[`/sys/class/hidraw/${n}/device/uevent`] = `DRIVER=hid-generic\nHID_ID=${KEYTUNNEL_HID_ID}\nHID_NAME=keytunnel soft ${n}\nHID_PHYS=keytunnel\n`;
    for (const n of others) files[`/sys/class/hidraw/${n}/device/uevent`] = 'HID_ID=0003:00001050:00000407\nHID_NAME=Yubico YubiKey\n';
    return { files, dirs: { '/sys/class/hidraw': [...ours, ...others, 'not-a-node'] } };
  };

  it('derives the HID_ID from the uhid face constants (bus USB, 1209:0001)', () => {
    expect(KEYTUNNEL_HID_ID).toBe('00000003:00001209:00000001');
    expect(parseUevent('A=1\nHID_NAME=x=y\n').get('HID_NAME')).toBe('x=y');
  });
  it('finds only keytunnel devices', async () => {
    const found = await findKeytunnelHidraw(fakePorts(sysfs(['hidraw2'], ['hidraw0', 'hidraw1'])));
    expect(found).toEqual([{ node: 'hidraw2', name: 'keytunnel soft hidraw2' }]);
  });
  it('FAILs for a keytunnel node this user cannot open, ok for one it can; other keys are ignored', async () => {
    const m = sysfs(['hidraw2', 'hidraw3'], ['hidraw0']);
    const fs = await checkHidraw(fakePorts({ ...m, rw: ['/dev/hidraw3'] }));
    expect(fs.map((f) => [f.status, f.message.split(' ')[0]])).toEqual([
      ['FAIL', '/dev/hidraw2'],
      ['ok', '/dev/hidraw3'],
    ]);
    expect(fs[0]!.fix).toContain('udev');
  });
  it('is n/a when no keytunnel device is present or off Linux', async () => {
    expect((await checkHidraw(fakePorts(sysfs([], ['hidraw0']))))[0]!.status).toBe('n/a');
    expect((await checkHidraw(fakePorts({ platform: 'win32' })))[0]!.status).toBe('n/a');
  });
});

describe('usbip check', () => {
  it('Linux: warns with modprobe vhci-hcd and apt install usbip when both are missing', async () => {
    const fs = await checkUsbip(fakePorts({}));
    expect(fs.map((f) => f.status)).toEqual(['warn', 'warn']);
    expect(fs[0]!.fix).toBe('sudo modprobe vhci-hcd');
    expect(fs[1]!.fix).toBe('sudo apt install usbip');
  });
  it('Linux: ok when vhci-hcd is loaded and the tool is installed', async () => {
    const fs = await checkUsbip(fakePorts({ exists: ['/sys/module/vhci_hcd', '/usr/sbin/usbip'] }));
    expect(fs.map((f) => f.status)).toEqual(['ok', 'ok']);
  });
  it('Windows: usbip-win2 installed, on PATH, or missing', async () => {
    expect((await checkUsbip(fakePorts({ platform: 'win32', exists: [USBIP_WIN2_PATH] })))[0]!.status).toBe('ok');
    expect((await checkUsbip(fakePorts({ platform: 'win32', commands: { 'usbip --version': { code: 0, stdout: 'usbip 0.9' } } })))[0]!.status).toBe('ok');
    const missing = (await checkUsbip(fakePorts({ platform: 'win32' })))[0]!;
    expect(missing.status).toBe('warn');
    expect(missing.fix).toContain('usbip-win2');
    expect((await checkUsbip(fakePorts({ platform: 'darwin' })))[0]!.status).toBe('n/a');
  });
});

describe('Windows elevation check', () => {
  it('ok when `net session` succeeds, warn when it fails or is missing, n/a elsewhere', async () => {
    expect((await checkElevation(fakePorts({ platform: 'win32', commands: { 'net session': { code: 0, stdout: '' } } }))).status).toBe('ok');
    const denied = await checkElevation(fakePorts({ platform: 'win32', commands: { 'net session': { code: 2, stdout: '' } } }));
    expect(denied.status).toBe('warn');
    expect(denied.fix).toContain('Run as administrator');
    expect((await checkElevation(fakePorts({ platform: 'win32' }))).status).toBe('warn');
    expect((await checkElevation(fakePorts({ platform: 'linux' }))).status).toBe('n/a');
  });
});

describe('identity and trust checks (real state dirs)', () => {
  it('warns without an identity, FAILs on a broken one, ok on a real one', async () => {
    const dir = stateDir();
    const ports = fakePorts({});
    const none = await checkIdentity(ports, dir);
    expect(none.finding.status).toBe('warn');
    expect(none.finding.fix).toContain(`keytunnel id --state-dir ${dir}`);
    writeFileSync(join(dir, 'identity.pem'), 'not a pem');
    expect((await checkIdentity(ports, dir)).finding.status).toBe('FAIL');
    rmSync(join(dir, 'identity.pem'));
    const { identity } = await loadOrCreateIdentity(dir);
    const good = await checkIdentity(ports, dir);
    expect(good.finding.status).toBe('ok');
    expect(good.finding.message).toContain(identity.fingerprint);
    expect(good.identity?.fingerprint).toBe(identity.fingerprint);
  });
  it('FAILs with `keytunnel trust add` when nobody is trusted, ok once someone is (trust file or policy file), FAIL on a bad file', async () => {
    const dir = stateDir();
    const empty = await checkTrust(dir);
    expect(empty.status).toBe('FAIL');
    expect(empty.fix).toContain('keytunnel trust add');
    const peer = parseIdentityPem(await generateIdentityPem(), 'peer');
    await addToTrustFile(dir, peer.fingerprint, 'laptop');
    const one = await checkTrust(dir);
    expect(one.status).toBe('ok');
    expect(one.message).toContain('laptop');
    const policyOnly = stateDir();
    const gw = parseIdentityPem(await generateIdentityPem(), 'gw').fingerprint;
    writeFileSync(join(policyOnly, 'gateways.json'), JSON.stringify({ gateways: { [gw]: { name: 'customer-a', allowRps: ['*'] } } }));
    const fromPolicy = await checkTrust(policyOnly);
    expect(fromPolicy.status).toBe('ok'); // the agent trusts the gateways its policy file names
    expect(fromPolicy.message).toContain('customer-a');
    writeFileSync(join(dir, 'trusted-peers'), 'zz:not-a-fingerprint\n');
    const bad = await checkTrust(dir);
    expect(bad.status).toBe('FAIL');
    expect(bad.message).toContain('trusted-peers:1');
  });
});

describe('peer check (real sockets on 127.0.0.1)', () => {
  const silent = pino({ level: 'silent' });

  async function freePort(): Promise<number> {
    const s = net.createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const port = (s.address() as net.AddressInfo).port;
    await new Promise<void>((r) => s.close(() => r()));
    return port;
  }

  it('n/a without --connect', async () => {
    const r = await checkPeer(systemPorts(), undefined, undefined, new TrustSet());
    expect(r.findings.map((f) => f.status)).toEqual(['n/a']);
  });

  it('FAILs with "nothing listens there" on a refused port', async () => {
    const port = await freePort();
    const r = await checkPeer(systemPorts(), { host: '127.0.0.1', port }, undefined, new TrustSet());
    expect(r.findings).toHaveLength(1);
    expect(r.findings[0]!.status).toBe('FAIL');
    expect(r.findings[0]!.message).toContain('ECONNREFUSED');
    expect(r.findings[0]!.fix).toContain('nothing listens there');
  });

  it('FAILs the TLS step against a server that is not a TLS peer', async () => {
    const server = net.createServer((s) => {
      s.on('error', () => {}); // the probes hang up abruptly
      s.end('SSH-2.0-OpenSSH\r\n');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as net.AddressInfo).port;
      const r = await checkPeer(systemPorts(), { host: '127.0.0.1', port }, undefined, new TrustSet(), 2000);
      expect(r.findings.map((f) => f.status)).toEqual(['ok', 'FAIL']);
      expect(r.findings[1]!.message).toContain('no TLS 1.3 handshake');
    } finally {
      server.close();
    }
  });

  it("against the real tunnel listener: ok when its fingerprint is trusted, FAIL naming it when not", async () => {
    const agentDir = stateDir();
    const gatewayDir = stateDir();
    const { identity: agent } = await loadOrCreateIdentity(agentDir);
    const { identity: gateway } = await loadOrCreateIdentity(gatewayDir);
    const server = await listen({ host: '127.0.0.1', port: 0 }, agent, new TrustSet(), () => {}, { role: 'agent', name: 'laptop', log: silent });
    try {
      const endpoint = { host: '127.0.0.1', port: server.address().port };
      const untrusted = await checkPeer(systemPorts(), endpoint, gateway, await loadTrust({ stateDir: gatewayDir }));
      expect(untrusted.findings.map((f) => f.status)).toEqual(['ok', 'FAIL']);
      expect(untrusted.findings[1]!.message).toContain(agent.fingerprint);
      expect(untrusted.findings[1]!.fix).toContain(`keytunnel trust add ${agent.fingerprint}`);

      await addToTrustFile(gatewayDir, agent.fingerprint, 'laptop');
      const trusted = await checkPeer(systemPorts(), endpoint, gateway, await loadTrust({ stateDir: gatewayDir }));
      expect(trusted.findings.map((f) => f.status)).toEqual(['ok', 'ok']);
      expect(trusted.findings[1]!.message).toContain('laptop');
      expect(trusted.peerCert?.fingerprint256.replace(/:/g, '').toLowerCase()).toBe(agent.fingerprint.replace(/:/g, ''));
    } finally {
      await server.close();
    }
  });
});

describe('clock checks', () => {
  const made = new Date('2026-06-01T12:00:00Z');
  it("FAILs when this clock is before our own certificate's start (clock went back)", async () => {
    const pem = await generateIdentityPem(made);
    const cert = parseIdentityPem(pem, 'x').certPem;
    expect(checkOwnCertificate(cert, new Date('2026-06-01T12:30:00Z')).status).toBe('ok'); // within the 1 h grace
    const back = checkOwnCertificate(cert, new Date('2026-05-31T10:00:00Z'));
    expect(back.status).toBe('FAIL');
    expect(back.message).toContain('clock went back');
    const expired = checkOwnCertificate(cert, new Date('2200-01-01T00:00:00Z'));
    expect(expired.status).toBe('FAIL');
    expect(expired.message).toContain('expired');
  });
  it("warns when the peer's certificate starts after this clock", async () => {
    const peer = new X509Certificate(parseIdentityPem(await generateIdentityPem(made), 'p').certPem);
    const behind = checkPeerCertificate(peer, new Date('2026-06-01T08:00:00Z'));
    expect(behind.status).toBe('warn');
    expect(behind.message).toMatch(/3 h ahead of this clock|180 min ahead/);
    expect(checkPeerCertificate(peer, new Date('2026-06-02T00:00:00Z')).status).toBe('ok');
  });
  it('reads NTP state from timedatectl when systemd answers, says nothing otherwise', async () => {
    const cmd = 'timedatectl show -p NTPSynchronized --value';
    expect((await checkNtp(fakePorts({ commands: { [cmd]: { code: 0, stdout: 'yes\n' } } })))?.status).toBe('ok');
    const no = await checkNtp(fakePorts({ commands: { [cmd]: { code: 0, stdout: 'no\n' } } }));
    expect(no?.status).toBe('warn');
    expect(no?.fix).toContain('set-ntp true');
    expect(await checkNtp(fakePorts({ commands: { [cmd]: { code: 1, stdout: '' } } }))).toBeUndefined();
    expect(await checkNtp(fakePorts({}))).toBeUndefined();
    expect(await checkNtp(fakePorts({ platform: 'win32' }))).toBeUndefined();
  });
});

describe('runDoctor and the report', () => {
  it('a healthy Linux gateway machine: no FAIL, exit 0', async () => {
    const dir = stateDir();
    await loadOrCreateIdentity(dir);
    await addToTrustFile(dir, parseIdentityPem(await generateIdentityPem(), 'p').fingerprint, 'laptop');
    const ports = fakePorts({
      exists: ['/dev/uhid', '/etc/udev/rules.d/70-keytunnel.rules', '/sys/module/vhci_hcd', '/usr/sbin/usbip'],
      rw: ['/dev/uhid'],
    });
    const findings = await runDoctor({ stateDir: dir }, ports);
    expect(byStatus(findings, 'FAIL')).toEqual([]);
    expect(byStatus(findings, 'warn')).toEqual([]);
    expect(findings.map((f) => f.check)).toEqual(['uhid', 'udev', 'hidraw', 'usbip', 'usbip', 'identity', 'trust', 'peer', 'clock', 'elevation', 'service']);
    expect(exitCodeFor(findings)).toBe(0);
    expect(exitCodeFor(findings, true)).toBe(0);
  });
  it('a fresh machine: FAILs for uhid and trust, exit 1; warnings alone pass unless strict', async () => {
    const findings = await runDoctor({ stateDir: stateDir() }, fakePorts({}));
    expect(byStatus(findings, 'FAIL').map((f) => f.check)).toEqual(['uhid', 'trust']);
    expect(exitCodeFor(findings)).toBe(1);
    const warnOnly: Finding[] = [{ check: 'udev', status: 'warn', message: 'm', fix: 'f' }];
    expect(exitCodeFor(warnOnly)).toBe(0);
    expect(exitCodeFor(warnOnly, true)).toBe(1);
  });
  it('formats one line per finding with the fix', () => {
    expect(formatFinding({ check: 'uhid', status: 'FAIL', message: '/dev/uhid is missing', fix: 'sudo modprobe uhid' })).toBe(
      'FAIL  uhid       /dev/uhid is missing — fix: sudo modprobe uhid',
    );
    expect(formatFinding({ check: 'trust', status: 'ok', message: '1 trusted peer' })).toBe('ok    trust      1 trusted peer');
  });
});

describe('keytunnel doctor (the command)', () => {
  const cli = (args: string[]) =>
    spawnSync(process.execPath, [join(REPO_ROOT, 'bin', 'keytunnel.js'), ...args], { encoding: 'utf8', timeout: 30_000 });

  it('prints one line per finding and exits 1 on this machine (no /dev/uhid, nobody trusted)', () => {
    const dir = stateDir();
    const r = cli(['doctor', '--state-dir', dir, '--connect', '127.0.0.1:1']);
    expect(r.status).toBe(1);
    const lines = r.stdout.trimEnd().split('\n');
    for (const line of lines) expect(line).toMatch(/^(ok|warn|FAIL|n\/a) +\S+ +\S/);
    expect(lines.some((l) => l.startsWith('FAIL  trust'))).toBe(true);
    expect(lines.some((l) => l.startsWith('FAIL  peer') && l.includes('127.0.0.1:1'))).toBe(true);
    expect(lines.some((l) => l.startsWith('n/a   elevation'))).toBe(true);
  });
  it('refuses a malformed --connect with exit 2', () => {
    const r = cli(['doctor', '--connect', 'nonsense']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--connect');
  });
});
