/**
 * One prompt at a time, oldest first, so an answer can never be taken for the wrong request (several VMs may
 * ask at once). A request whose signal aborts while it waits its turn (CTAPHID_CANCEL, its VM went away) is
 * answered `cancelled` at once and dropped: it never shows a prompt.
 */
import type { PresenceOutcome } from './port.ts';

export class PromptQueue {
  private tail: Promise<void> = Promise.resolve();
  private waiting = 0;

  /** Requests queued or being asked right now. */
  get length(): number {
    return this.waiting;
  }

  /** Runs `ask` once every earlier request is done, unless `signal` aborted first. */
  run(signal: AbortSignal, ask: (signal: AbortSignal) => Promise<PresenceOutcome>): Promise<PresenceOutcome> {
    if (signal.aborted) return Promise.resolve('cancelled');
    this.waiting++;
    return new Promise<PresenceOutcome>((resolve) => {
      let settled = false;
      const settle = (outcome: PresenceOutcome): void => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', onQueuedAbort);
        resolve(outcome);
      };
      // Cancelled while waiting its turn: answer at once; the queue skips it when its turn comes.
      const onQueuedAbort = (): void => settle('cancelled');
      signal.addEventListener('abort', onQueuedAbort, { once: true });
      this.tail = this.tail.then(async () => {
        try {
          if (settled || signal.aborted) return settle('cancelled');
          signal.removeEventListener('abort', onQueuedAbort);
          let outcome: PresenceOutcome;
          try {
            outcome = await ask(signal);
          } catch {
            outcome = 'denied';
          }
          settle(signal.aborted ? 'cancelled' : outcome);
        } finally {
          this.waiting--;
        }
      });
    });
  }
}
