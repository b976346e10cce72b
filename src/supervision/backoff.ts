/** Restart delays: 0.5 s doubling to 30 s, reset after a healthy period. */

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
