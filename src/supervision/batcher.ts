/**
 * Server-side batching (`server_side_batching:`): which waiting requests
 * leave together for one `predict` call, and when.
 *
 * A batch leaves for a free replica as soon as `maxBatchSize` requests wait,
 * or once `batchIntervalMs` has passed since the first of them arrived. With
 * several replicas each free replica takes the next batch. The pool keeps
 * its queue, its limits and its per-request deadlines; the batcher only
 * decides, for one free replica at a time, whether a batch leaves now and
 * which requests it holds, and wakes the pool when the oldest waiting
 * request's interval ends. A running batch is cancelled only when every
 * request in it has gone (see {@linkcode RunningBatch}).
 *
 * | event                                   | what happens                                               |
 * | --------------------------------------- | ---------------------------------------------------------- |
 * | a replica is free, `maxBatchSize` wait  | the oldest `maxBatchSize` requests leave                   |
 * | a replica is free, the oldest waited `batchIntervalMs` | every waiting request (up to the maximum) leaves |
 * | a replica is free, neither              | nothing leaves; a timer wakes the pool at the interval end |
 * | the queue is empty                      | the timer is cleared                                       |
 */
import { clearImmediate, setImmediate } from "node:timers";
import type { ResolvedBatching } from "../config/types.ts";

/** A waiting request as the batcher sees it. */
export interface Batchable {
  /** Left the queue (client gone, queue timeout): skipped. */
  readonly cancelled: boolean;
  /** `clock.now()` when it arrived. */
  readonly arrived: number;
}

/** The pool's FIFO, oldest first; cancelled items are skipped by both methods. */
export interface BatchQueue<T> {
  /** Live items waiting. */
  readonly length: number;
  /** The oldest live item, left in place. */
  peek(): T | undefined;
  /** Removes and returns the oldest live item. */
  shift(): T | undefined;
}

/** Time source and timers; tests pass a fake one. */
export interface Clock {
  now(): number;
  setTimer(run: () => void, ms: number): unknown;
  clearTimer(timer: unknown): void;
}

/**
 * How early a wait hands over from `setTimeout` to spinning the event loop:
 * Deno's timers fire about 1.2 ms late and never sooner than about 2 ms,
 * which would be most of a 2 ms `batch_interval`.
 */
const SPIN_MS = 2.5;

/** A wait in progress: a coarse timeout, then event-loop turns until due. */
interface _PreciseTimer {
  timeout: ReturnType<typeof setTimeout> | undefined;
  immediate: ReturnType<typeof setImmediate> | undefined;
  cancelled: boolean;
}

/**
 * `performance.now()`, and timers that fire within about 0.1 ms of their due
 * time: `setTimeout` for all but the last {@link SPIN_MS}, then one
 * `setImmediate` after another (other I/O runs between them) until due.
 * The spinning happens only while a partial batch waits for a free replica,
 * that is when the server is not busy.
 */
export const SYSTEM_CLOCK: Clock = {
  now: () => performance.now(),
  setTimer: (run, ms) => {
    const due = performance.now() + ms;
    const timer: _PreciseTimer = { timeout: undefined, immediate: undefined, cancelled: false };
    const spin = () => {
      timer.timeout = undefined;
      timer.immediate = undefined;
      if (timer.cancelled) return;
      if (performance.now() >= due) run();
      else timer.immediate = setImmediate(spin);
    };
    if (ms > SPIN_MS) timer.timeout = setTimeout(spin, ms - SPIN_MS);
    else timer.immediate = setImmediate(spin);
    return timer;
  },
  clearTimer: (handle) => {
    const timer = handle as _PreciseTimer;
    timer.cancelled = true;
    clearTimeout(timer.timeout);
    if (timer.immediate !== undefined) clearImmediate(timer.immediate);
  },
};

/** What a {@linkcode Batcher} needs. */
export interface BatcherOptions {
  readonly settings: ResolvedBatching;
  /** Called when a partial batch's interval has ended: the pool dispatches again. */
  readonly onDue: () => void;
  readonly clock?: Clock;
}

/** Forms batches from the front of a pool's queue. */
export class Batcher<T extends Batchable> {
  readonly settings: ResolvedBatching;
  readonly #onDue: () => void;
  readonly #clock: Clock;
  #timer: unknown;
  #timerAt = Infinity;
  #closed = false;

  constructor(options: BatcherOptions) {
    this.settings = options.settings;
    this.#onDue = options.onDue;
    this.#clock = options.clock ?? SYSTEM_CLOCK;
  }

  /**
   * The batch one free replica should run now: the oldest waiting requests,
   * at most `maxBatchSize` of them, in arrival order. Returns `undefined`
   * when no batch is due yet (a timer then calls `onDue` when one is) or
   * nothing waits.
   */
  take(queue: BatchQueue<T>): T[] | undefined {
    const first = queue.peek();
    if (first === undefined) {
      this.#disarm();
      return undefined;
    }
    const { maxBatchSize, batchIntervalMs } = this.settings;
    const dueAt = first.arrived + batchIntervalMs;
    if (queue.length < maxBatchSize && this.#clock.now() < dueAt) {
      this.#arm(dueAt);
      return undefined;
    }
    const batch: T[] = [];
    while (batch.length < maxBatchSize) {
      const item = queue.shift();
      if (item === undefined) break;
      batch.push(item);
    }
    if (queue.length === 0) this.#disarm();
    return batch;
  }

  /** Clears the timer (the queue is empty); the next `take` arms it again. */
  clear(): void {
    this.#disarm();
  }

  /** Clears the timer; `take` arms none afterwards. */
  close(): void {
    this.#closed = true;
    this.#disarm();
  }

  #arm(dueAt: number): void {
    if (this.#closed || (this.#timer !== undefined && this.#timerAt <= dueAt)) return;
    this.#disarm();
    this.#timerAt = dueAt;
    const wait = Math.max(0, dueAt - this.#clock.now());
    this.#timer = this.#clock.setTimer(() => {
      this.#timer = undefined;
      this.#timerAt = Infinity;
      this.#onDue();
    }, wait);
  }

  #disarm(): void {
    if (this.#timer === undefined) return;
    this.#clock.clearTimer(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
  }
}

/**
 * A batch on its way through a replica. Each request may leave (its client
 * went away); the batch's `signal` aborts only once every request in it has
 * left, so one impatient client never costs the others their answers.
 */
export class RunningBatch<T> {
  readonly items: readonly T[];
  readonly #controller = new AbortController();
  readonly #gone = new Set<T>();

  constructor(items: readonly T[]) {
    if (items.length === 0) throw new RangeError("A batch holds at least one request");
    this.items = items;
  }

  /** Aborts when every request of the batch has left. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Requests of the batch still waiting for their answer. */
  get remaining(): number {
    return this.items.length - this.#gone.size;
  }

  /** Marks `item` as gone; returns true when that cancelled the batch. */
  leave(item: T): boolean {
    if (this.#controller.signal.aborted || !this.items.includes(item) || this.#gone.has(item)) return false;
    this.#gone.add(item);
    if (this.#gone.size < this.items.length) return false;
    this.#controller.abort(new Error("Every request of the batch has gone"));
    return true;
  }
}
