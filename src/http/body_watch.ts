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

/** A watched read. */
class WatchedRead implements BodyRead {
  /** `performance.now()` of the last byte (or of the start). */
  last = performance.now();

  constructor(
    readonly watch: BodyWatch,
    readonly onTimeout: () => void,
  ) {}

  progress(): void {
    this.last = performance.now();
  }

  done(): void {
    this.watch.forget(this);
  }
}

/** Watches body reads and calls their `onTimeout` once they were idle for `timeoutMs`. */
export class BodyWatch {
  readonly timeoutMs: number;
  readonly #reads = new Set<WatchedRead>();
  /** How often idle reads are looked for: a read is given up at most this late. */
  readonly #periodMs: number;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(timeoutMs: number = DEFAULT_BODY_TIMEOUT_MS) {
    this.timeoutMs = timeoutMs;
    this.#periodMs = Math.min(1000, Math.max(5, Math.floor(timeoutMs / 8)));
  }

  /** Reads being watched. */
  get reading(): number {
    return this.#reads.size;
  }

  /** Starts watching a read; `onTimeout` is called at most once, after which the read is forgotten. */
  start(onTimeout: () => void): BodyRead {
    const read = new WatchedRead(this, onTimeout);
    this.#reads.add(read);
    if (this.#timer === undefined) {
      this.#timer = setTimeout(this.#sweep, this.#periodMs);
      // The listener keeps the process alive, not this timer.
      Deno.unrefTimer(this.#timer);
    }
    return read;
  }

  /** Stops watching `read`. */
  forget(read: BodyRead): void {
    this.#reads.delete(read as WatchedRead);
  }

  readonly #sweep = (): void => {
    this.#timer = undefined;
    const idleSince = performance.now() - this.timeoutMs;
    for (const read of this.#reads) {
      if (read.last > idleSince) continue;
      this.#reads.delete(read);
      read.onTimeout();
    }
    if (this.#reads.size === 0) return;
    this.#timer = setTimeout(this.#sweep, this.#periodMs);
    Deno.unrefTimer(this.#timer);
  };
}
