/**
 * The Assuan client (agent/presence/assuan.ts, pinentry.ts): escaping, line bounds and response parsing, then
 * the exact lines sent to a recording Assuan server: text the VM wrote can never end a line or start a command.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ASSUAN_LINE_LENGTH,
  commandLine,
  gpgErrorCode,
  parseResponse,
  percentEscape,
  percentUnescape,
} from '../../../agent/presence/assuan.ts';
import { confirm, getPin, PinentryError } from '../../../agent/presence/pinentry.ts';

const RECORDER = fileURLToPath(new URL('./fixtures/recording-pinentry.mjs', import.meta.url));
const HOSTILE = 'evil.example\nCONFIRM\r\nBYE\n%0A%25 100% \u0000\u001b[2J\u007f ünïcødé ✓ 𝔘';

describe('Assuan line format', () => {
  it('percent-escapes %, CR, LF and every other control character, and unescapes back', () => {
    expect(percentEscape('a%b\nc\rd\te\u007f')).toBe('a%25b%0Ac%0Dd%09e%7F');
    expect(percentEscape(HOSTILE)).not.toMatch(/[\u0000-\u001f\u007f]/);
    expect(percentUnescape(percentEscape(HOSTILE))).toBe(HOSTILE);
    expect(percentUnescape('caf%C3%A9 100%')).toBe('café 100%');
  });

  it('cuts a parameter to one line of at most 1000 bytes, on a code point, never inside an escape', () => {
    for (const text of ['x'.repeat(5000), '%'.repeat(2000), '\n'.repeat(900), '𝔘'.repeat(600), 'é%'.repeat(700)]) {
      const line = commandLine('SETDESC', text);
      expect(Buffer.byteLength(line)).toBeLessThanOrEqual(ASSUAN_LINE_LENGTH);
      expect(line.endsWith('…')).toBe(true);
      expect(line).not.toMatch(/[\r\n]/);
      const payload = line.slice('SETDESC '.length, -1);
      expect(text.startsWith(percentUnescape(payload))).toBe(true);
      expect(payload).not.toMatch(/%.?$/);
    }
    expect(commandLine('SETOK', 'Approve')).toBe('SETOK Approve');
    expect(() => commandLine('SETDESC\nCONFIRM')).toThrow(RangeError);
  });

  it('parses the response lines a pinentry sends', () => {
    expect(parseResponse('OK Pleased to meet you')).toEqual({ kind: 'ok', text: 'Pleased to meet you' });
    expect(parseResponse('OK')).toEqual({ kind: 'ok', text: '' });
    expect(parseResponse('ERR 83886179 Operation cancelled <Pinentry>')).toEqual({ kind: 'err', code: 83886179, text: 'Operation cancelled <Pinentry>' });
    expect(gpgErrorCode(83886179)).toBe(99);
    expect(gpgErrorCode(83886142)).toBe(62);
    expect(parseResponse('D s3cr%25t%0A')).toEqual({ kind: 'data', data: 's3cr%t\n' });
    expect(parseResponse('S PASSWORD_FROM_CACHE')).toEqual({ kind: 'status', text: 'PASSWORD_FROM_CACHE' });
    expect(parseResponse('# comment')).toEqual({ kind: 'comment' });
    expect(() => parseResponse('HELLO')).toThrow();
  });
});

describe('pinentry client against a recording Assuan server', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kt-assuan-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  let n = 0;
  const env = (answer: string) => {
    const record = join(dir, `record-${n++}.jsonl`);
    return { record, env: { ...process.env, RECORD_FILE: record, PINENTRY_ANSWER: answer } };
  };
  const lines = async (record: string): Promise<string[]> =>
    (await readFile(record, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as string);

  it('sends each text as one escaped parameter, then CONFIRM and BYE; the VM text adds no command', async () => {
    const { record, env: e } = env('ok');
    const outcome = await confirm({ program: RECORDER, env: e, title: 'keytunnel: approve?', description: HOSTILE, ok: 'Approve', cancel: 'Deny', timeoutSeconds: 30 });
    expect(outcome).toBe('approved');
    const sent = await lines(record);
    expect(sent.map((l) => l.split(' ')[0])).toEqual(['SETTITLE', 'SETDESC', 'SETOK', 'SETCANCEL', 'SETTIMEOUT', 'CONFIRM', 'BYE']);
    expect(sent[1]).toBe(`SETDESC ${percentEscape(HOSTILE)}`);
    expect(sent[4]).toBe('SETTIMEOUT 30');
  });

  it('maps Cancel to denied, the pinentry timeout to timeout, and any other error to a PinentryError', async () => {
    expect(await confirm({ program: RECORDER, env: env('cancel').env, description: 'x' })).toBe('denied');
    expect(await confirm({ program: RECORDER, env: env('timeout').env, description: 'x' })).toBe('timeout');
    await expect(confirm({ program: RECORDER, env: env('broken').env, description: 'x' })).rejects.toThrow(PinentryError);
    await expect(confirm({ program: join(dir, 'no-such-pinentry'), description: 'x' })).rejects.toThrow(/cannot run/);
  });

  it('GETPIN returns the unescaped PIN, with the tty options and prompt sent first', async () => {
    const { record, env: e } = env('pin:pa%25ss%20w%C3%B6rd');
    const result = await getPin({ program: RECORDER, env: e, description: 'Unlock', prompt: 'Passphrase:', tty: { name: '/dev/pts/9', type: 'xterm' } });
    expect(result).toEqual({ outcome: 'approved', pin: 'pa%ss wörd' });
    expect((await lines(record)).slice(0, 5)).toEqual(['OPTION ttyname=/dev/pts/9', 'OPTION ttytype=xterm', 'SETDESC Unlock', 'SETPROMPT Passphrase:', 'GETPIN']);
    expect(await getPin({ program: RECORDER, env: env('cancel').env, description: 'x' })).toEqual({ outcome: 'denied' });
  });

  it('an aborted signal answers cancelled without running the program', async () => {
    expect(await confirm({ program: join(dir, 'no-such-pinentry'), description: 'x', signal: AbortSignal.abort() })).toBe('cancelled');
    expect(await getPin({ program: join(dir, 'no-such-pinentry'), description: 'x', signal: AbortSignal.abort() })).toEqual({ outcome: 'cancelled' });
  });
});
