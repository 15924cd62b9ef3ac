import { describe, expect, it } from 'vitest';
import {
  ENV_BODY,
  ENV_TITLE,
  MACOS_SCRIPT,
  WINDOWS_SCRIPT,
  escapeNotifyMarkup,
  platformNotifier,
  withDesktopNotification,
  type SpawnNotifier,
} from '../../../agent/presence/notify.ts';
import type { PresenceRequest } from '../../../agent/presence/port.ts';
import { describeRequest } from '../../../agent/presence/describe.ts';
import { displayText } from '../../../agent/display-text.ts';
import { FakePresence } from '../../../agent/presence/fake.ts';

interface Spawned {
  command: string;
  args: readonly string[];
  env: Readonly<Record<string, string>> | undefined;
}

function capture(): { spawned: Spawned[]; run: SpawnNotifier } {
  const spawned: Spawned[] = [];
  return { spawned, run: (command, args, env) => spawned.push({ command, args: [...args], env: env && { ...env } }) };
}

/** The finding's payload and variants: every quote PowerShell accepts, backticks, subexpressions, newlines. */
const PAYLOADS = [
  'x’,’Info’);Start-Process calc.exe;#',
  "x‘,‘Info‘);Start-Process calc.exe;#",
  'x‚,‚Info‚);Start-Process calc.exe;#',
  'x‛,‛Info‛);Start-Process calc.exe;#',
  "x','Info');Start-Process calc.exe;#",
  'x",$(Start-Process calc.exe),"',
  'x`$(Start-Process calc.exe)`',
  '$(Start-Process calc.exe)',
  '" & do shell script "open -a Calculator" & "',
  '--icon=/etc/passwd',
  '<b>bold</b> &amp; <a href="https://evil.example">click</a>',
  "x'\n$n.Dispose(); Start-Process calc.exe\r\n#",
];

const request = (userName: string): PresenceRequest => ({
  action: 'getAssertion',
  rpId: 'login.microsoft.com',
  userName,
  origin: { gatewayName: 'customer-a', gatewayFingerprint: '3f:a1:9c' },
});

describe('desktop notification for presence prompts', () => {
  const plain = request('alice@contoso.com');

  it('announces the request, naming the VM, RP and user, and leaves the decision to the prompt', async () => {
    const shown: string[] = [];
    const presence = withDesktopNotification(new FakePresence('denied'), (title, body) => shown.push(`${title}|${body}`));
    expect(await presence.confirm(plain, new AbortController().signal)).toBe('denied');
    expect(shown).toEqual([
      'keytunnel: approve?|customer-a (fp 3f:a1:9c) wants to sign in to login.microsoft.com as alice@contoso.com — answer in the keytunnel terminal',
    ]);
  });

  it('a failing notifier never blocks the prompt', async () => {
    const presence = withDesktopNotification(new FakePresence(), () => {
      throw new Error('no display');
    });
    expect(await presence.confirm(plain, new AbortController().signal)).toBe('approved');
  });

  it('knows a notifier per desktop platform; a missing program is ignored', () => {
    expect(platformNotifier('linux')).toBeTypeOf('function');
    expect(platformNotifier('darwin')).toBeTypeOf('function');
    expect(platformNotifier('win32')).toBeTypeOf('function');
    expect(platformNotifier('aix')).toBeUndefined();
    // notify-send is not installed on this machine: starting it must not throw or crash the process.
    expect(() => platformNotifier('linux')!('t', 'b')).not.toThrow();
  });
});

