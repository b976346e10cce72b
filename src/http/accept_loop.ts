/**
 * The accept loop of a listening socket. A failed `accept` (out of file
 * descriptors, out of memory, a connection reset before it was taken) never
 * ends the loop: it waits, doubling from {@link MIN_BACKOFF_MS} up to
 * {@link MAX_BACKOFF_MS}, and tries again; the connections waiting in the
 * kernel's backlog are taken once descriptors are free again. The loop ends
 * only when the listener is closed.
 *
 * Failures are logged summarised: the first at once, with the error, then
 * one line per {@link REPORT_WINDOW_MS} with the count, however many there
 * were.
 *
 * @module
 */
import type { Logger } from "../log/logger.ts";

const MIN_BACKOFF_MS = 5;
const MAX_BACKOFF_MS = 500;
const REPORT_WINDOW_MS = 10_000;

/** Counts failed accepts and logs them, at most one line per window. */
export class AcceptErrors {
  readonly #logger: Logger | undefined;
  /** Failed accepts since start (a metric). */
  total = 0;
  #inWindow = 0;
  #lastMessage = "";
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(logger?: Logger) {
    this.#logger = logger;
  }

  /** Counts one failure; logs it if it is the first of a window. */
  record(error: unknown): void {
    this.total++;
    this.#lastMessage = error instanceof Error ? error.message : String(error);
    if (this.#timer !== undefined) {
      this.#inWindow++;
      return;
    }
    this.#logger?.warn("accepting a connection failed: retrying; further failures are summarised", {
      error: this.#lastMessage,
      summary_every_s: REPORT_WINDOW_MS / 1000,
    });
    this.#timer = setTimeout(() => this.#report(), REPORT_WINDOW_MS);
  }

  /** Logs the failures of the window just ended, if any; keeps a window open while they go on. */
  #report(): void {
    this.#timer = undefined;
    if (!this.#flush()) return;
    this.#timer = setTimeout(() => this.#report(), REPORT_WINDOW_MS);
  }

  #flush(): boolean {
    if (this.#inWindow === 0) return false;
    this.#logger?.warn("accepting connections kept failing", {
      failures: this.#inWindow,
      window_s: REPORT_WINDOW_MS / 1000,
      error: this.#lastMessage,
    });
    this.#inWindow = 0;
    return true;
  }

  /** Logs what is pending and stops the timer. */
  [Symbol.dispose](): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#flush();
  }
}

/** Where accepted connections go. */
export interface ConnectionSink {
  /** Takes an accepted connection. */
  take(conn: Deno.Conn): void;
  /** Undefined when a connection may be accepted now, else when one may. */
  whenRoom(): Promise<void> | undefined;
}

/**
 * Accepts connections from `listener` and hands each to `sink` until the
 * listener is closed; failures go to `errors`.
 */
export async function acceptLoop(
  listener: Deno.Listener,
  sink: ConnectionSink,
  errors: AcceptErrors,
): Promise<void> {
  let backoff = 0;
  while (true) {
    const room = sink.whenRoom();
    if (room !== undefined) await room;
    let conn: Deno.Conn;
    try {
      conn = await listener.accept();
    } catch (error) {
      if (_isClosed(error)) return;
      errors.record(error);
      backoff = Math.min(MAX_BACKOFF_MS, Math.max(MIN_BACKOFF_MS, backoff * 2));
      await new Promise((resolve) => setTimeout(resolve, backoff));
      continue;
    }
    backoff = 0;
    sink.take(conn);
  }
}

/** The listener was closed (the only way the loop ends). */
function _isClosed(error: unknown): boolean {
  return error instanceof Deno.errors.BadResource || error instanceof Deno.errors.Interrupted;
}
