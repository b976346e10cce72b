/**
 * Restart delays: 0.5 s doubling to 30 s, reset after a healthy period.
 * {@link RestartBackoff} keeps the count for one replica and applies the
 * reset rule; the replica (./replica.ts) only reports what its workers did.
 *
 * @module
 */

/** Backoff settings, in milliseconds. */
export interface BackoffOptions {
  readonly initialMs: number;
  readonly maxMs: number;
  /**
   * A worker ready for this long resets the delay to `initialMs`; so does one
   * that answered at least one request (a crash caused by one request does
   * not slow down the next).
   */
  readonly resetAfterMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = {
  initialMs: 500,
  maxMs: 30_000,
  resetAfterMs: 60_000,
};

/** Delay before restart number `attempt` (0-based). */
export function backoffDelay(attempt: number, options: BackoffOptions): number {
  return Math.min(options.maxMs, options.initialMs * 2 ** Math.min(attempt, 30));
}

/**
 * The restart delays of one replica. A worker that had a healthy period (it
 * answered requests, or stayed up for `resetAfterMs`) restarts with the
 * shortest delay; one that dies before doing any work backs off further
 * each time.
 */
export class RestartBackoff {
  readonly #o: BackoffOptions;
  readonly #now: () => number;
  #attempt = 0;
  /** When the current worker became ready; 0 when it never did. */
  #readyAt = 0;
  /** Requests the current worker answered (a result or a Python error). */
  #answered = 0;

  constructor(options: BackoffOptions, now: () => number = Date.now) {
    this.#o = options;
    this.#now = now;
  }

  /** A new worker is starting. */
  starting(): void {
    this.#answered = 0;
  }

  /** The worker answered `ready`. */
  ready(): void {
    this.#readyAt = this.#now();
  }

  /** The worker answered a request. */
  answered(): void {
    this.#answered++;
  }

  /** The worker is gone (or never became ready): the delay before the next one, in milliseconds. */
  next(): number {
    const healthy = this.#readyAt > 0 &&
      (this.#answered > 0 || this.#now() - this.#readyAt >= this.#o.resetAfterMs);
    if (healthy) this.#attempt = 0;
    this.#readyAt = 0;
    return backoffDelay(this.#attempt++, this.#o);
  }
}
