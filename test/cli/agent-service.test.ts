/**
 * `keytunnel install-service --agent-user`: the agent command line (the user's flags + --approve dialog), and the
 * three login services as files checked by tools that read them:
 *   - the systemd user unit: `systemd-analyze --user verify`, with an argument that needs quoting;
 *   - the LaunchAgent plist: Python's plistlib (ProgramArguments read back equal to the argv);
 *   - the Scheduled Task XML: UTF-16 with a BOM, parsed by Python's XML parser, the fields checked, and the
 *     <Arguments> split as the Windows C runtime splits them back into the argv (the Task Scheduler XSD is not
 *     obtainable here, and no Windows host runs schtasks: see README "Desktop");
 *   - the steps in order (write, reload, enable / bootstrap / schtasks /Create + /Run), --remove's reverse, and
 *     --dry-run writing and running nothing.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import {
  agentArguments,
  AgentServiceError,
  applyAgentServicePlan,
  planAgentService,
  systemAgentServiceIo,
  type AgentFlags,
  type AgentServiceUser,
  type Step,
} from '../../cli/agent-service/plan.ts';
import { splitWindowsArgs, systemdWord, windowsArg, windowsCommandLine } from '../../cli/agent-service/quote.ts';
import { defaultSources } from '../../cli/commands/install-service.ts';

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'kt-agent-svc-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const sources = defaultSources();
const FLAGS: AgentFlags = {
  soft: true,
  hardware: false,
  connect: '192.0.2.10:7443',
  trust: ['AB:CD:EF'],
  name: 'Ann\'s "work" laptop 100% $HOME',
  notify: false,
};

/** Applies a plan into real files; commands are recorded, not run (no user manager, launchd or schtasks here). */
async function apply(flags: AgentFlags | undefined, user: AgentServiceUser, remove = false, dryRun = false) {
  const plan = await planAgentService(flags, sources, user, { remove, softPassphrase: 'remembered' });
  const lines: string[] = [];
  const ran: string[] = [];
  const real = systemAgentServiceIo((l) => lines.push(l));
  const failed = await applyAgentServicePlan(plan, { ...real, run: async (argv) => (ran.push(argv.join(' ')), 0) }, dryRun);
  return { plan, lines, ran, failed };
}

const stepKinds = (steps: readonly Step[]): string[] => steps.map((s) => (s.kind === 'run' ? `run ${s.argv.join(' ')}` : `${s.kind}`));

describe('agentArguments', () => {
  it("the user's flags, validated, then --approve dialog", () => {
    expect(agentArguments({ ...FLAGS, hardware: true, notify: true, profile: 'work', stateDir: 'rel/dir' })).toEqual([
      'agent', '--soft', '--hardware', '--connect', '192.0.2.10:7443', '--trust', 'AB:CD:EF', '--name', FLAGS.name,
      '--profile', 'work', '--state-dir', join(process.cwd(), 'rel/dir'), '--notify', '--approve', 'dialog',
    ]);
    expect(agentArguments({ soft: false, hardware: true, listen: '[::1]:7443', trust: [], notify: false })).toEqual(['agent', '--hardware', '--listen', '[::1]:7443', '--approve', 'dialog']);
  });

  it('refuses what the agent would refuse, before writing anything', () => {
    const bad: [Partial<AgentFlags>, RegExp][] = [
      [{ soft: false, hardware: false }, /--soft, --hardware/],
      [{ connect: undefined }, /exactly one of --listen/],
      [{ listen: '127.0.0.1:1' }, /exactly one of --listen/],
      [{ connect: '127.0.0.1:0' }, /PORT must be/],
      [{ trust: ['AB CD'] }, /not a fingerprint/],
      [{ name: 'line\nbreak' }, /control characters/],
      [{ profile: '../x' }, /invalid profile name/],
    ];
    for (const [patch, message] of bad) expect(() => agentArguments({ ...FLAGS, ...patch })).toThrow(message);
  });
});

describe('quoting', () => {
  it('systemd words: %, $, quotes and spaces', () => {
    expect(systemdWord('/usr/bin/node')).toBe('/usr/bin/node');
    expect(systemdWord('100%')).toBe('100%%');
    expect(systemdWord('a b')).toBe('"a b"');
    expect(systemdWord('say "hi" $HOME \\')).toBe('"say \\"hi\\" $$HOME \\\\"');
    expect(() => systemdWord('a\nb')).toThrow(/control character/);
  });

  it('Windows arguments split back to themselves (C runtime rules), for any printable text', () => {
    expect(windowsArg('C:\\Program Files\\nodejs\\node.exe')).toBe('"C:\\Program Files\\nodejs\\node.exe"');
    expect(windowsArg('a"b')).toBe('"a\\"b"');
    expect(windowsArg('end\\')).toBe('end\\');
    expect(windowsArg('sp ace\\')).toBe('"sp ace\\\\"');
    expect(windowsArg('')).toBe('""');
    const printable = fc.string({ unit: fc.constantFrom(' ', '"', '\\', 'a', 'Z', '%', "'", 'é', '€') });
    fc.assert(
      fc.property(fc.array(printable, { maxLength: 6 }), (argv) => {
        expect(splitWindowsArgs(windowsCommandLine(argv))).toEqual(argv);
      }),
      { numRuns: 500 },
    );
  });
});

