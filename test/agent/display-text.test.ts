import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DEFAULT_DISPLAY_MAX, MAX_COMBINING_RUN, displayText, isUnsafeChar } from '../../agent/display-text.ts';

/** Anything a terminal or a text renderer would act on rather than show. */
const FORBIDDEN = /[\u0000-\u001f\u007f-\u009f\p{Cf}\u2028\u2029]/u;

describe('displayText: VM text made printable and bounded', () => {
  it('keeps ordinary text, including non-Latin scripts, exactly', () => {
    for (const s of ['login.microsoft.com', 'alice@contoso.com', 'Zoë Ångström', '山田太郎', 'Nguyễn Văn Đức', 'x’,’Info’);Start-Process calc.exe;#']) {
      expect(displayText(s)).toBe(s);
    }
  });

  it('shows C0 controls and DEL as Control Pictures, so no escape sequence or line break survives', () => {
    expect(displayText('evil\x1b[2J\r\nAPPROVED\x07\x00\x7f')).toBe('evil␛[2J␍␊APPROVED␇␀␡');
    expect(displayText('a\tb')).toBe('a␉b');
  });

  it('escapes C1 controls, bidi overrides and isolates, zero-width and other format characters, line separators', () => {
    expect(displayText('a\u009b31mb')).toBe('a<U+009B>31mb'); // 8-bit CSI
    expect(displayText('moc.elgoog\u202egoogle.com')).toBe('moc.elgoog<U+202E>google.com');
    for (const cp of [0x202a, 0x202b, 0x202c, 0x202d, 0x202e, 0x2066, 0x2067, 0x2068, 0x2069, 0x200e, 0x200f, 0x061c]) {
      expect(displayText(`x${String.fromCodePoint(cp)}y`)).toBe(`x<U+${cp.toString(16).toUpperCase().padStart(4, '0')}>y`);
    }
    for (const cp of [0x200b, 0x200c, 0x200d, 0x2060, 0xfeff, 0x00ad, 0xe0041]) {
      expect(displayText(`x${String.fromCodePoint(cp)}y`)).not.toMatch(FORBIDDEN);
    }
    expect(displayText('one\u2028two\u2029three')).toBe('one<U+2028>two<U+2029>three');
    expect(displayText('lone \ud800 surrogate')).toBe('lone <U+D800> surrogate');
  });

  it('bounds the length in code points and marks the cut with an ellipsis', () => {
    expect(displayText('x'.repeat(500))).toBe('x'.repeat(DEFAULT_DISPLAY_MAX) + '…');
    expect(displayText('x'.repeat(DEFAULT_DISPLAY_MAX))).toBe('x'.repeat(DEFAULT_DISPLAY_MAX));
    expect(displayText('😀'.repeat(10), 3)).toBe('😀😀😀…');
    // Escapes count towards the bound: a flood of control characters cannot widen the output.
    expect(Array.from(displayText('\u202e'.repeat(1000), 20))).toHaveLength(21);
    expect(() => displayText('x', 0)).toThrow(RangeError);
  });

  it('caps runs of combining marks (no Zalgo stacks over neighbouring lines)', () => {
    const zalgo = 'Z' + '\u0301'.repeat(50);
    const shown = displayText(zalgo, 500);
    expect(shown.startsWith('Z' + '\u0301'.repeat(MAX_COMBINING_RUN) + '<U+0301>')).toBe(true);
    expect(displayText('e\u0301\u0323')).toBe('e\u0301\u0323');
  });

  it('property: output never holds a forbidden character, is bounded, and sanitising twice changes nothing', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 300 }), fc.integer({ min: 1, max: 120 }), (s, max) => {
        const once = displayText(s, max);
        expect(once).not.toMatch(FORBIDDEN);
        expect(Array.from(once).length).toBeLessThanOrEqual(max + 1);
        expect(displayText(once, max)).toBe(once);
        for (const ch of once) expect(isUnsafeChar(ch)).toBe(false);
      }),
      { numRuns: 2000 },
    );
  });

  it('property: printable input within the bound is returned unchanged', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme-ascii', maxLength: 80 }), (s) => {
        const printable = s.replace(/[\x00-\x1f\x7f]/g, '');
        expect(displayText(printable)).toBe(printable);
      }),
    );
  });
});
