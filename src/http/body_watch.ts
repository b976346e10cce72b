/**
 * The idle-gap timeout of request bodies (`--body-timeout`, nginx's
 * `client_body_timeout`): a body read that receives no byte for that long is
 * given up. One timer watches every body being read, so a read costs a set
 * entry, not a timer of its own: the hot path stays a few field writes, and
 * the timer only runs while some body is being read.
 *
 * @module
 */

/** Default of `--body-timeout`. */
export const DEFAULT_BODY_TIMEOUT_MS = 30_000;

/** One body being read, as {@link BodyWatch.start} returns it. */
export interface BodyRead {
  /** Bytes arrived: the idle gap starts again. */
  progress(): void;
  /** The read ended (complete, failed or given up): stop watching it. */
  done(): void;
}

/**
 * A watched read: a node of the watch's list (linking and unlinking cost a
 * few field writes, less than a Set). Time is counted in sweeps of the
 * watch, not read from a clock, so bytes arriving cost one field write.
 */
class WatchedRead implements BodyRead {
  /** The watch's sweep count when the last byte (or the start) was seen. */
  tick: number;
  /** Sweeps without a byte after which the read is given up. */
  readonly sweeps: number;
  prev: WatchedRead | undefined = undefined;
  next: WatchedRead | undefined = undefined;
  linked = false;

  constructor(
    readonly watch: BodyWatch,
    readonly onTimeout: () => void,
    sweeps: number,
  ) {
    this.tick = watch.tick;
    this.sweeps = sweeps;
  }

  progress(): void {
    this.tick = this.watch.tick;
  }

  done(): void {
    this.watch.forget(this);
  }
}

/** Watches body reads and calls their `onTimeout` once they were idle for `timeoutMs`. */
export class BodyWatch {
  readonly timeoutMs: number;
  /** Sweeps so far; a read's idle time is counted in sweeps. */
  tick = 0;
  /** How often idle reads are looked for: a read is given up at most this late. */
  readonly #periodMs: number;
  /**
   * Sweeps without a byte after which a read is given up: a sweep comes at
   * least a period after the one before, so this many mean at least
   * `timeoutMs` (and at most a period more).
   */
  readonly #idleSweeps: number;
  #first: WatchedRead | undefined = undefined;
  #count = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(timeoutMs: number = DEFAULT_BODY_TIMEOUT_MS) {
    this.timeoutMs = timeoutMs;
    this.#periodMs = Math.min(1000, Math.max(5, Math.floor(timeoutMs / 8)));
    this.#idleSweeps = Math.ceil(timeoutMs / this.#periodMs) + 1;
  }

  /** Reads being watched. */
  get reading(): number {
    return this.#count;
  }

  /**
   * Starts watching a read; `onTimeout` is called at most once, after which
   * the read is forgotten, when no byte came for `timeouts` × `timeoutMs`.
   */
  start(onTimeout: () => void, timeouts = 1): BodyRead {
    const sweeps = timeouts === 1
      ? this.#idleSweeps
      : Math.ceil((timeouts * this.timeoutMs) / this.#periodMs) + 1;
    const read = new WatchedRead(this, onTimeout, sweeps);
    const first = this.#first;
    read.next = first;
    if (first !== undefined) first.prev = read;
    this.#first = read;
    read.linked = true;
    this.#count++;
    if (this.#timer === undefined) this.#schedule();
    return read;
  }

  /** Stops watching `read`. */
  forget(read: BodyRead): void {
    const node = read as WatchedRead;
    if (!node.linked) return;
    node.linked = false;
    const { prev, next } = node;
    if (prev === undefined) this.#first = next;
    else prev.next = next;
    if (next !== undefined) next.prev = prev;
    node.prev = node.next = undefined;
    this.#count--;
  }

  #schedule(): void {
    this.#timer = setTimeout(this.#sweep, this.#periodMs);
    // The listener keeps the process alive, not this timer.
    Deno.unrefTimer(this.#timer);
  }

  readonly #sweep = (): void => {
    this.#timer = undefined;
    const tick = ++this.tick;
    for (let read = this.#first; read !== undefined;) {
      const next = read.next;
      if (tick - read.tick >= read.sweeps) {
        this.forget(read);
        read.onTimeout();
      }
      read = next;
    }
    if (this.#count > 0) this.#schedule();
  };
}
