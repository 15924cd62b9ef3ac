/** The CLI logger: JSON lines on a non-TTY destination, level precedence (flag > env > info), redaction. */
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { LOG_LEVEL_ENV, LogConfigError, createLogger, resolveLogLevel } from '../../cli/log.ts';

function sink() {
  const stream = new PassThrough();
  const lines: string[] = [];
  let buf = '';
  stream.on('data', (d: Buffer) => {
    buf += d.toString('utf8');
    const parts = buf.split('\n');
    buf = parts.pop() ?? '';
    lines.push(...parts);
  });
  return { stream, lines };
}

const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('cli logger', () => {
  it('resolves the level: --log-level, then KEYTUNNEL_LOG_LEVEL, then info', () => {
    expect(resolveLogLevel(undefined, {})).toBe('info');
    expect(resolveLogLevel(undefined, { [LOG_LEVEL_ENV]: 'DEBUG' })).toBe('debug');
    expect(resolveLogLevel('warn', { [LOG_LEVEL_ENV]: 'debug' })).toBe('warn');
    expect(resolveLogLevel('silent', {})).toBe('silent');
    expect(() => resolveLogLevel('loud', {})).toThrow(LogConfigError);
    expect(() => resolveLogLevel('loud', {})).toThrow(/--log-level "loud" is not a log level/);
    expect(() => resolveLogLevel(undefined, { [LOG_LEVEL_ENV]: 'x' })).toThrow(/KEYTUNNEL_LOG_LEVEL "x"/);
  });

  it('writes one JSON object per line to a non-TTY destination, honouring the level', async () => {
    const { stream, lines } = sink();
    const log = createLogger({ destination: stream, env: { [LOG_LEVEL_ENV]: 'warn' }, name: 'soft' });
    log.info('not shown');
    log.warn({ port: 1234 }, 'shown');
    await flush();
    expect(lines).toHaveLength(1);
    const entry = JSON.parse(lines[0]) as Record<string, unknown>;
    expect(entry).toMatchObject({ level: 40, msg: 'shown', port: 1234, name: 'soft' });
  });

  it('redacts secret-bearing keys at the top level and one level down', async () => {
    const { stream, lines } = sink();
    const log = createLogger({ destination: stream, env: {} });
    log.info({ pin: '1234', request: { passphrase: 'hunter2', token: 'abc' }, rpId: 'example.com' }, 'x');
    await flush();
    expect(lines[0]).not.toMatch(/1234|hunter2|"abc"/);
    expect(JSON.parse(lines[0])).toMatchObject({ pin: '[redacted]', rpId: 'example.com' });
  });

  it('pretty mode writes human-readable text', async () => {
    const { stream, lines } = sink();
    const log = createLogger({ destination: stream, env: {}, pretty: true });
    log.info({ port: 9 }, 'listening');
    await flush();
    await flush();
    expect(lines.join('\n')).toMatch(/INFO.*listening/);
    expect(() => JSON.parse(lines[0])).toThrow();
  });
});
