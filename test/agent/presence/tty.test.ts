/**
 * Presence ports: `always` (approves, warns once) and the terminal prompt (Enter / Esc / n / Ctrl-C, the
 * timeout with an injected timer, abort, FIFO queue, type-ahead discarded, untrusted text neutralised,
 * refusal without a TTY), all without a terminal: the input and output are PassThrough streams.
 */
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { PresenceRequest } from '../../../agent/presence/port.ts';
import { ALWAYS_APPROVE_WARNING, AlwaysPresence } from '../../../agent/presence/always.ts';
import { describeRequest } from '../../../agent/presence/describe.ts';
import type { Timers } from '../../../agent/presence/timers.ts';
import { PresenceSetupError, TtyPresence, createTtyPresence, terminalSafe } from '../../../agent/presence/tty.ts';

/** A manual clock for setTimeout/clearTimeout. */
class FakeTimers implements Timers {
  now = 0;
  private next = 1;
  private readonly pending = new Map<number, { at: number; callback: () => void }>();
  setTimeout(callback: () => void, ms: number): unknown {
    const id = this.next++;
    this.pending.set(id, { at: this.now + ms, callback });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number);
  }
  get count(): number {
    return this.pending.size;
  }
  advance(ms: number): void {
    this.now += ms;
    for (const [id, t] of [...this.pending]) {
      if (t.at <= this.now) {
        this.pending.delete(id);
        t.callback();
      }
    }
  }
}

class FakeTty extends PassThrough {
  readonly isTTY = true;
  readonly rawModes: boolean[] = [];
  setRawMode(raw: boolean): this {
    this.rawModes.push(raw);
    return this;
  }
}

