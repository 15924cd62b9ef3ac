/**
 * The platform's per-user configuration directory for keytunnel's state (the soft authenticator's encrypted
 * store, later the tunnel identity): $XDG_CONFIG_HOME/keytunnel or ~/.config/keytunnel on Linux and the BSDs,
 * ~/Library/Application Support/keytunnel on macOS, %APPDATA%\keytunnel on Windows.
 *
 * A stop-gap until tunnel/identity.ts exports `defaultStateDir()`; both must answer the same directory.
 */
import { homedir } from 'node:os';
import { join, isAbsolute, win32 } from 'node:path';

export function defaultStateDir(
  env: Readonly<Record<string, string | undefined>> = process.env,
  platform: NodeJS.Platform = process.platform,
  home: string = homedir(),
): string {
  if (platform === 'win32') {
    const appData = env.APPDATA && win32.isAbsolute(env.APPDATA) ? env.APPDATA : win32.join(home, 'AppData', 'Roaming');
    return win32.join(appData, 'keytunnel');
  }
  if (platform === 'darwin') return join(home, 'Library', 'Application Support', 'keytunnel');
  // XDG Base Directory spec: a relative $XDG_CONFIG_HOME is invalid and must be ignored.
  const xdg = env.XDG_CONFIG_HOME;
  return join(xdg && isAbsolute(xdg) ? xdg : join(home, '.config'), 'keytunnel');
}
