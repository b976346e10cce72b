/**
 * Load shedding that does not starve the work: rejected requests (a full
 * queue, an API not ready, a refused API key) are answered one or a few
 * per timer turn, and logged as a count per second per reason.
 *
 * Why paced: Deno's HTTP server hands the app every request that arrived
 * since the last event-loop turn in one go, and a worker's result is read
 * only between turns. Clients that retry a 503 at once keep hundreds of
 * requests in every turn; answered on the spot, each turn lasts as long as
 * all their 503s and a replica finishes about one prediction per turn (98 %
 * of the work lost at 256 clients against a queue of 64). Answering
 * {@link SHED_PER_TURN} rejection per timer turn (timers fire at most once a
 * millisecond) keeps turns short, so results are picked up as soon as
 * workers write them; the excess clients wait a little for their 503 and so
 * retry less often. When many wait, more are answered per turn, so that no
 * 503 waits much longer than {@link MAX_HOLD_TURNS} turns (about 250 ms).
 *
 * @module
 */
import type { LogFields, Logger, LogLevel } from "../log/logger.ts";

/** Rejections answered per timer turn, at least. */
export const SHED_PER_TURN = 1;
/** Turns a rejection may wait: more are answered per turn when more are waiting. */
export const MAX_HOLD_TURNS = 250;
/** Above this many waiting rejections, answer at once (bounds memory under a flood of new connections). */
const MAX_WAITING = 4096;
/** Period of the rejection summary lines. */
const SUMMARY_MS = 1000;

/** A FIFO of rejection answers, released a few per event-loop turn. */
export class ShedPacer {
  readonly #perTurn: number;
  #waiting: (() => void)[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(perTurn = SHED_PER_TURN) {
    this.#perTurn = perTurn;
  }

  /** Rejections waiting for their turn. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** Resolves with `answer()` in a later event-loop turn, after the rejections queued before it. */
  answer<T>(answer: () => T): Promise<T> {
    if (this.#waiting.length >= MAX_WAITING) return Promise.resolve(answer());
    return new Promise<T>((resolve) => {
      this.#waiting.push(() => resolve(answer()));
      this.#timer ??= setTimeout(this.#release, 0);
    });
  }

  readonly #release = (): void => {
    this.#timer = undefined;
    const count = Math.max(this.#perTurn, Math.ceil(this.#waiting.length / MAX_HOLD_TURNS));
    const batch = this.#waiting.length <= count ? this.#waiting : this.#waiting.splice(0, count);
    if (batch === this.#waiting) this.#waiting = [];
    for (const answer of batch) answer();
    if (this.#waiting.length > 0) this.#timer = setTimeout(this.#release, 0);
  };
}

/**
 * Logs rejected requests as one warn line per second per (message, fields)
 * with a `count`, instead of one line each; bodies a client did not send are
 * counted the same way at info. With `--log-level debug` the caller logs
 * each one instead ({@link RejectionLog.perRequest}).
 */
export class RejectionLog {
  readonly #logger: Logger;
  /** True when each rejection gets its own line (debug level); nothing is summarised then. */
  readonly perRequest: boolean;
  readonly #counts = new Map<
    string,
    { message: string; fields: LogFields; level: LogLevel; count: number }
  >();
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(logger: Logger) {
    this.#logger = logger;
    this.perRequest = logger.enabled("debug");
  }

  /**
   * Counts one rejection; `fields` values must be short strings or numbers.
   * The summary line has `level` (one level per message).
   */
  count(
    message: string,
    fields: Readonly<Record<string, string | number>>,
    level: "info" | "warn" = "warn",
  ): void {
    let key = message;
    for (const field in fields) key += `\u0000${fields[field]}`;
    const entry = this.#counts.get(key);
    if (entry !== undefined) entry.count++;
    else this.#counts.set(key, { message, fields, level, count: 1 });
    if (this.#timer === undefined) {
      this.#timer = setTimeout(this.flush, SUMMARY_MS);
      Deno.unrefTimer(this.#timer);
    }
  }

  /** Writes the counts gathered so far. */
  readonly flush = (): void => {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const { message, fields, level, count } of this.#counts.values()) {
      this.#logger.log(level, message, { ...fields, count, period_s: SUMMARY_MS / 1000 });
    }
    this.#counts.clear();
  };
}
