/**
 * The items of one streamed prediction as an async iterable, with the
 * credit-based flow control of the protocol: the worker sends at most the
 * window's worth of items ahead, and each item the consumer takes grants
 * one more (`credit`). A consumer that reads slowly therefore holds the
 * worker's generator, and the server never buffers more than the window.
 */

/** What a stream needs from its worker. */
export interface StreamLink {
  /** Grants `n` more items (sends `credit`). */
  readonly credit: (n: number) => void;
  /** Stops the request (sends `cancel`). */
  readonly cancel: () => void;
}

/**
 * Items (UTF-8 JSON each) of a request whose `predict` returned an iterator.
 * Iterate it once; leaving the loop early cancels the request. Iteration
 * throws the request's error (PredictFailedError, WorkerExitedError,
 * ProtocolError) after the items that came before it.
 */
export class PredictStream implements AsyncIterable<Uint8Array> {
  readonly #link: StreamLink;
  readonly #window: number;
  readonly #items: Uint8Array[] = [];
  /** Items received and not yet granted back by credit. */
  #outstanding = 0;
  #received = 0;
  #ended = false;
  #error: Error | undefined;
  #wake: (() => void) | undefined;
  #iterating = false;

  constructor(link: StreamLink, window: number) {
    this.#link = link;
    this.#window = window;
  }

  /** Items received from the worker so far. */
  get received(): number {
    return this.#received;
  }

  /** True once the worker ended the stream, normally or not. */
  get ended(): boolean {
    return this.#ended;
  }

  /**
   * Adds an item from the worker; false when the worker went past its
   * window (a protocol violation the caller handles).
   */
  push(item: Uint8Array): boolean {
    if (this.#ended) return false;
    if (this.#outstanding >= this.#window) return false;
    this.#outstanding++;
    this.#received++;
    this.#items.push(item);
    this.#poke();
    return true;
  }

  /** The worker ended the stream: normally (no error) or with `error`. */
  end(error?: Error): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#error = error;
    this.#poke();
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    if (this.#iterating) throw new Error("A prediction stream can be iterated once");
    this.#iterating = true;
    return {
      next: () => this.#next(),
      return: (): Promise<IteratorResult<Uint8Array>> => {
        if (!this.#ended) this.#link.cancel();
        this.#items.length = 0;
        return Promise.resolve({ done: true, value: undefined });
      },
    };
  }

  async #next(): Promise<IteratorResult<Uint8Array>> {
    for (;;) {
      const item = this.#items.shift();
      if (item !== undefined) {
        if (!this.#ended) {
          this.#outstanding--;
          this.#link.credit(1);
        }
        return { done: false, value: item };
      }
      if (this.#ended) {
        if (this.#error) throw this.#error;
        return { done: true, value: undefined };
      }
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
  }

  #poke(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}
