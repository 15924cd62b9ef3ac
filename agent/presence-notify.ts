/**
 * Optional desktop notification for presence prompts (`keytunnel agent --notify`): when a request waits for the
 * user, also pop up a notification (Linux `notify-send`, macOS `osascript`, Windows a PowerShell toast), so a
 * consultant working in the RDP window sees that the agent's terminal is asking. Never required: a missing or
 * failing notifier is ignored, and the decision is still taken in the terminal prompt.
 */
import { spawn } from 'node:child_process';
import type { Presence, PresenceRequest } from './authenticators/soft/ports.ts';
import { describeRequest } from './authenticators/soft/presence-tty.ts';

/** Shows one notification (fire and forget). */
export type Notifier = (title: string, body: string) => void;

/** The platform's notifier, or undefined when there is none we know of. */
export function platformNotifier(platform: NodeJS.Platform = process.platform): Notifier | undefined {
  const run = (cmd: string, args: string[]) => {
    const child = spawn(cmd, args, { stdio: 'ignore', detached: false });
    child.on('error', () => {}); // not installed: notifications are optional
    child.unref();
  };
  switch (platform) {
    case 'linux':
    case 'freebsd':
    case 'openbsd':
      return (title, body) => run('notify-send', ['--app-name=keytunnel', '--urgency=critical', title, body]);
    case 'darwin':
      return (title, body) =>
        run('osascript', ['-e', `display notification ${JSON.stringify(body)} with title ${JSON.stringify(title)}`]);
    case 'win32':
      return (title, body) =>
        run('powershell.exe', [
          '-NoProfile',
          '-Command',
          // A balloon tip from the notification area: available on every Windows without extra modules.
          `Add-Type -AssemblyName System.Windows.Forms; $n = New-Object System.Windows.Forms.NotifyIcon; ` +
            `$n.Icon = [System.Drawing.SystemIcons]::Information; $n.Visible = $true; ` +
            `$n.ShowBalloonTip(10000, ${psString(title)}, ${psString(body)}, 'Info'); Start-Sleep -Seconds 10; $n.Dispose()`,
        ]);
    default:
      return undefined;
  }
}

function psString(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

/** A Presence that announces each request on the desktop, then lets `inner` take the decision. */
export function withDesktopNotification(inner: Presence, notify: Notifier): Presence {
  return {
    confirm(request: PresenceRequest, signal: AbortSignal): Promise<boolean> {
      try {
        notify('keytunnel: approve?', `${describeRequest(request)} — answer in the keytunnel terminal`);
      } catch {
        // optional
      }
      return inner.confirm(request, signal);
    },
  };
}
