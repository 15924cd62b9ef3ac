/**
 * Putting an argument vector into the three start-at-login formats without it being re-read as something else:
 * a systemd ExecStart= line, XML text (plist <string>, Task Scheduler elements) and a Windows command line (the
 * Task Scheduler's <Arguments> is one string the program's C runtime splits again).
 *
 * Control characters are refused rather than escaped: none of the agent's options needs one, and each format
 * treats them differently (newlines end a unit-file line; XML 1.0 cannot hold most of them).
 */

export class QuoteError extends Error {
  override readonly name = 'QuoteError';
}

function refuseControl(arg: string): string {
  if (/[\u0000-\u001f\u007f]/.test(arg)) throw new QuoteError(`refusing an argument with a control character: ${JSON.stringify(arg.slice(0, 80))}`);
  return arg;
}

/**
 * One ExecStart= word (systemd.service(5) "Command lines"; systemd.unit(5) "Specifiers"): `%` is doubled (else a
 * specifier), `$` doubled (else variable expansion); anything but plain characters goes in double quotes with `\`
 * and `"` escaped.
 */
export function systemdWord(arg: string): string {
  refuseControl(arg);
  const specifiersEscaped = arg.replace(/%/g, '%%').replace(/\$/g, '$$$$');
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(specifiersEscaped)) return specifiersEscaped;
  return `"${specifiersEscaped.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

export function systemdCommandLine(argv: readonly string[]): string {
  return argv.map(systemdWord).join(' ');
}

/** Text content or attribute value in XML 1.0 (&, <, >, " and ' escaped). */
export function xmlText(text: string): string {
  refuseControl(text);
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

/**
 * One argument for a Windows command line as the Microsoft C runtime (and CommandLineToArgvW) splits it:
 * quoted when it is empty or holds a space, tab or quote; inside quotes, backslashes are literal except before
 * a quote, where they are doubled and the quote escaped; trailing backslashes are doubled before the closing
 * quote.
 */
export function windowsArg(arg: string): string {
  refuseControl(arg);
  if (arg !== '' && !/[ \t"]/.test(arg)) return arg;
  let out = '"';
  let backslashes = 0;
  for (const ch of arg) {
    if (ch === '\\') {
      backslashes++;
      continue;
    }
    if (ch === '"') {
      out += '\\'.repeat(backslashes * 2 + 1) + '"';
    } else {
      out += '\\'.repeat(backslashes) + ch;
    }
    backslashes = 0;
  }
  return `${out}${'\\'.repeat(backslashes * 2)}"`;
}

export function windowsCommandLine(argv: readonly string[]): string {
  return argv.map(windowsArg).join(' ');
}

/**
 * The C runtime's split of a command line's arguments (after the program name), for checking `windowsArg`:
 * 2n backslashes + quote → n backslashes and a quote toggle; 2n+1 backslashes + quote → n and a literal quote;
 * `""` inside quotes → a literal quote (the post-2008 CRT rule).
 */
export function splitWindowsArgs(line: string): string[] {
  const args: string[] = [];
  let i = 0;
  while (i < line.length) {
    while (line[i] === ' ' || line[i] === '\t') i++;
    if (i >= line.length) break;
    let arg = '';
    let quoted = false;
    for (; i < line.length; i++) {
      const ch = line[i]!;
      if (!quoted && (ch === ' ' || ch === '\t')) break;
      if (ch === '\\') {
        let n = 0;
        while (line[i + n] === '\\') n++;
        if (line[i + n] === '"') {
          arg += '\\'.repeat(Math.floor(n / 2));
          if (n % 2 === 1) {
            arg += '"';
            i += n; // at the escaped quote; the loop steps past it
          } else {
            i += n - 1; // the quote is next: it toggles
          }
        } else {
          arg += '\\'.repeat(n);
          i += n - 1;
        }
        continue;
      }
      if (ch === '"') {
        if (quoted && line[i + 1] === '"') {
          arg += '"';
          i++;
        } else quoted = !quoted;
        continue;
      }
      arg += ch;
    }
    args.push(arg);
  }
  return args;
}
