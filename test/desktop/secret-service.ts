/**
 * A real Secret Service for tests: a private D-Bus session bus (dbus-daemon with a config that has no service
 * directories, so nothing is D-Bus-activated behind the test's back) and gnome-keyring-daemon's secrets
 * component on it, with a fresh "login" keyring in a temporary HOME unlocked by a password on its stdin — as a
 * desktop login (PAM) does. `secret-tool` (libsecret) is the independent reader and writer.
 *
 * Both daemons are this process's children, stopped by pid in `stop()`.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface SecretServiceSession {
  /** HOME, XDG dirs and DBUS_SESSION_BUS_ADDRESS of the session (merge into a child's environment). */
  readonly env: Readonly<Record<string, string>>;
  readonly home: string;
  /** Start the keyring daemon on the bus (the bus alone has no Secret Service). */
  startKeyring(): Promise<void>;
  /** `secret-tool lookup` of a keytunnel entry; undefined when absent. */
  lookup(account: string): string | undefined;
  /** `secret-tool store` of a keytunnel entry (as another program would). */
  store(account: string, secret: string): void;
  stop(): Promise<void>;
}

const BUS_CONFIG = (socket: string): string => `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=${socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
`;

function waitFor(check: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const tick = (): void => {
      if (check()) return resolve();
      if (Date.now() > deadline) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 100);
    };
    tick();
  });
}

function stopChild(child: ChildProcess | undefined): Promise<void> {
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

export async function startSecretService(): Promise<SecretServiceSession> {
  const home = mkdtempSync(join(tmpdir(), 'kt-secrets-'));
  const runtime = join(home, 'run');
  mkdirSync(runtime, { mode: 0o700 });
  const socket = join(runtime, 'bus');
  writeFileSync(join(home, 'bus.conf'), BUS_CONFIG(socket));
  const env: Record<string, string> = {
    HOME: home,
    XDG_DATA_HOME: join(home, 'data'),
    XDG_CONFIG_HOME: join(home, 'config'),
    XDG_CACHE_HOME: join(home, 'cache'),
    XDG_RUNTIME_DIR: runtime,
    DBUS_SESSION_BUS_ADDRESS: `unix:path=${socket}`,
  };
  const childEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env };
  const bus = spawn('dbus-daemon', ['--nofork', '--nopidfile', `--config-file=${join(home, 'bus.conf')}`], { env: childEnv, stdio: 'ignore' });
  let keyring: ChildProcess | undefined;
  const secretTool = (args: string[], input?: string) =>
    spawnSync('secret-tool', args, { env: childEnv, input, encoding: 'utf8', timeout: 10_000 });

  const session: SecretServiceSession = {
    env,
    home,
    async startKeyring() {
      keyring = spawn('gnome-keyring-daemon', ['--foreground', '--unlock', '--components=secrets'], { env: childEnv, stdio: ['pipe', 'ignore', 'ignore'] });
      keyring.stdin!.end('login password'); // what PAM hands it at login: creates and unlocks "login"
      await waitFor(isOwned, 'gnome-keyring on the bus');
    },
    lookup(account) {
      const r = secretTool(['lookup', 'service', 'keytunnel', 'username', account]);
      return r.status === 0 ? r.stdout : undefined;
    },
    store(account, secret) {
      const r = secretTool(['store', '--label', 'planted by the test', 'service', 'keytunnel', 'username', account], secret);
      if (r.status !== 0) throw new Error(`secret-tool store failed: ${r.stderr}`);
    },
    async stop() {
      await stopChild(keyring);
      await stopChild(bus);
      rmSync(home, { recursive: true, force: true });
    },
  };
  function isOwned(): boolean {
    const r = spawnSync(
      'dbus-send',
      ['--session', '--print-reply', '--dest=org.freedesktop.DBus', '/org/freedesktop/DBus', 'org.freedesktop.DBus.NameHasOwner', 'string:org.freedesktop.secrets'],
      { env: childEnv, encoding: 'utf8', timeout: 5_000 },
    );
    return r.status === 0 && /boolean true/.test(r.stdout);
  }
  try {
    await waitFor(() => spawnSync('dbus-send', ['--session', '--print-reply', '--dest=org.freedesktop.DBus', '/org/freedesktop/DBus', 'org.freedesktop.DBus.GetId'], { env: childEnv, timeout: 5_000 }).status === 0, 'the session bus');
  } catch (err) {
    await session.stop();
    throw err;
  }
  return session;
}
