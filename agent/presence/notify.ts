/**
 * Optional desktop notification for presence prompts (`keytunnel agent --notify`): when a request waits for the
 * user, also pop up a notification (Linux `notify-send`, macOS `osascript`, Windows a PowerShell balloon tip), so
 * a consultant working in the RDP window sees that the agent's terminal is asking. Never required: a missing or
 * failing notifier is ignored, and the decision is still taken in the terminal prompt.
 *
 * The text comes from the VM (RP ID, user name, the gateway's announced name), so it is never part of a script or
 * command line: each platform runs a constant program and gets the text as data.
 * - Windows: a constant PowerShell script reads the title and body from the environment variables
 *   KEYTUNNEL_NOTIFY_TITLE / KEYTUNNEL_NOTIFY_BODY. (Interpolating into a single-quoted PowerShell string is not
 *   safe even with '' doubling: PowerShell also ends such strings at U+2018–U+201B.)
 * - macOS: a constant AppleScript `on run argv` handler; the text follows the script as argv items.
 * - Linux/BSD: notify-send with the text as its own argv entries after `--` (so a body starting with '-' is not an
 *   option), and the body's markup characters escaped (the notification spec lets servers render body markup).
 * Both strings are first reduced to printable text of bounded length (displayText).
 */
import { spawn } from 'node:child_process';
import { displayText } from '../display-text.ts';
import { describeRequest } from './describe.ts';
import type { Presence, PresenceOutcome, PresenceRequest } from './port.ts';

/** Shows one notification (fire and forget). */
export type Notifier = (title: string, body: string) => void;

/** Starts a program (fire and forget); injectable so tests see exactly what would run. */
export type SpawnNotifier = (command: string, args: readonly string[], env?: Readonly<Record<string, string>>) => void;

/** Bounds on what a notification shows. */
export const NOTIFY_TITLE_MAX = 64;
export const NOTIFY_BODY_MAX = 400;

export const ENV_TITLE = 'KEYTUNNEL_NOTIFY_TITLE';
export const ENV_BODY = 'KEYTUNNEL_NOTIFY_BODY';

/**
 * The Windows script, constant: a balloon tip from the notification area (available on every Windows without extra
 * modules). Title and body are read from the environment, so they are data, never code.
 */
export const WINDOWS_SCRIPT =
  'Add-Type -AssemblyName System.Windows.Forms; $n = New-Object System.Windows.Forms.NotifyIcon; ' +
  '$n.Icon = [System.Drawing.SystemIcons]::Information; $n.Visible = $true; ' +
  `$n.ShowBalloonTip(10000, $env:${ENV_TITLE}, $env:${ENV_BODY}, 'Info'); Start-Sleep -Seconds 10; $n.Dispose()`;

/**
 * The macOS script, constant. argv is [marker, title, body]: the constant first item ends osascript's option
 * parsing, so nothing after it is read as an option whatever it starts with.
 */
export const MACOS_SCRIPT = [
  'on run argv',
  'display notification (item 3 of argv) with title (item 2 of argv)',
  'end run',
];
const MACOS_ARGV_MARKER = 'keytunnel';

const realSpawn: SpawnNotifier = (command, args, env) => {
  const child = spawn(command, [...args], {
    stdio: 'ignore',
    detached: false,
    windowsHide: true,
    env: env === undefined ? process.env : { ...process.env, ...env },
  });
  child.on('error', () => {}); // not installed: notifications are optional
  child.unref();
};

/** Body text for notify-send: the notification spec's body markup is a small XML subset, so &, < and > are escaped. */
export function escapeNotifyMarkup(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** The platform's notifier, or undefined when there is none we know of. */
export function platformNotifier(
  platform: NodeJS.Platform = process.platform,
  run: SpawnNotifier = realSpawn,
): Notifier | undefined {
  const show = (deliver: (title: string, body: string) => void): Notifier => (title, body) =>
    deliver(displayText(title, NOTIFY_TITLE_MAX), displayText(body, NOTIFY_BODY_MAX));
  switch (platform) {
    case 'linux':
    case 'freebsd':
    case 'openbsd':
      return show((title, body) =>
        run('notify-send', ['--app-name=keytunnel', '--urgency=critical', '--', title, escapeNotifyMarkup(body)]),
      );
    case 'darwin':
      return show((title, body) =>
        run('osascript', [...MACOS_SCRIPT.flatMap((line) => ['-e', line]), MACOS_ARGV_MARKER, title, body]),
      );
    case 'win32':
      return show((title, body) =>
        run('powershell.exe', ['-NoProfile', '-NonInteractive', '-Command', WINDOWS_SCRIPT], {
          [ENV_TITLE]: title,
          [ENV_BODY]: body,
        }),
      );
    default:
      return undefined;
  }
}

/** A Presence that announces each request on the desktop, then lets `inner` take the decision. */
export function withDesktopNotification(inner: Presence, notify: Notifier): Presence {
  return {
    confirm(request: PresenceRequest, signal: AbortSignal): Promise<PresenceOutcome> {
      try {
        notify('keytunnel: approve?', `${describeRequest(request)} — answer in the keytunnel terminal`);
      } catch {
        // optional
      }
      return inner.confirm(request, signal);
    },
  };
}