describe('request text never becomes code (finding 1: command injection through notifications)', () => {
  /** Runs every payload through the real presence wrapper and the platform's notifier, capturing the spawn. */
  function notifyAll(platform: NodeJS.Platform): Spawned[] {
    const { spawned, run } = capture();
    const presence = withDesktopNotification(new FakePresence('denied'), platformNotifier(platform, run)!);
    for (const payload of PAYLOADS) void presence.confirm(request(payload), new AbortController().signal);
    expect(spawned).toHaveLength(PAYLOADS.length);
    return spawned;
  }
  const bodyOf = (payload: string) => displayText(`${describeRequest(request(payload))} — answer in the keytunnel terminal`, 400);

  it('Windows: one constant PowerShell script for every payload; title and body arrive as environment data', () => {
    const spawned = notifyAll('win32');
    for (const [i, s] of spawned.entries()) {
      expect(s.command).toBe('powershell.exe');
      // The command line is the same constant for every payload: nothing of the request is in it.
      expect(s.args).toEqual(['-NoProfile', '-NonInteractive', '-Command', WINDOWS_SCRIPT]);
      expect(s.env).toEqual({ [ENV_TITLE]: 'keytunnel: approve?', [ENV_BODY]: bodyOf(PAYLOADS[i]!) });
    }
    // The script reads the text only through $env: and holds no quote a payload could close.
    expect(WINDOWS_SCRIPT).toContain(`$env:${ENV_TITLE}, $env:${ENV_BODY}`);
    expect(WINDOWS_SCRIPT).not.toMatch(/["‘’‚‛]/);
  });

  it('the exact payload of the finding arrives unmodified, as data, in the environment', () => {
    const { spawned, run } = capture();
    platformNotifier('win32', run)!('keytunnel: approve?', `user ${PAYLOADS[0]}`);
    expect(spawned[0]!.env![ENV_BODY]).toBe('user x’,’Info’);Start-Process calc.exe;#');
    expect(spawned[0]!.args.join(' ')).not.toContain('calc');
    // The whole way from a VM-supplied user name: the body holds the payload verbatim.
    expect(notifyAll('win32')[0]!.env![ENV_BODY]).toContain(' as x’,’Info’);Start-Process calc.exe;#');
  });

  it('newlines and other controls in the payload are shown as printable text, not passed on', () => {
    const spawned = notifyAll('win32');
    const body = spawned[PAYLOADS.length - 1]!.env![ENV_BODY]!;
    expect(body).toContain("x'␊$n.Dispose(); Start-Process calc.exe␍␊#");
    for (const s of spawned) expect(s.env![ENV_BODY]).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
  });

  it('macOS: a constant `on run argv` script; title and body follow it as argv items', () => {
    const spawned = notifyAll('darwin');
    const prefix = ['-e', MACOS_SCRIPT[0]!, '-e', MACOS_SCRIPT[1]!, '-e', MACOS_SCRIPT[2]!, 'keytunnel'];
    for (const [i, s] of spawned.entries()) {
      expect(s.command).toBe('osascript');
      expect(s.args.slice(0, prefix.length)).toEqual(prefix);
      expect(s.args.slice(prefix.length)).toEqual(['keytunnel: approve?', bodyOf(PAYLOADS[i]!)]);
      expect(s.env).toBeUndefined();
    }
    expect(MACOS_SCRIPT.join('\n')).toBe(
      'on run argv\ndisplay notification (item 3 of argv) with title (item 2 of argv)\nend run',
    );
  });

  it('Linux: notify-send gets the text as separate argv entries after --, body markup escaped', () => {
    const spawned = notifyAll('linux');
    const prefix = ['--app-name=keytunnel', '--urgency=critical', '--'];
    for (const [i, s] of spawned.entries()) {
      expect(s.command).toBe('notify-send');
      expect(s.args.slice(0, prefix.length)).toEqual(prefix);
      expect(s.args.slice(prefix.length)).toEqual(['keytunnel: approve?', escapeNotifyMarkup(bodyOf(PAYLOADS[i]!))]);
    }
    const markup = spawned[PAYLOADS.indexOf('<b>bold</b> &amp; <a href="https://evil.example">click</a>')]!.args[4]!;
    expect(markup).toContain('&lt;b&gt;bold&lt;/b&gt; &amp;amp; &lt;a href="https://evil.example"&gt;click&lt;/a&gt;');
    expect(markup).not.toMatch(/[<>]/);
  });

  it('bounds what a notification shows', () => {
    const { spawned, run } = capture();
    platformNotifier('win32', run)!('t'.repeat(1000), 'b'.repeat(100_000));
    expect(Array.from(spawned[0]!.env![ENV_TITLE]!).length).toBeLessThanOrEqual(65);
    expect(Array.from(spawned[0]!.env![ENV_BODY]!).length).toBeLessThanOrEqual(401);
  });
});
