/**
 * The presence fake for tests (OpenSK's `env/test` habit): answers what the test scripts, records every request
 * and every answer, and can hang until the test answers by hand ("touch") or the request is cancelled — so
 * timeouts, denials and cancellation are tested in milliseconds, without a terminal or a dialog.
 */
import type { Presence, PresenceOutcome, PresenceRequest } from './port.ts';

/** A scripted answer: an outcome, `hang` (wait for release() or the abort signal), or a function of the request. */
export type FakeAnswer =
  | PresenceOutcome
  | 'hang'
  | ((request: PresenceRequest, signal: AbortSignal) => PresenceOutcome | 'hang' | Promise<PresenceOutcome | 'hang'>);

export class FakePresence implements Presence {
  /** What the next requests are answered; tests change it between requests. */
  answer: FakeAnswer;
  /** Every request asked, in order (also those answered `cancelled` because their signal had aborted). */
  readonly requests: PresenceRequest[] = [];
  /** What each request was answered, in the order the answers were given. */
  readonly outcomes: PresenceOutcome[] = [];
  private readonly hanging: ((outcome: PresenceOutcome) => void)[] = [];

  constructor(answer: FakeAnswer = 'approved') {
    this.answer = answer;
  }

  /** Requests hanging, waiting for release() or their cancellation. */
  get pending(): number {
    return this.hanging.length;
  }

  /** Answers the oldest hanging request (a "touch" when `approved`); false when none hangs. */
  release(outcome: PresenceOutcome = 'approved'): boolean {
    const resolve = this.hanging.shift();
    resolve?.(outcome);
    return resolve !== undefined;
  }

  async confirm(request: PresenceRequest, signal: AbortSignal): Promise<PresenceOutcome> {
    this.requests.push(request);
    const outcome = await this.decide(request, signal);
    this.outcomes.push(outcome);
    return outcome;
  }

  private async decide(request: PresenceRequest, signal: AbortSignal): Promise<PresenceOutcome> {
    if (signal.aborted) return 'cancelled';
    const answer = typeof this.answer === 'function' ? await this.answer(request, signal) : this.answer;
    if (answer !== 'hang') return answer;
    return new Promise<PresenceOutcome>((resolve) => {
      const settle = (outcome: PresenceOutcome): void => {
        const i = this.hanging.indexOf(settle);
        if (i >= 0) this.hanging.splice(i, 1);
        signal.removeEventListener('abort', onAbort);
        resolve(outcome);
      };
      const onAbort = (): void => settle('cancelled');
      this.hanging.push(settle);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }
}
