/**
 * Windows: a WinForms dialog from a constant PowerShell script. The texts reach it only as environment
 * variables (KEYTUNNEL_DIALOG_*), never as part of the script: interpolating into a PowerShell string is not
 * safe even with quote doubling (PowerShell also ends strings at U+2018–U+201B). The label shows its text
 * as is (UseMnemonic off: '&' is not an access key). Deny is the default and the Esc button; a timer closes
 * the window at the timeout. Exit status: 0 approved, 1 denied or closed, 5 timed out.
 */
import type { PresenceOutcome } from '../port.ts';
import { BACKSTOP_SECONDS, DialogError, killedOutcome, runProgram, type DialogBackend, type DialogText } from './backend.ts';

export const DIALOG_ENV = {
  title: 'KEYTUNNEL_DIALOG_TITLE',
  message: 'KEYTUNNEL_DIALOG_TEXT',
  ok: 'KEYTUNNEL_DIALOG_OK',
  cancel: 'KEYTUNNEL_DIALOG_CANCEL',
  timeout: 'KEYTUNNEL_DIALOG_TIMEOUT',
} as const;

export const POWERSHELL_TIMEOUT_EXIT = 5;

export const WINDOWS_DIALOG_SCRIPT = [
  'Add-Type -AssemblyName System.Windows.Forms; Add-Type -AssemblyName System.Drawing',
  '$f = New-Object System.Windows.Forms.Form',
  `$f.Text = $env:${DIALOG_ENV.title}; $f.TopMost = $true; $f.StartPosition = 'CenterScreen'`,
  "$f.FormBorderStyle = 'FixedDialog'; $f.MaximizeBox = $false; $f.MinimizeBox = $false; $f.ShowInTaskbar = $true",
  "$f.AutoSize = $true; $f.AutoSizeMode = 'GrowAndShrink'; $f.Padding = New-Object System.Windows.Forms.Padding(12)",
  '$grid = New-Object System.Windows.Forms.TableLayoutPanel; $grid.AutoSize = $true; $grid.ColumnCount = 1; $grid.RowCount = 2',
  '$l = New-Object System.Windows.Forms.Label; $l.AutoSize = $true; $l.UseMnemonic = $false',
  `$l.MaximumSize = New-Object System.Drawing.Size(560, 0); $l.Text = $env:${DIALOG_ENV.message}`,
  "$row = New-Object System.Windows.Forms.FlowLayoutPanel; $row.AutoSize = $true; $row.FlowDirection = 'RightToLeft'; $row.Dock = 'Fill'",
  `$ok = New-Object System.Windows.Forms.Button; $ok.AutoSize = $true; $ok.UseMnemonic = $false; $ok.Text = $env:${DIALOG_ENV.ok}; $ok.DialogResult = 'Yes'`,
  `$no = New-Object System.Windows.Forms.Button; $no.AutoSize = $true; $no.UseMnemonic = $false; $no.Text = $env:${DIALOG_ENV.cancel}; $no.DialogResult = 'No'`,
  '$row.Controls.Add($ok); $row.Controls.Add($no)',
  '$grid.Controls.Add($l, 0, 0); $grid.Controls.Add($row, 0, 1); $f.Controls.Add($grid)',
  '$f.AcceptButton = $no; $f.CancelButton = $no',
  '$script:timedOut = $false',
  `$t = New-Object System.Windows.Forms.Timer; $t.Interval = [Math]::Max(1, [int]$env:${DIALOG_ENV.timeout}) * 1000`,
  '$t.Add_Tick({ $script:timedOut = $true; $t.Stop(); $f.Close() }); $t.Start()',
  '$f.Add_Shown({ $f.Activate(); $no.Focus() })',
  '$r = $f.ShowDialog(); $t.Dispose()',
  'if ($script:timedOut) { exit 5 }',
  "if ($r -eq 'Yes') { exit 0 }",
  'exit 1',
].join('\n');

export function powershellEnv(text: DialogText): Record<string, string> {
  return {
    [DIALOG_ENV.title]: text.title,
    [DIALOG_ENV.message]: text.message,
    [DIALOG_ENV.ok]: text.ok,
    [DIALOG_ENV.cancel]: text.cancel,
    [DIALOG_ENV.timeout]: String(text.timeoutSeconds),
  };
}

export function powershellBackend(program = 'powershell.exe', env?: NodeJS.ProcessEnv): DialogBackend {
  return {
    name: 'PowerShell (WinForms)',
    async ask(text: DialogText, signal: AbortSignal): Promise<PresenceOutcome> {
      const run = await runProgram(program, ['-NoProfile', '-NonInteractive', '-STA', '-Command', WINDOWS_DIALOG_SCRIPT], {
        env,
        extraEnv: powershellEnv(text),
        signal,
        killAfterMs: (text.timeoutSeconds + BACKSTOP_SECONDS) * 1000,
      });
      const killed = killedOutcome(run);
      if (killed) return killed;
      if (run.code === 0) return 'approved';
      if (run.code === 1) return 'denied';
      if (run.code === POWERSHELL_TIMEOUT_EXIT) return 'timeout';
      throw new DialogError(`powershell failed (exit ${run.code})`);
    },
  };
}
