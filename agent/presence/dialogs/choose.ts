/**
 * Which dialog program asks (issue 15): GnuPG's pinentry first — the one in KEYTUNNEL_PINENTRY when set, else
 * the system's `pinentry` (pinentry-mac on macOS, Gpg4win's on Windows) — then the platform's own dialog:
 * zenity or kdialog on Linux and the BSDs, osascript on macOS, a PowerShell/WinForms dialog on Windows.
 *
 * On Linux/BSD a dialog needs a display (DISPLAY or WAYLAND_DISPLAY); without one only a pinentry named in
 * KEYTUNNEL_PINENTRY is used (pinentry-curses/-tty draw on the terminal in GPG_TTY). The list is tried in order
 * at each request: a program that cannot show a dialog (not installed, no display) hands over to the next one.
 */
import type { DialogBackend } from './backend.ts';
import { findProgram, type FindProgram } from './find-program.ts';
import { kdialogBackend } from './kdialog.ts';
import { osascriptBackend } from './osascript.ts';
import { pinentryBackend } from './pinentry.ts';
import { powershellBackend } from './powershell.ts';
import { zenityBackend } from './zenity.ts';

export const PINENTRY_ENV = 'KEYTUNNEL_PINENTRY';

export interface ChooseOptions {
  readonly env?: NodeJS.ProcessEnv;
  readonly platform?: NodeJS.Platform;
  readonly find?: FindProgram;
}

/** Gpg4win / GnuPG for Windows install their pinentry here (not on PATH by default). */
function windowsPinentries(env: NodeJS.ProcessEnv): string[] {
  const roots = [env['ProgramFiles(x86)'], env['ProgramFiles']].filter((r): r is string => !!r);
  return roots.flatMap((r) => [`${r}\\GnuPG\\bin\\pinentry.exe`, `${r}\\Gpg4win\\bin\\pinentry.exe`]);
}

/** The backends to try, in order (empty when none can work here). */
export function chooseDialogBackends(options: ChooseOptions = {}): DialogBackend[] {
  const env = options.env ?? process.env;
  const platform = options.platform ?? process.platform;
  const find = options.find ?? ((name: string) => findProgram(name, env, platform));
  const tty = env['GPG_TTY'] ? { name: env['GPG_TTY'], type: env['TERM'] } : undefined;
  const chosen = env[PINENTRY_ENV];
  if (chosen) return [pinentryBackend({ program: find(chosen) ?? chosen, tty, env })];

  const out: DialogBackend[] = [];
  const add = (name: string, make: (path: string) => DialogBackend): void => {
    const path = find(name);
    if (path) out.push(make(path));
  };
  switch (platform) {
    case 'darwin':
      add('pinentry-mac', (program) => pinentryBackend({ program, env }));
      out.push(osascriptBackend(find('osascript') ?? '/usr/bin/osascript', env));
      return out;
    case 'win32': {
      const pinentry = find('pinentry') ?? windowsPinentries(env).map((p) => find(p)).find((p) => p !== undefined);
      if (pinentry) out.push(pinentryBackend({ program: pinentry, env }));
      out.push(powershellBackend(find('powershell') ?? 'powershell.exe', env));
      return out;
    }
    default:
      if (!env['DISPLAY'] && !env['WAYLAND_DISPLAY']) return out;
      add('pinentry', (program) => pinentryBackend({ program, env }));
      add('zenity', (program) => zenityBackend(program, env));
      add('kdialog', (program) => kdialogBackend(program, env));
      return out;
  }
}