describe('Linux: systemd user unit', () => {
  it('writes ~/.config/systemd/user/keytunnel-agent.service, reloads, enables --now; systemd-analyze --user verify passes', async () => {
    const home = tmp();
    const { plan, ran, failed } = await apply(FLAGS, { platform: 'linux', home, uid: 1000 });
    expect(failed).toEqual([]);
    const unitPath = join(home, '.config/systemd/user/keytunnel-agent.service');
    expect(plan.file).toBe(unitPath);
    expect(ran).toEqual(['systemctl --user daemon-reload', 'systemctl --user enable --now keytunnel-agent.service']);
    const unit = readFileSync(unitPath, 'utf8');
    expect(unit.split('\n')).toContain(
      `ExecStart=${process.execPath} ${sources.keytunnel} agent --soft --connect 192.0.2.10:7443 --trust AB:CD:EF ` +
        '--name "Ann\'s \\"work\\" laptop 100%% $$HOME" --approve dialog',
    );
    for (const line of ['WantedBy=graphical-session.target', 'PartOf=graphical-session.target', 'Restart=on-failure', 'UMask=0077']) {
      expect(unit.split('\n')).toContain(line);
    }
    const r = spawnSync('systemd-analyze', ['--user', 'verify', unitPath], { encoding: 'utf8', env: { ...process.env, XDG_RUNTIME_DIR: tmp() } });
    expect(r.error).toBeUndefined();
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
  });

  it('--remove: disable --now, delete, daemon-reload; --dry-run writes and runs nothing', async () => {
    const home = tmp();
    const dry = await apply(FLAGS, { platform: 'linux', home }, false, true);
    expect(dry.ran).toEqual([]);
    expect(spawnSync('test', ['-e', dry.plan.file]).status).toBe(1);
    expect(dry.lines.join('\n')).toMatch(/would write .*keytunnel-agent\.service[\s\S]*would run: systemctl --user enable --now/);

    await apply(FLAGS, { platform: 'linux', home });
    const removed = await apply(undefined, { platform: 'linux', home }, true);
    expect(stepKinds(removed.plan.steps)).toEqual(['run systemctl --user disable --now keytunnel-agent.service', 'delete', 'run systemctl --user daemon-reload']);
    expect(spawnSync('test', ['-e', removed.plan.file]).status).toBe(1);
    expect(removed.lines).toContain(`deleted ${removed.plan.file}`);
  });
});

