/**
 * The store passphrase source: the environment variable, the no-echo terminal prompt (asked twice when
 * creating, backspace, cancel, type-ahead dropped), and a clear error naming the variable without a TTY.
 */
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { PASSPHRASE_ENV, PassphraseError, obtainPassphrase } from '../../agent/passphrase.ts';

class FakeTty extends PassThrough {
  readonly isTTY = true;
  readonly rawModes: boolean[] = [];
  setRawMode(raw: boolean): this {
    this.rawModes.push(raw);
    return this;
  }
}

function terminal() {
  const input = new FakeTty();
  const output = new PassThrough();
  let text = '';
  output.on('data', (d: Buffer) => (text += d.toString('utf8')));
  return { input, output, text: () => text };
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function code(p: Promise<unknown>): Promise<string> {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(PassphraseError);
  return (err as PassphraseError).code;
}

describe('obtainPassphrase', () => {
  it('takes KEYTUNNEL_PASSPHRASE first, without touching the terminal', async () => {
    const t = terminal();
    const env = { [PASSPHRASE_ENV]: 'from the env' };
    expect(await obtainPassphrase({ creating: true, what: '/s', env, input: t.input, output: t.output })).toBe('from the env');
    expect(t.text()).toBe('');
    expect(await code(obtainPassphrase({ creating: false, what: '/s', env: { [PASSPHRASE_ENV]: '' } }))).toBe('empty');
  });

  it('without the variable and without a TTY, fails naming the variable', async () => {
    const input = new PassThrough();
    const p = obtainPassphrase({ creating: false, what: '/state/soft-default.kts', env: {}, input, output: new PassThrough() });
    await expect(p).rejects.toThrow(/KEYTUNNEL_PASSPHRASE.*terminal/);
    expect(await code(obtainPassphrase({ creating: false, what: 'x', env: {}, input, output: new PassThrough() }))).toBe(
      'no-source',
    );
  });

  it('prompts without echo for an existing store; backspace edits; raw mode restored', async () => {
    const t = terminal();
    t.input.write('stale\r'); // typed before the prompt: dropped
    const p = obtainPassphrase({ creating: false, what: '/s/soft-default.kts', env: {}, input: t.input, output: t.output });
    await tick();
    t.input.write('hunter3');
    t.input.write('\x7f2');
    t.input.write('\r');
    expect(await p).toBe('hunter2');
    expect(t.text()).toContain('passphrase for /s/soft-default.kts: ');
    expect(t.text()).not.toContain('hunter');
    expect(t.input.rawModes).toEqual([true, false]);
  });

  it('asks twice when creating and refuses a mismatch or an empty passphrase', async () => {
    const t = terminal();
    const ok = obtainPassphrase({ creating: true, what: 'new', env: {}, input: t.input, output: t.output });
    await tick();
    t.input.write('s3cret\r');
    await tick();
    t.input.write('s3cret\r');
    expect(await ok).toBe('s3cret');
    expect(t.text()).toContain('repeat the passphrase');

    const bad = obtainPassphrase({ creating: true, what: 'new', env: {}, input: t.input, output: t.output });
    await tick();
    t.input.write('one\r');
    await tick();
    t.input.write('two\r');
    expect(await code(bad)).toBe('mismatch');

    const empty = obtainPassphrase({ creating: true, what: 'new', env: {}, input: t.input, output: t.output });
    await tick();
    t.input.write('\r');
    expect(await code(empty)).toBe('empty');
  });

  it('Ctrl-C cancels', async () => {
    const t = terminal();
    const p = obtainPassphrase({ creating: false, what: 'x', env: {}, input: t.input, output: t.output });
    await tick();
    t.input.write('abc\x03');
    expect(await code(p)).toBe('cancelled');
  });
});
