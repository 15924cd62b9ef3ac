/**
 * The Assuan protocol's line format (GnuPG's IPC: https://www.gnupg.org/documentation/manuals/assuan/), the
 * little of it a client of pinentry needs. No npm package implements it (the package lists hold none), so
 * this is a small one: pure functions, no I/O.
 *
 * - A line is at most ASSUAN_LINE_LENGTH bytes before its LF (libassuan's ASSUAN_LINELENGTH is 1002 with
 *   CR LF); a longer one is refused by the server, so commands are cut to fit before they are sent.
 * - Parameters and data lines are percent-escaped: '%', CR and LF MUST be ("%25", "%0D", "%0A"); every other
 *   control character is escaped too, so no byte the VM chose can end a line or start a command.
 * - Responses: "OK [text]", "ERR <code> [text]", "D <escaped data>", "S <status>", "# comment",
 *   "INQUIRE <keyword>" (pinentry never inquires; a client that does not answer would hang, so it is an error).
 */

/** Longest line a server accepts, without the LF (libassuan: 1000 bytes of content). */
export const ASSUAN_LINE_LENGTH = 1000;

/** GnuPG error codes (libgpg-error, the low 16 bits of an ERR code) that a pinentry answers. */
export const GPG_ERR_TIMEOUT = 62;
export const GPG_ERR_CANCELED = 99;
export const GPG_ERR_NOT_CONFIRMED = 114;
/** An Assuan client or server cancelled the command (GPG_ERR_ASS_CANCELED). */
export const GPG_ERR_ASS_CANCELED = 277;

/** `text` percent-escaped for an Assuan line: '%', CR, LF and every other C0 control or DEL as %XX. */
export function percentEscape(text: string): string {
  return text.replace(/[%\u0000-\u001f\u007f]/g, (ch) => `%${ch.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
}

/** Inverse of percentEscape for a data line's payload (bytes, then UTF-8). Malformed escapes stay as they are. */
export function percentUnescape(text: string): string {
  const bytes: number[] = [];
  const raw = Buffer.from(text, 'utf8');
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === 0x25 && i + 2 < raw.length && /^[0-9A-Fa-f]{2}$/.test(raw.subarray(i + 1, i + 3).toString('latin1'))) {
      bytes.push(parseInt(raw.subarray(i + 1, i + 3).toString('latin1'), 16));
      i += 2;
    } else {
      bytes.push(raw[i]!);
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/**
 * `COMMAND escaped-parameter`, cut to fit one line: the parameter is shortened by whole code points (never in
 * the middle of an escape or a UTF-8 sequence) and ends with "…" when cut.
 */
export function commandLine(command: string, parameter?: string): string {
  if (!/^[A-Z][A-Z_]*$/.test(command)) throw new RangeError(`not an Assuan command: ${command}`);
  if (parameter === undefined) return command;
  const head = `${command} `;
  let escaped = percentEscape(parameter);
  if (Buffer.byteLength(head + escaped) <= ASSUAN_LINE_LENGTH) return head + escaped;
  const chars = [...parameter];
  let lo = 0;
  let hi = chars.length;
  // The longest prefix whose escaped form plus the ellipsis fits (binary search: escaping is monotonic).
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    escaped = percentEscape(chars.slice(0, mid).join('')) + '…';
    if (Buffer.byteLength(head + escaped) <= ASSUAN_LINE_LENGTH) lo = mid;
    else hi = mid - 1;
  }
  return head + percentEscape(chars.slice(0, lo).join('')) + '…';
}

export type AssuanResponse =
  | { readonly kind: 'ok'; readonly text: string }
  | { readonly kind: 'err'; readonly code: number; readonly text: string }
  | { readonly kind: 'data'; readonly data: string }
  | { readonly kind: 'status'; readonly text: string }
  | { readonly kind: 'comment' }
  | { readonly kind: 'inquire'; readonly text: string };

/** One response line (without its LF). Throws on a line that is none of the forms above. */
export function parseResponse(line: string): AssuanResponse {
  const text = line.endsWith('\r') ? line.slice(0, -1) : line;
  if (text === 'OK' || text.startsWith('OK ')) return { kind: 'ok', text: text.slice(3) };
  if (text.startsWith('ERR ')) {
    const m = /^ERR (\d+)(?: (.*))?$/.exec(text);
    if (!m) throw new AssuanProtocolError(`malformed ERR line`);
    return { kind: 'err', code: Number(m[1]), text: m[2] ?? '' };
  }
  if (text === 'D' || text.startsWith('D ')) return { kind: 'data', data: percentUnescape(text.slice(2)) };
  if (text === 'S' || text.startsWith('S ')) return { kind: 'status', text: text.slice(2) };
  if (text.startsWith('#')) return { kind: 'comment' };
  if (text.startsWith('INQUIRE ')) return { kind: 'inquire', text: text.slice(8) };
  throw new AssuanProtocolError('unexpected line from the Assuan server');
}

/** The libgpg-error code of an ERR (its low 16 bits; the high bits name the source, e.g. pinentry). */
export function gpgErrorCode(code: number): number {
  return code & 0xffff;
}

export class AssuanProtocolError extends Error {
  override readonly name = 'AssuanProtocolError';
}
