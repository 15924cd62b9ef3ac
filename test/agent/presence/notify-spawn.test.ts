/**
 * The default spawn path of the desktop notifier, with node:child_process replaced by a recorder: what would be
 * started for a VM-chosen user name. On the old code the PowerShell -Command line carried the user name inside a
 * '…'-quoted string that U+2019 closes; now the command line is constant and the text travels in the environment.
 */
import { EventEmitter } from 'node:events';
import { describe, expect, it, vi } from 'vitest';
import { FakePresence } from '../../../agent/presence/fake.ts';

const started: { command: string; args: string[]; env: NodeJS.ProcessEnv | undefined }[] = [];
vi.mock('node:child_process', () => ({
  spawn: (command: string, args: string[], options: { env?: NodeJS.ProcessEnv }) => {
    started.push({ command, args, env: options.env });
    return Object.assign(new EventEmitter(), { unref() {} });
  },
}));

const { platformNotifier, withDesktopNotification } = await import('../../../agent/presence/notify.ts');

const PAYLOAD = 'x’,’Info’);Start-Process calc.exe;#';

describe('default notifier spawn (finding 1)', () => {
  it.each(['win32', 'darwin', 'linux'] as const)('%s: the command line is identical for a hostile and a plain user name', async (platform) => {
    started.length = 0;
    const presence = withDesktopNotification(new FakePresence('denied'), platformNotifier(platform)!);
    const ask = (userName: string) =>
      presence.confirm({ action: 'getAssertion', rpId: 'a.example', userName, origin: { gatewayName: 'vm' } }, new AbortController().signal);
    await ask(PAYLOAD);
    await ask('alice');
    expect(started).toHaveLength(2);
    const [hostile, plain] = started;
        if (platform === 'win32') {
      // Constant script; the text is in the child's environment, next to the parent's own variables.
      expect(hostile!.args).toEqual(plain!.args);
      expect(hostile!.args.join(' ')).not.toContain('calc.exe');
      expect(hostile!.env!.KEYTUNNEL_NOTIFY_BODY).toContain(PAYLOAD);
      expect(hostile!.env!.PATH).toBe(process.env.PATH);
    } else {
      // Constant program and options; the text only in the trailing data entries.
      expect(hostile!.args.slice(0, -2)).toEqual(plain!.args.slice(0, -2));
      expect(hostile!.args.at(-1)).toContain(PAYLOAD);
      // The data entry is the notification text itself, not a script built around it.
      expect(hostile!.args.at(-1)).toMatch(/^vm wants to sign in to a\.example as /);
    }
  });
});
