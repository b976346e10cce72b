/**
 * A tiny typed event source: replicas, pools and the reloader announce state
 * changes through one, and any number of listeners subscribe. Nothing in
 * supervision polls a state in a timer loop; it waits on these instead.
 *
 * @module
 */

/** Receives each emitted value. */
export type Listener<T> = (value: T) => void;

/** Anything with events to wait on. */
export interface EventSource {
  on(listener: () => void): () => void;
}

/**
 * Many listeners, one value type; listeners run synchronously, in
 * subscription order. The list is copied when a listener subscribes or
 * unsubscribes, never when emitting: an emit (several per request) allocates
 * nothing, and one that (un)subscribes listeners calls the list it started with.
 */
export class Emitter<T> {
  #listeners: readonly Listener<T>[] = [];

  /** Subscribes `listener`; call the returned function to unsubscribe. */
  on(listener: Listener<T>): () => void {
    // A wrapper per subscription, so the same function may subscribe twice.
    const entry: Listener<T> = (value) => listener(value);
    this.#listeners = [...this.#listeners, entry];
    return () => {
      this.#listeners = this.#listeners.filter((l) => l !== entry);
    };
  }

  /** Listeners currently subscribed. */
  get size(): number {
    return this.#listeners.length;
  }

  /** Calls every listener with `value`; a listener that throws does not stop the others. */
  emit(value: T): void {
    const listeners = this.#listeners;
    if (listeners.length === 0) return;
    let failure: unknown;
    let failed = false;
    for (const listener of listeners) {
      try {
        listener(value);
      } catch (error) {
        if (!failed) failure = error;
        failed = true;
      }
    }
    if (failed) throw failure;
  }
}

/** Options for {@link waitUntil}. */
export interface WaitOptions {
  /** Rejects with the signal's reason when it aborts first. */
  readonly signal?: AbortSignal | undefined;
  /** Rejects with a `TimeoutError` after this many milliseconds. */
  readonly timeoutMs?: number | undefined;
}

/**
 * Resolves once `check()` returns a value other than undefined: checked now
 * and after each event of every source. A check that throws rejects.
 *
 * @example
 * ```ts
 * await waitUntil([pool.changes], () => pool.idle || undefined, { timeoutMs: 5000 });
 * ```
 */
export function waitUntil<R>(
  sources: readonly EventSource[],
  check: () => R | undefined,
  options: WaitOptions = {},
): Promise<R> {
  const { signal, timeoutMs } = options;
  return new Promise<R>((resolve, reject) => {
    const offs: (() => void)[] = [];
    let timer: ReturnType<typeof setTimeout> | undefined;
    let done = false;
    const finish = (settle: () => void) => {
      if (done) return;
      done = true;
      for (const off of offs) off();
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      settle();
    };
    const test = () => {
      let result: R | undefined;
      try {
        result = check();
      } catch (error) {
        return finish(() => reject(error));
      }
      if (result !== undefined) finish(() => resolve(result));
    };
    const onAbort = () =>
      finish(() => reject(signal?.reason instanceof Error ? signal.reason : new Error("Aborted")));
    if (signal?.aborted) return onAbort();
    signal?.addEventListener("abort", onAbort, { once: true });
    for (const source of sources) offs.push(source.on(test));
    if (timeoutMs !== undefined) {
      timer = setTimeout(
        () => finish(() => reject(new DOMException(`Timed out after ${timeoutMs} ms`, "TimeoutError"))),
        timeoutMs,
      );
    }
    test();
  });
}
