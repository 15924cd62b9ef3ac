/** Timers, injectable so a 30-second prompt timeout is tested without waiting. */
export interface Timers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemTimers: Timers = {
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/** How long a prompt waits for an answer: 30 s, like a security key's user-presence window. */
export const DEFAULT_PROMPT_TIMEOUT_MS = 30_000;
