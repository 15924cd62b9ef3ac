/**
 * The one sanitiser for text that came from a VM (an RP ID, a user name, a gateway's announced name, an error
 * message) before it is shown to a person: on a terminal prompt, in a desktop notification, in `keytunnel audit`.
 *
 * The output is printable text of bounded length:
 * - C0 controls (U+0000–U+001F) become their Control Pictures (ESC → ␛, LF → ␊), DEL becomes ␡: readable, and
 *   nothing a terminal interprets, so no escape sequence, cursor move or forged line can get through;
 * - every other character that is invisible or changes how the text around it is laid out becomes `<U+XXXX>`:
 *   C1 controls (U+0080–U+009F; U+009B is an 8-bit CSI), format characters (Unicode category Cf: the bidi
 *   embeddings/overrides/isolates U+202A–U+202E and U+2066–U+2069 of Trojan Source (CVE-2021-42574), LRM/RLM/ALM,
 *   zero-width space/joiners, word joiner, BOM, soft hyphen, tag characters, …), the line and paragraph
 *   separators U+2028/U+2029, and lone UTF-16 surrogates;
 * - combining marks beyond MAX_COMBINING_RUN in a row are escaped the same way (a "Zalgo" stack would otherwise
 *   paint over the lines above and below);
 * - at most `max` characters (code points) are kept, then "…".
 *
 * The function is pure and idempotent (displayText(displayText(s, n), n) === displayText(s, n)), so layers may
 * each apply it without double escaping. What it removes stays recoverable where it matters: the audit log
 * keeps the raw value in its JSON line.
 */

/** Default bound, in code points, before the ellipsis. */
export const DEFAULT_DISPLAY_MAX = 80;

/** Combining marks allowed in a row (enough for every real script, including Vietnamese and Indic stacks). */
export const MAX_COMBINING_RUN = 4;

const ELLIPSIS = '…';

/** Characters that are never shown as themselves (see the module comment). */
const UNSAFE = /^[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]$/u;
const COMBINING = /^\p{M}$/u;

/** True when `ch` (one code point) would not be shown as itself. */
export function isUnsafeChar(ch: string): boolean {
  return UNSAFE.test(ch);
}

function escaped(ch: string): string {
  const cp = ch.codePointAt(0)!;
  if (cp < 0x20) return String.fromCodePoint(0x2400 + cp); // ␀ … ␟
  if (cp === 0x7f) return '\u2421'; // ␡
  return `<U+${cp.toString(16).toUpperCase().padStart(4, '0')}>`;
}

/** `text` as printable text of at most `max` code points (plus "…" when cut). */
export function displayText(text: string, max: number = DEFAULT_DISPLAY_MAX): string {
  if (!Number.isInteger(max) || max < 1) throw new RangeError('displayText: max must be a positive integer');
  const out: string[] = [];
  let combiningRun = 0;
  // Stops as soon as the bound is passed: a megabyte of input costs no more than `max` characters of work.
  for (const ch of text) {
    let piece: string;
    if (UNSAFE.test(ch)) {
      piece = escaped(ch);
      combiningRun = 0;
    } else if (COMBINING.test(ch)) {
      combiningRun++;
      piece = combiningRun > MAX_COMBINING_RUN ? escaped(ch) : ch;
    } else {
      piece = ch;
      combiningRun = 0;
    }
    for (const c of piece) {
      if (out.length === max) return out.join('') + ELLIPSIS;
      out.push(c);
    }
  }
  return out.join('');
}

const UNSAFE_GLOBAL = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/gu;

/**
 * JSON for a terminal: JSON.stringify escapes C0 controls but leaves DEL, C1 controls, bidi/format characters and
 * U+2028/U+2029 raw. Those are written as \uXXXX escapes too, so the output is the same JSON value and holds
 * nothing a terminal or a renderer acts on.
 */
export function displayJson(value: unknown): string {
  return JSON.stringify(value).replace(UNSAFE_GLOBAL, (ch) => {
    let out = '';
    for (let i = 0; i < ch.length; i++) out += `\\u${ch.charCodeAt(i).toString(16).padStart(4, '0')}`;
    return out;
  });
}
