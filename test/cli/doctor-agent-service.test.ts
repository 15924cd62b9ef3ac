/**
 * `keytunnel doctor`'s "service" line: the agent's login service not installed (n/a), installed and running
 * (ok), installed but stopped (warn, with the command that starts it), on Linux, macOS and Windows — from the
 * files install-service writes and the answers of systemctl --user, launchctl and schtasks.
 */
import { describe, expect, it } from 'vitest';
import { checkAgentService } from '../../cli/doctor/agent-service.ts';
import type { CommandResult, DoctorPorts } from '../../cli/doctor/ports.ts';

function ports(platform: NodeJS.Platform, exists: string[], commands: Record<string, CommandResult>): DoctorPorts {
  const none = async (): Promise<never> => {
    throw new Error('not used');
  };
  return {
    platform,
    now: () => new Date(),
    exists: async (p) => exists.includes(p),
    canReadWrite: async () => false,
    listDir: async () => [],
    readText: async () => undefined,
    run: async (file, args) => commands[[file, ...args].join(' ')],
    tcpConnect: none,
    tlsPeerCertificate: none,
  };
}

const HOME = '/home/ann';
const UNIT = '/home/ann/.config/systemd/user/keytunnel-agent.service';
const PLIST = '/home/ann/Library/LaunchAgents/keytunnel.agent.plist';

describe('doctor: the agent login service', () => {
  it('Linux: n/a without the unit; ok when active; warn with the start command when not', async () => {
    expect((await checkAgentService(ports('linux', [], {}), { home: HOME })).status).toBe('n/a');
    const isActive = 'systemctl --user is-active keytunnel-agent.service';
    const running = await checkAgentService(ports('linux', [UNIT], { [isActive]: { code: 0, stdout: 'active\n' } }), { home: HOME });
    expect(running).toMatchObject({ check: 'service', status: 'ok' });
    const stopped = await checkAgentService(ports('linux', [UNIT], { [isActive]: { code: 3, stdout: 'failed\n' } }), { home: HOME });
    expect(stopped.status).toBe('warn');
    expect(stopped.message).toContain('installed but failed');
    expect(stopped.fix).toContain('systemctl --user start keytunnel-agent.service');
    const noSystemctl = await checkAgentService(ports('linux', [UNIT], {}), { home: HOME });
    expect(noSystemctl.status).toBe('warn');
  });

  it('macOS: n/a without the plist; ok when launchd says running; warn when not loaded', async () => {
    expect((await checkAgentService(ports('darwin', [], {}), { home: HOME, uid: 501 })).status).toBe('n/a');
    const print = 'launchctl print gui/501/keytunnel.agent';
    const out = 'gui/501/keytunnel.agent = {\n\tactive count = 1\n\tstate = running\n}\n';
    expect((await checkAgentService(ports('darwin', [PLIST], { [print]: { code: 0, stdout: out } }), { home: HOME, uid: 501 })).status).toBe('ok');
    const unloaded = await checkAgentService(ports('darwin', [PLIST], { [print]: { code: 113, stdout: '' } }), { home: HOME, uid: 501 });
    expect(unloaded.status).toBe('warn');
    expect(unloaded.fix).toBe(`launchctl bootstrap gui/501 ${PLIST}`);
  });

  it('Windows: n/a when schtasks knows no task; ok when Running; warn when Ready', async () => {
    const query = 'schtasks /Query /TN keytunnel-agent /FO LIST';
    expect((await checkAgentService(ports('win32', [], { [query]: { code: 1, stdout: '' } }), { home: HOME })).status).toBe('n/a');
    const list = (status: string): CommandResult => ({ code: 0, stdout: `Folder: \\\r\nTaskName:      \\keytunnel-agent\nNext Run Time: N/A\nStatus:        ${status}\n` });
    expect((await checkAgentService(ports('win32', [], { [query]: list('Running') }), { home: HOME })).status).toBe('ok');
    const ready = await checkAgentService(ports('win32', [], { [query]: list('Ready') }), { home: HOME });
    expect(ready.status).toBe('warn');
    expect(ready.fix).toBe('schtasks /Run /TN keytunnel-agent');
  });
});