describe('macOS: LaunchAgent', () => {
  it('a plist that plistlib reads back: label, exact argv, at load, kept alive on failure, Aqua only', async () => {
    const home = tmp();
    const { plan, ran } = await apply({ ...FLAGS, hardware: true }, { platform: 'darwin', home, uid: 501 });
    expect(plan.file).toBe(join(home, 'Library/LaunchAgents/keytunnel.agent.plist'));
    expect(ran).toEqual(['launchctl bootout gui/501/keytunnel.agent', `launchctl bootstrap gui/501 ${plan.file}`]);
    const r = spawnSync('python3', ['-c', 'import json,plistlib,sys; print(json.dumps(plistlib.load(open(sys.argv[1], "rb"))))', plan.file], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    const plist = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(plist).toEqual({
      Label: 'keytunnel.agent',
      ProgramArguments: [...plan.argv],
      RunAtLoad: true,
      KeepAlive: { SuccessfulExit: false },
      ThrottleInterval: 10,
      LimitLoadToSessionType: 'Aqua',
      ProcessType: 'Interactive',
      Umask: 63,
      StandardOutPath: join(home, 'Library/Logs/keytunnel-agent.log'),
      StandardErrorPath: join(home, 'Library/Logs/keytunnel-agent.log'),
    });
    expect(plan.argv.slice(2)).toEqual(agentArguments({ ...FLAGS, hardware: true }));
    const removed = await apply(undefined, { platform: 'darwin', home, uid: 501 }, true);
    expect(removed.ran).toEqual(['launchctl bootout gui/501/keytunnel.agent']);
    expect(spawnSync('test', ['-e', plan.file]).status).toBe(1);
  });
});

describe('Windows: Scheduled Task at logon', () => {
  const user = (home: string): AgentServiceUser => ({ platform: 'win32', home, windowsUser: 'WORKPC\\ann', localAppData: join(home, 'AppData', 'Local') });

  /** The task file parsed by Python's XML parser (from the UTF-16 bytes), as a flat map of element paths. */
  function parseTask(file: string): Record<string, string> {
    const script = `
import json, sys, xml.etree.ElementTree as ET
data = open(sys.argv[1], 'rb').read()
assert data[:2] == b'\\xff\\xfe', 'no UTF-16LE byte-order mark'
root = ET.fromstring(data.decode('utf-16').replace('encoding="UTF-16"', '', 1))
ns = '{http://schemas.microsoft.com/windows/2004/02/mit/task}'
assert root.tag == ns + 'Task' and root.get('version') == '1.2', root.tag
out = {}
def walk(el, path):
    kids = list(el)
    if not kids:
        out[path] = el.text or ''
    for k in kids:
        walk(k, path + '/' + k.tag.replace(ns, ''))
walk(root, '')
out['@Actions.Context'] = root.find(ns + 'Actions').get('Context')
out['@Principal.id'] = root.find(ns + 'Principals/' + ns + 'Principal').get('id')
print(json.dumps(out))
`;
    const r = spawnSync('python3', ['-c', script, file], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    return JSON.parse(r.stdout) as Record<string, string>;
  }

  it('UTF-16 task XML: logon trigger and principal for the user, least privilege, the argv round-trips; /Create then /Run', async () => {
    const home = tmp();
    const { plan, ran } = await apply(FLAGS, user(home));
    expect(plan.file).toBe(join(home, 'AppData/Local/keytunnel/keytunnel-agent.task.xml'));
    expect(ran).toEqual([`schtasks /Create /TN keytunnel-agent /XML ${plan.file} /F`, 'schtasks /Run /TN keytunnel-agent']);
    const t = parseTask(plan.file);
    expect(t['/Triggers/LogonTrigger/UserId']).toBe('WORKPC\\ann');
    expect(t['/Triggers/LogonTrigger/Enabled']).toBe('true');
    expect(t['/Principals/Principal/UserId']).toBe('WORKPC\\ann');
    expect(t['/Principals/Principal/LogonType']).toBe('InteractiveToken');
    expect(t['/Principals/Principal/RunLevel']).toBe('LeastPrivilege');
    expect(t['@Principal.id']).toBe('Author');
    expect(t['@Actions.Context']).toBe('Author');
    expect(t['/Settings/ExecutionTimeLimit']).toBe('PT0S');
    expect(t['/Settings/MultipleInstancesPolicy']).toBe('IgnoreNew');
    expect(t['/Settings/DisallowStartIfOnBatteries']).toBe('false');
    expect(t['/RegistrationInfo/URI']).toBe('\\keytunnel-agent');
    expect(splitWindowsArgs(t['/Actions/Exec/Command']!)).toEqual([process.execPath]);
    expect(splitWindowsArgs(t['/Actions/Exec/Arguments']!)).toEqual(plan.argv.slice(1));
    expect(plan.argv.slice(2)).toEqual(agentArguments(FLAGS));
  });

  it('--hardware: RunLevel HighestAvailable (as /RL HIGHEST), and the installer says why and that it needs elevation', async () => {
    const home = tmp();
    const { plan, lines } = await apply({ ...FLAGS, hardware: true }, user(home));
    expect(parseTask(plan.file)['/Principals/Principal/RunLevel']).toBe('HighestAvailable');
    const said = lines.join('\n');
    expect(said).toContain('warning: --hardware: the task runs with highest privileges (RunLevel HighestAvailable, as schtasks /RL HIGHEST)');
    expect(said).toContain('only administrators open FIDO security keys');
    expect(said).toContain('elevated prompt');
  });

  it('--remove: /End, /Delete, then the file; a missing Windows user is a clear error', async () => {
    const home = tmp();
    await apply(FLAGS, user(home));
    const removed = await apply(undefined, user(home), true);
    expect(removed.ran).toEqual(['schtasks /End /TN keytunnel-agent', 'schtasks /Delete /TN keytunnel-agent /F']);
    expect(spawnSync('test', ['-e', removed.plan.file]).status).toBe(1);
    await expect(planAgentService(FLAGS, sources, { platform: 'win32', home }, { remove: false })).rejects.toBeInstanceOf(AgentServiceError);
  });
});

describe('the soft passphrase', () => {
  it('warns when the keychain does not hold it, with the command that remembers it', async () => {
    const plan = await planAgentService(FLAGS, sources, { platform: 'linux', home: tmp() }, { remove: false, softPassphrase: 'missing' });
    expect(plan.warnings.join('\n')).toContain(
      "the soft authenticator's passphrase is not in the keychain: until it is, the agent asks for it in a dialog (pinentry) " +
        `or fails to start. Remember it once in a terminal: keytunnel agent --soft --connect 192.0.2.10:7443 --trust AB:CD:EF --name 'Ann'\\''s "work" laptop 100% $HOME' --remember-passphrase`,
    );
    const ok = await planAgentService(FLAGS, sources, { platform: 'linux', home: tmp() }, { remove: false, softPassphrase: 'remembered' });
    expect(ok.warnings).toEqual([]);
  });
});
