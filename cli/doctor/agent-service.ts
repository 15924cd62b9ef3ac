/**
 * Whether the agent's login service (`keytunnel install-service --agent-user`) is installed and running: the
 * systemd user unit (`systemctl --user is-active`), the LaunchAgent (`launchctl print gui/<uid>/<label>`) or the
 * Scheduled Task (`schtasks /Query`). Not installed is fine (n/a): the agent can run in a terminal instead.
 */
import { AGENT_UNIT, installedFile, LAUNCHD_LABEL, TASK_NAME } from '../agent-service/plan.ts';
import { notApplicable, ok, warn, type Finding } from './finding.ts';
import type { DoctorPorts } from './ports.ts';

export interface SessionUser {
  readonly home: string;
  readonly uid?: number;
}

const CHECK = 'service';
const HOW = 'keytunnel install-service --agent-user --soft|--hardware --connect|--listen HOST:PORT';

export async function checkAgentService(ports: DoctorPorts, user: SessionUser): Promise<Finding> {
  switch (ports.platform) {
    case 'linux':
      return checkSystemd(ports, user);
    case 'darwin':
      return checkLaunchd(ports, user);
    case 'win32':
      return checkTask(ports);
    default:
      return notApplicable(CHECK, `no login service for the agent on ${ports.platform}`);
  }
}

async function checkSystemd(ports: DoctorPorts, user: SessionUser): Promise<Finding> {
  const unit = installedFile({ platform: 'linux', home: user.home });
  if (!(await ports.exists(unit))) return notApplicable(CHECK, `the agent does not start at login (optional: ${HOW})`);
  const r = await ports.run('systemctl', ['--user', 'is-active', AGENT_UNIT], 10_000);
  const state = r?.stdout.trim().split('\n')[0]?.slice(0, 40) ?? '';
  if (r === undefined || state === '') {
    return warn(CHECK, `${unit} is installed; cannot tell whether it runs (no systemctl --user here)`, `systemctl --user status ${AGENT_UNIT}`);
  }
  if (state === 'active') return ok(CHECK, `the agent's user unit is installed and running (${AGENT_UNIT})`);
  return warn(
    CHECK,
    `the agent's user unit is installed but ${state} (it starts with your graphical session)`,
    `systemctl --user start ${AGENT_UNIT}; see why: journalctl --user -u keytunnel-agent`,
  );
}

async function checkLaunchd(ports: DoctorPorts, user: SessionUser): Promise<Finding> {
  const plist = installedFile({ platform: 'darwin', home: user.home });
  if (!(await ports.exists(plist))) return notApplicable(CHECK, `the agent does not start at login (optional: ${HOW})`);
  const target = `gui/${user.uid ?? 0}/${LAUNCHD_LABEL}`;
  const r = await ports.run('launchctl', ['print', target], 10_000);
  if (r === undefined || r.code !== 0) {
    return warn(CHECK, `${plist} is installed but not loaded`, `launchctl bootstrap gui/${user.uid ?? 0} ${plist}`);
  }
  const state = /^\s*state = (\S+)/m.exec(r.stdout)?.[1]?.slice(0, 40);
  if (state === 'running') return ok(CHECK, `the agent's LaunchAgent is loaded and running (${LAUNCHD_LABEL})`);
  return warn(
    CHECK,
    `the agent's LaunchAgent is loaded but ${state ?? 'not running'}`,
    `launchctl kickstart ${target}; see why: ~/Library/Logs/keytunnel-agent.log`,
  );
}

async function checkTask(ports: DoctorPorts): Promise<Finding> {
  const r = await ports.run('schtasks', ['/Query', '/TN', TASK_NAME, '/FO', 'LIST'], 15_000);
  if (r === undefined || r.code !== 0) return notApplicable(CHECK, `the agent does not start at logon (optional: ${HOW})`);
  // English Windows says "Status: Running"; other languages translate the label, so an unknown one is not a warning.
  const status = /^Status:\s*(.+)$/m.exec(r.stdout)?.[1]?.trim().slice(0, 40);
  if (status === undefined) return ok(CHECK, `the agent's Scheduled Task ${TASK_NAME} is installed (state not readable)`);
  if (status === 'Running') return ok(CHECK, `the agent's Scheduled Task ${TASK_NAME} is installed and running`);
  return warn(CHECK, `the agent's Scheduled Task ${TASK_NAME} is installed but ${status}`, `schtasks /Run /TN ${TASK_NAME}`);
}
