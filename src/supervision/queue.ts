/**
 * A bounded FIFO on a fixed ring buffer. Items can be cancelled in place
 * (a client that went away): they stop counting at once and are skipped when
 * they reach the head.
 */

/** Something that can sit in a {@link BoundedQueue}. */
export interface Queueable {
  cancelled: boolean;
}

/**
 * Fixed-capacity FIFO; `push` refuses instead of growing. `spare` slots
 * beyond the capacity take only items put back at the head ({@link unshift}).
 */
export class BoundedQueue<T extends Queueable> {
  readonly capacity: number;
  readonly #slots: (T | undefined)[];
  /** Ring size: the capacity and the spare slots. */
  readonly #size: number;
  #head = 0;
  /** Slots in use, cancelled ones included. */
  #used = 0;
  /** Live (not cancelled) items. */
  #live = 0;

  constructor(capacity: number, spare = 0) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`Queue capacity must be a positive integer, got ${capacity}`);
    }
    this.capacity = capacity;
    this.#size = capacity + spare;
    this.#slots = new Array<T | undefined>(this.#size).fill(undefined);
  }

  /** Items waiting, cancelled ones excluded. */
  get length(): number {
    return this.#live;
  }

  /** Adds `item` at the tail; false when the queue is full. */
  push(item: T): boolean {
    if (this.#live >= this.capacity) return false;
    if (this.#used === this.#size) this.#compact();
    this.#slots[(this.#head + this.#used) % this.#size] = item;
    this.#used++;
    this.#live++;
    return true;
  }

  /**
   * Puts `item` back at the head: it was taken and could not run. May use
   * the spare slots; false when even those are full.
   */
  unshift(item: T): boolean {
    if (this.#live >= this.#size) return false;
    if (this.#used === this.#size) this.#compact();
    this.#head = (this.#head + this.#size - 1) % this.#size;
    this.#slots[this.#head] = item;
    this.#used++;
    this.#live++;
    return true;
  }

  /** The oldest live item, left in place (cancelled ones at the head are dropped). */
  peek(): T | undefined {
    while (this.#used > 0) {
      const item = this.#slots[this.#head];
      if (item && !item.cancelled) return item;
      this.#slots[this.#head] = undefined;
      this.#head = (this.#head + 1) % this.#size;
      this.#used--;
    }
    return undefined;
  }

  /** Removes and returns the oldest live item. */
  shift(): T | undefined {
    while (this.#used > 0) {
      const item = this.#slots[this.#head];
      this.#slots[this.#head] = undefined;
      this.#head = (this.#head + 1) % this.#size;
      this.#used--;
      if (item && !item.cancelled) {
        this.#live--;
        return item;
      }
    }
    return undefined;
  }

  /** Marks a queued item cancelled; it no longer counts. */
  cancel(item: T): void {
    if (item.cancelled) return;
    item.cancelled = true;
    this.#live--;
  }

  /** Removes and returns every live item. */
  drain(): T[] {
    const items: T[] = [];
    for (let item = this.shift(); item; item = this.shift()) items.push(item);
    return items;
  }

  /** Drops cancelled items so a full ring of mostly-cancelled slots has room. */
  #compact(): void {
    const live = this.drain();
    this.#head = 0;
    for (const item of live) {
      this.#slots[this.#used++] = item;
    }
    this.#live = live.length;
  }
}