function setup(timeoutMs?: number) {
  const input = new FakeTty();
  const output = new PassThrough();
  let text = '';
  output.on('data', (d: Buffer) => (text += d.toString('utf8')));
  const timers = new FakeTimers();
  let interrupts = 0;
  const presence = createTtyPresence({ input, output, timers, timeoutMs, onInterrupt: () => interrupts++ });
  return {
    input,
    timers,
    presence,
    text: () => text,
    interrupts: () => interrupts,
  };
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const req: PresenceRequest = {
  action: 'getAssertion',
  rpId: 'example.com',
  userName: 'alice@example.com',
  origin: { gatewayName: 'build-vm', gatewayFingerprint: 'AB:CD:EF:01:23:45:67:89:AA:BB' },
};

describe('AlwaysPresence', () => {
  it('approves everything, logs the warning once at creation, and answers cancelled once aborted', async () => {
    const warnings: string[] = [];
    const presence = new AlwaysPresence({ warn: (m) => warnings.push(m) });
    expect(warnings).toEqual([ALWAYS_APPROVE_WARNING]);
    expect(ALWAYS_APPROVE_WARNING).toContain('use only for tests and containers');
    expect(await presence.confirm({ action: 'makeCredential', rpId: 'a.example' }, new AbortController().signal)).toBe('approved');
    expect(await presence.confirm({ action: 'reset' }, new AbortController().signal)).toBe('approved');
    expect(await presence.confirm({ action: 'getAssertion' }, AbortSignal.abort())).toBe('cancelled');
    expect(warnings).toHaveLength(1);
  });
});

describe('TtyPresence', () => {
  it('refuses to start when the input is not a TTY, with a clear message', () => {
    const input = new PassThrough();
    expect(() => createTtyPresence({ input, output: new PassThrough() })).toThrow(PresenceSetupError);
    expect(() => createTtyPresence({ input, output: new PassThrough() })).toThrow(/not a TTY.*--approve always/s);
  });

  it('shows who asks, the action, RP ID and user; Enter approves and raw mode is restored', async () => {
    const t = setup();
    const answer = t.presence.confirm(req, new AbortController().signal);
    await tick();
    expect(t.text()).toContain('build-vm (fp AB:CD:EF:01:23:45:67:89…) wants to sign in to example.com as alice@example.com — approve? [Enter/Esc]');
    expect(t.text()).toContain('Press Enter to approve, Esc or n to deny (denied in 30 s)');
    t.input.write('\r');
    expect(await answer).toBe('approved');
    expect(t.input.rawModes).toEqual([true, false]);
    expect(t.text().trimEnd().endsWith('approved')).toBe(true);
    expect(t.timers.count).toBe(0);
  });

  it('Esc, n and N deny; an arrow-key escape sequence is ignored', async () => {
    const t = setup();
    for (const key of ['\x1b', 'n', 'N']) {
      const answer = t.presence.confirm(req, new AbortController().signal);
      await tick();
      t.input.write(key);
      expect(await answer).toBe('denied');
    }
    const answer = t.presence.confirm(req, new AbortController().signal);
    await tick();
    t.input.write('\x1b[A'); // up arrow: not an answer
    t.input.write('x'); // other keys: not an answer
    await tick();
    t.input.write('\r');
    expect(await answer).toBe('approved');
    expect(t.text().match(/denied\n/g)).toHaveLength(3);
  });

  it('answers timeout when nobody answers within the timeout (injected timers)', async () => {
    const t = setup(5_000);
    const answer = t.presence.confirm({ action: 'makeCredential', rpId: 'example.org' }, new AbortController().signal);
    await tick();
    expect(t.text()).toContain('a local client wants to create a passkey for example.org');
    expect(t.text()).toContain('denied in 5 s');
    t.timers.advance(4_999);
    await tick();
    let settled = false;
    void answer.then(() => (settled = true));
    await tick();
    expect(settled).toBe(false);
    t.timers.advance(1);
    expect(await answer).toBe('timeout');
    expect(t.text()).toContain('timed out');
  });

  it('defaults to a 30 s timeout', async () => {
    const t = setup();
    const answer = t.presence.confirm(req, new AbortController().signal);
    await tick();
    t.timers.advance(29_999);
    t.timers.advance(1);
    expect(await answer).toBe('timeout');
  });

  it('the abort signal cancels the prompt promptly and a later key does not leak into the next prompt', async () => {
    const t = setup();
    const ac = new AbortController();
    const answer = t.presence.confirm(req, ac.signal);
    await tick();
    ac.abort();
    expect(await answer).toBe('cancelled');
    expect(t.text()).toContain('cancelled by the client');
    expect(t.timers.count).toBe(0);
    t.input.write('\r'); // typed after the prompt went away
    const next = t.presence.confirm(req, new AbortController().signal);
    await tick();
    t.timers.advance(30_000);
    expect(await next).toBe('timeout'); // the stale Enter did not approve it
  });

  it('discards keys typed before the prompt appeared', async () => {
    const t = setup();
    t.input.write('\r\r\r');
    const answer = t.presence.confirm(req, new AbortController().signal);
    await tick();
    t.input.write('n');
    expect(await answer).toBe('denied');
  });

  it('asks one at a time, in order; a queued request cancelled before its turn never prompts', async () => {
    const t = setup();
    const first = t.presence.confirm({ ...req, rpId: 'first.example' }, new AbortController().signal);
    const queued = new AbortController();
    const second = t.presence.confirm({ ...req, rpId: 'second.example' }, queued.signal);
    const third = t.presence.confirm({ ...req, rpId: 'third.example' }, new AbortController().signal);
    await tick();
    expect(t.text()).toContain('first.example');
    expect(t.text()).not.toContain('second.example');
    expect(t.text()).not.toContain('third.example');
    queued.abort();
    expect(await second).toBe('cancelled');
    t.input.write('\r');
    expect(await first).toBe('approved');
    await tick();
    expect(t.text()).not.toContain('second.example');
    expect(t.text()).toContain('third.example');
    t.input.write('n');
    expect(await third).toBe('denied');
  });

  it('Ctrl-C denies and re-raises the interrupt', async () => {
    const t = setup();
    const answer = t.presence.confirm(req, new AbortController().signal);
    await tick();
    t.input.write('\x03');
    expect(await answer).toBe('denied');
    expect(t.interrupts()).toBe(1);
  });

  it('an already-aborted request answers cancelled without prompting', async () => {
    const t = setup();
    expect(await t.presence.confirm(req, AbortSignal.abort())).toBe('cancelled');
    expect(t.text()).toBe('');
  });

  it('neutralises control and bidi characters and bounds untrusted text', () => {
    const evil = 'evil.com\x1b[2J\x1b]0;title\x07\r\nAPPROVED\u202egoogle.com';
    const shown = terminalSafe(evil);
    expect(shown).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u202e]/);
    expect(shown.startsWith('evil.com')).toBe(true);
    expect(terminalSafe('x'.repeat(500)).length).toBe(81);
    const line = describeRequest({ action: 'reset', rpId: evil, userName: '\u2066bob', origin: { gatewayName: 'a\nb' } });
    expect(line).not.toMatch(/[\u0000-\u001f\u2066]/);
    expect(line).toContain('RESET the authenticator');
  });

  it('the prompt on the terminal holds no VM-written control, bidi, zero-width or line-separator character', async () => {
    const t = setup();
    const forged: PresenceRequest = {
      action: 'makeCredential',
      rpId: 'bank.example\x1b[2K\r\u2028\u200bgood.example',
      userName: 'x’,’Info’);\x9b31m\u2066alice\n  Press Enter to approve',
      origin: { gatewayName: 'vm\x1b]0;title\x07', gatewayFingerprint: '01:02' },
    };
    const answer = t.presence.confirm(forged, new AbortController().signal);
    await tick();
    t.input.write('n');
    expect(await answer).toBe('denied');
    // Only the prompt's own line breaks remain; the VM's text shows its controls as visible escapes.
    expect(t.text()).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\p{Cf}\u2028\u2029]/u);
    expect(t.text()).toContain('bank.example␛[2K␍<U+2028><U+200B>good.example');
    expect(t.text()).toContain('as x’,’Info’);<U+009B>31m<U+2066>alice␊  Press Enter to approve');
    expect(t.text().split('\n')).toHaveLength(4); // blank, question, key hint + outcome, trailing
  });

  it('describes a request from a gateway known only by fingerprint', () => {
    expect(describeRequest({ action: 'selection', origin: { gatewayFingerprint: '01:02:03' } })).toBe(
      'a gateway (fp 01:02:03) wants to select this authenticator',
    );
    const direct = new TtyPresence({ input: new FakeTty(), output: new PassThrough() });
    expect(direct).toBeInstanceOf(TtyPresence);
  });
});
