/**
 * The dialog backends' command lines (request text only as argv items or environment values, never in a
 * script), the choice of backend per platform, and DialogPresence's fallback when a program cannot show a
 * dialog. The programs themselves are exercised in dialog-desktop.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { DialogPresence, createDialogPresence, dialogText } from '../../../agent/presence/dialog.ts';
import { DialogError, type DialogBackend, type DialogText } from '../../../agent/presence/dialogs/backend.ts';
import { chooseDialogBackends } from '../../../agent/presence/dialogs/choose.ts';
import { escapeHtml, kdialogArgs } from '../../../agent/presence/dialogs/kdialog.ts';
import { MACOS_DIALOG_SCRIPT, osascriptArgs } from '../../../agent/presence/dialogs/osascript.ts';
import { DIALOG_ENV, WINDOWS_DIALOG_SCRIPT, powershellEnv } from '../../../agent/presence/dialogs/powershell.ts';
import { zenityArgs } from '../../../agent/presence/dialogs/zenity.ts';
import { PresenceSetupError } from '../../../agent/presence/tty.ts';

const EVIL = `x','Info');Start-Process calc.exe;# " & do shell script "open -a Calculator" & " <a href="x">y</a> --help $(id) \`id\``;
const text: DialogText = { title: 'keytunnel: approve?', message: EVIL, ok: 'Approve', cancel: 'Deny', timeoutSeconds: 30 };

describe('dialog text', () => {
  it('names the requester, operation, RP and user, sanitised, with the timeout', () => {
    const t = dialogText(
      { action: 'makeCredential', rpId: 'bank.example\u202e\n', userName: 'alice', origin: { gatewayName: 'customer-a', gatewayFingerprint: '3f:a1' } },
      30_000,
    );
    expect(t.message).toBe('customer-a (fp 3f:a1) wants to create a passkey for bank.example<U+202E>␊ as alice.\n\nApprove? Without an answer in 30 s it is refused.');
    expect(t).toMatchObject({ title: 'keytunnel: approve?', ok: 'Approve', cancel: 'Deny', timeoutSeconds: 30 });
  });
});

describe('backend command lines: the request text is data', () => {
  it('zenity: each text one argv item joined to its option, markup off, Deny focused', () => {
    const args = zenityArgs(text);
    expect(args).toContain(`--text=${EVIL}`);
    expect(args).toEqual(expect.arrayContaining(['--question', '--no-markup', '--default-cancel', '--timeout=30', '--ok-label=Approve', '--cancel-label=Deny']));
    expect(args.filter((a) => a.includes('calc.exe'))).toHaveLength(1);
  });

  it('kdialog: rich text with every HTML character escaped', () => {
    const args = kdialogArgs({ ...text, message: 'a<b>&"\'\nc' });
    expect(args.at(-1)).toBe('<qt>a&lt;b&gt;&amp;&quot;&#39;<br>c</qt>');
    expect(args.at(-2)).toBe('--yesno');
    expect(escapeHtml(EVIL)).not.toMatch(/[<>"']/);
  });

  it('osascript: a constant script; the texts follow as argv items after a constant marker', () => {
    const args = osascriptArgs(text);
    const script = MACOS_DIALOG_SCRIPT.flatMap((line) => ['-e', line]);
    expect(args.slice(0, script.length)).toEqual(script);
    expect(args.slice(script.length)).toEqual(['keytunnel', EVIL, 'keytunnel: approve?', 'Approve', 'Deny', '30']);
    expect(MACOS_DIALOG_SCRIPT.join('\n')).not.toContain('calc');
  });

  it('PowerShell: a constant script reading environment variables', () => {
    expect(powershellEnv(text)).toEqual({
      [DIALOG_ENV.title]: 'keytunnel: approve?',
      [DIALOG_ENV.message]: EVIL,
      [DIALOG_ENV.ok]: 'Approve',
      [DIALOG_ENV.cancel]: 'Deny',
      [DIALOG_ENV.timeout]: '30',
    });
    for (const name of Object.values(DIALOG_ENV)) expect(WINDOWS_DIALOG_SCRIPT).toContain(`$env:${name}`);
    expect(WINDOWS_DIALOG_SCRIPT).toContain('UseMnemonic = $false');
  });
});

describe('which dialog asks', () => {
  const find = (present: string[]) => (name: string) => (present.includes(name) ? `/usr/bin/${name}` : undefined);

  it('KEYTUNNEL_PINENTRY wins, with GPG_TTY for terminal pinentries', () => {
    const b = chooseDialogBackends({ env: { KEYTUNNEL_PINENTRY: 'pinentry-curses', GPG_TTY: '/dev/pts/3', TERM: 'xterm' }, platform: 'linux', find: find(['pinentry-curses', 'zenity']) });
    expect(b.map((x) => x.name)).toEqual(['pinentry (/usr/bin/pinentry-curses)']);
  });

  it('Linux with a display: pinentry, then zenity, then kdialog (those installed); without a display: none', () => {
    const all = find(['pinentry', 'zenity', 'kdialog']);
    expect(chooseDialogBackends({ env: { DISPLAY: ':0' }, platform: 'linux', find: all }).map((x) => x.name)).toEqual([
      'pinentry (/usr/bin/pinentry)',
      'zenity',
      'kdialog',
    ]);
    expect(chooseDialogBackends({ env: { WAYLAND_DISPLAY: 'wayland-0' }, platform: 'freebsd', find: find(['kdialog']) }).map((x) => x.name)).toEqual(['kdialog']);
    expect(chooseDialogBackends({ env: {}, platform: 'linux', find: all })).toEqual([]);
  });

  it('macOS: pinentry-mac, then osascript; Windows: pinentry (Gpg4win), then PowerShell', () => {
    expect(chooseDialogBackends({ env: {}, platform: 'darwin', find: find(['pinentry-mac', 'osascript']) }).map((x) => x.name)).toEqual([
      'pinentry (/usr/bin/pinentry-mac)',
      'osascript',
    ]);
    expect(chooseDialogBackends({ env: {}, platform: 'darwin', find: find([]) }).map((x) => x.name)).toEqual(['osascript']);
    const gpg4win = 'C:\\Program Files (x86)\\GnuPG\\bin\\pinentry.exe';
    const win = chooseDialogBackends({ env: { 'ProgramFiles(x86)': 'C:\\Program Files (x86)' }, platform: 'win32', find: (n) => (n === gpg4win ? n : undefined) });
    expect(win.map((x) => x.name)).toEqual([`pinentry (${gpg4win})`, 'PowerShell (WinForms)']);
  });

  it('--approve dialog with no way to show one refuses to start, with a hint', () => {
    expect(() => createDialogPresence({ env: {}, platform: 'linux' })).toThrow(PresenceSetupError);
    expect(() => createDialogPresence({ env: {}, platform: 'linux' })).toThrow(/KEYTUNNEL_PINENTRY/);
  });
});

describe('DialogPresence', () => {
  const backend = (name: string, answer: () => Promise<'approved' | 'denied'>, shown: string[]): DialogBackend => ({
    name,
    ask: async (t) => {
      shown.push(`${name}: ${t.message.split('\n')[0]}`);
      return answer();
    },
  });

  it('a backend that cannot show a dialog hands over to the next; when none can, the request is denied', async () => {
    const shown: string[] = [];
    const warnings: string[] = [];
    const broken = backend('broken', () => Promise.reject(new DialogError('no display')), shown);
    const ok = backend('ok', async () => 'approved', shown);
    const log = { warn: (_o: object, m: string) => warnings.push(m) };
    const presence = new DialogPresence({ backends: [broken, ok], log });
    expect(await presence.confirm({ action: 'selection' }, new AbortController().signal)).toBe('approved');
    expect(shown).toEqual(['broken: a local client wants to select this authenticator.', 'ok: a local client wants to select this authenticator.']);
    expect(warnings).toHaveLength(1);
    const none = new DialogPresence({ backends: [broken], log });
    expect(await none.confirm({ action: 'selection' }, new AbortController().signal)).toBe('denied');
    expect(warnings.at(-1)).toMatch(/no approval dialog could be shown/);
  });
});
