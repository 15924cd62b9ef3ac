/**
 * The presence port's shared pieces: the one outcome → status mapping, askPresence (the signal wins, a failing
 * prompt is a denial), the FIFO prompt queue (one at a time, aborted requests dropped) and the test fake.
 */
import { describe, expect, it } from 'vitest';
import {
  CTAP2_ERR_KEEPALIVE_CANCEL,
  CTAP2_ERR_OPERATION_DENIED,
  CTAP2_ERR_USER_ACTION_TIMEOUT,
} from '../../../protocol/ctap2.ts';
import { SW_CONDITIONS_NOT_SATISFIED } from '../../../protocol/u2f.ts';
import { askPresence } from '../../../agent/presence/ask.ts';
import { FakePresence } from '../../../agent/presence/fake.ts';
import { ctap2PresenceStatus, u2fPresenceStatus } from '../../../agent/presence/outcome-status.ts';
import type { PresenceAction, PresenceOutcome } from '../../../agent/presence/port.ts';
import { PromptQueue } from '../../../agent/presence/queue.ts';

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('outcome → status (CTAP 2.1 PS 2021-06-15)', () => {
  const actions: PresenceAction[] = ['makeCredential', 'getAssertion', 'reset', 'selection', 'credentialManagement', 'setPin', 'changePin'];

  it('denied → OPERATION_DENIED and cancelled → KEEPALIVE_CANCEL for every command', () => {
    for (const action of actions) {
      expect(ctap2PresenceStatus('denied', action)).toBe(CTAP2_ERR_OPERATION_DENIED);
      expect(ctap2PresenceStatus('cancelled', action)).toBe(CTAP2_ERR_KEEPALIVE_CANCEL);
    }
  });

  it('timeout → USER_ACTION_TIMEOUT for every command, as hardware keys answer (issue 15)', () => {
    expect(ctap2PresenceStatus('timeout', 'reset')).toBe(CTAP2_ERR_USER_ACTION_TIMEOUT); // §6.6
    expect(ctap2PresenceStatus('timeout', 'selection')).toBe(CTAP2_ERR_USER_ACTION_TIMEOUT); // §6.9
    expect(ctap2PresenceStatus('timeout', 'setPin')).toBe(CTAP2_ERR_USER_ACTION_TIMEOUT);
    expect(ctap2PresenceStatus('timeout', 'changePin')).toBe(CTAP2_ERR_USER_ACTION_TIMEOUT);
    expect(ctap2PresenceStatus('timeout', 'makeCredential')).toBe(CTAP2_ERR_USER_ACTION_TIMEOUT);
    expect(ctap2PresenceStatus('timeout', 'getAssertion')).toBe(CTAP2_ERR_USER_ACTION_TIMEOUT);
  });

  it('U2F: every refusal is SW_CONDITIONS_NOT_SATISFIED', () => {
    for (const outcome of ['denied', 'timeout', 'cancelled'] as const) expect(u2fPresenceStatus(outcome)).toBe(SW_CONDITIONS_NOT_SATISFIED);
  });
});

describe('askPresence', () => {
  const req = { action: 'selection' } as const;

  it('passes the outcome through', async () => {
    for (const outcome of ['approved', 'denied', 'timeout', 'cancelled'] as const) {
      expect(await askPresence(new FakePresence(outcome), req, new AbortController().signal)).toBe(outcome);
    }
  });

  it('answers cancelled at once when the signal aborts, even if the prompt never settles', async () => {
    const stuck = { confirm: () => new Promise<PresenceOutcome>(() => {}) };
    const ac = new AbortController();
    const answer = askPresence(stuck, req, ac.signal);
    ac.abort();
    expect(await answer).toBe('cancelled');
    expect(await askPresence(stuck, req, AbortSignal.abort())).toBe('cancelled');
  });

  it('a prompt that throws or rejects is a denial', async () => {
    const throws = { confirm: (): Promise<PresenceOutcome> => { throw new Error('no display'); } };
    const rejects = { confirm: () => Promise.reject(new Error('crashed')) };
    expect(await askPresence(throws, req, new AbortController().signal)).toBe('denied');
    expect(await askPresence(rejects, req, new AbortController().signal)).toBe('denied');
  });
});

describe('PromptQueue', () => {
  it('asks one at a time, oldest first; a request aborted while queued is answered cancelled and never asked', async () => {
    const queue = new PromptQueue();
    const asked: string[] = [];
    const answers = new Map<string, (o: PresenceOutcome) => void>();
    const ask = (name: string) => () => {
      asked.push(name);
      return new Promise<PresenceOutcome>((resolve) => answers.set(name, resolve));
    };
    const second = new AbortController();
    const p1 = queue.run(new AbortController().signal, ask('first'));
    const p2 = queue.run(second.signal, ask('second'));
    const p3 = queue.run(new AbortController().signal, ask('third'));
    await tick();
    expect(asked).toEqual(['first']);
    expect(queue.length).toBe(3);
    second.abort();
    expect(await p2).toBe('cancelled');
    answers.get('first')!('approved');
    expect(await p1).toBe('approved');
    await tick();
    expect(asked).toEqual(['first', 'third']);
    answers.get('third')!('timeout');
    expect(await p3).toBe('timeout');
    expect(queue.length).toBe(0);
  });

  it('an ask that throws is denied and the queue goes on', async () => {
    const queue = new PromptQueue();
    const bad = queue.run(new AbortController().signal, () => Promise.reject(new Error('x')));
    const good = queue.run(new AbortController().signal, async () => 'approved');
    expect(await bad).toBe('denied');
    expect(await good).toBe('approved');
  });
});

describe('FakePresence', () => {
  it('hangs until released by hand or cancelled, and records requests and outcomes', async () => {
    const fake = new FakePresence('hang');
    const ac = new AbortController();
    const a = fake.confirm({ action: 'reset' }, new AbortController().signal);
    const b = fake.confirm({ action: 'selection' }, ac.signal);
    await tick();
    expect(fake.pending).toBe(2);
    ac.abort();
    expect(await b).toBe('cancelled');
    expect(fake.release('approved')).toBe(true);
    expect(await a).toBe('approved');
    expect(fake.release()).toBe(false);
    expect(fake.requests.map((r) => r.action)).toEqual(['reset', 'selection']);
    expect(fake.outcomes).toEqual(['cancelled', 'approved']);
  });
});
