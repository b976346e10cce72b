/**
 * The deadlines of a pool's active jobs (queue wait, then predict time),
 * checked by one interval timer per pool that ticks only while something
 * is active, instead of a timer per request.
 *
 * @module
 */

/** Something with a deadline on the `performance.now()` clock; it may move while watched. */
export interface HasDeadline {
  readonly deadlineAt: number;
}

/** Watches items until their deadline passes or they are released. */
export class DeadlineTicker<T extends HasDeadline> {
  readonly #active = new Set<T>();
  readonly #tickMs: number;
  readonly #onDue: (item: T) => void;
  readonly #onWaiting: ((item: T, now: number) => void) | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;

  /**
   * `onDue` is called once for each item past its deadline, after it
   * stopped being watched; `onWaiting` at each tick for each item still
   * watched and not due, with the tick's `performance.now()` (one released
   * between two ticks is never seen).
   */
  constructor(tickMs: number, onDue: (item: T) => void, onWaiting?: (item: T, now: number) => void) {
    this.#tickMs = tickMs;
    this.#onDue = onDue;
    this.#onWaiting = onWaiting;
  }

  /** Items watched. */
  get size(): number {
    return this.#active.size;
  }

  /** Watches `item`; the timer starts with the first one. */
  watch(item: T): void {
    this.#active.add(item);
    this.#timer ??= setInterval(() => this.#tick(), this.#tickMs);
  }

  /**
   * Stops watching `item`. The timer stops itself at its next tick with
   * nothing watched: not here, or every request of a lone client would
   * start and stop one.
   */
  release(item: T): void {
    this.#active.delete(item);
  }

  #tick(): void {
    const now = performance.now();
    for (const item of this.#active) {
      if (now < item.deadlineAt) {
        this.#onWaiting?.(item, now);
        continue;
      }
      this.#active.delete(item);
      this.#onDue(item);
    }
    if (this.#active.size === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }
}

/** The tick of a pool's deadlines: every 100 ms, or a tenth of the shortest timeout when that is shorter (10 ms at least). */
export function tickMs(predictTimeoutMs: number, queueTimeoutMs: number): number {
  return Math.max(10, Math.min(100, predictTimeoutMs / 10, queueTimeoutMs / 10));
}
