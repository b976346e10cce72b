/**
 * Batch forming in-process, against a fake clock and fake replicas: every
 * ordering in microseconds, deterministic.
 */
import assert from "node:assert/strict";
import { Batcher, type Clock, RunningBatch } from "../src/supervision/batcher.ts";
import { BoundedQueue } from "../src/supervision/queue.ts";

/** A clock whose time moves only when the test says so. */
class FakeClock implements Clock {
  time = 0;
  #next = 1;
  readonly timers = new Map<number, { at: number; run: () => void }>();
  now(): number {
    return this.time;
  }
  setTimer(run: () => void, ms: number): number {
    const id = this.#next++;
    this.timers.set(id, { at: this.time + ms, run });
    return id;
  }
  clearTimer(timer: unknown): void {
    this.timers.delete(timer as number);
  }
  /** Moves time forward by `ms`, firing due timers in order. */
  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      const due = [...this.timers].filter(([, t]) => t.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
      if (due === undefined) break;
      this.timers.delete(due[0]);
      this.time = due[1].at;
      due[1].run();
    }
    this.time = end;
  }
}

interface Req {
  readonly id: number;
  cancelled: boolean;
  readonly arrived: number;
}

/** A pool in miniature: a queue, a batcher, replicas that are free or running a batch. */
class FakePool {
  readonly clock = new FakeClock();
  readonly queue = new BoundedQueue<Req>(256);
  readonly batcher: Batcher<Req>;
  /** Per replica, the batch it runs (ids), or undefined when free. */
  readonly running: (number[] | undefined)[];
  /** Every batch that left, in order, with the time and the replica. */
  readonly sent: { replica: number; at: number; ids: number[] }[] = [];
  wakes = 0;
  #id = 0;

  constructor(maxBatchSize: number, batchIntervalMs: number, replicas = 1) {
    this.running = new Array(replicas).fill(undefined);
    this.batcher = new Batcher<Req>({
      settings: { maxBatchSize, batchIntervalMs },
      clock: this.clock,
      onDue: () => {
        this.wakes++;
        this.dispatch();
      },
    });
  }

  arrive(count = 1): Req[] {
    const reqs: Req[] = [];
    for (let i = 0; i < count; i++) {
      const req = { id: ++this.#id, cancelled: false, arrived: this.clock.now() };
      assert.ok(this.queue.push(req));
      reqs.push(req);
    }
    this.dispatch();
    return reqs;
  }

  /** Replica `index` finished its batch. */
  finish(index: number): void {
    assert.ok(this.running[index] !== undefined, `replica ${index} was running`);
    this.running[index] = undefined;
    this.dispatch();
  }

  dispatch(): void {
    for (let index = 0; index < this.running.length; index++) {
      if (this.running[index] !== undefined) continue;
      const batch = this.batcher.take(this.queue);
      if (batch === undefined) return;
      const ids = batch.map((r) => r.id);
      this.running[index] = ids;
      this.sent.push({ replica: index, at: this.clock.now(), ids });
    }
  }
}

Deno.test("a full batch leaves at once, without waiting for the interval", () => {
  const pool = new FakePool(4, 50);
  pool.arrive(3);
  assert.deepEqual(pool.sent, []);
  pool.clock.advance(1);
  pool.arrive(1);
  assert.deepEqual(pool.sent, [{ replica: 0, at: 1, ids: [1, 2, 3, 4] }]);
  assert.equal(pool.clock.timers.size, 0, "no timer left once the queue is empty");
});

Deno.test("a partial batch leaves when the interval since its first request has passed", () => {
  const pool = new FakePool(8, 5);
  pool.arrive(1);
  pool.clock.advance(3);
  pool.arrive(2);
  pool.clock.advance(1.9);
  assert.deepEqual(pool.sent, [], "not before the first request's interval ends");
  pool.clock.advance(0.1);
  assert.deepEqual(pool.sent, [{ replica: 0, at: 5, ids: [1, 2, 3] }]);
  assert.equal(pool.wakes, 1, "one timer for the batch, not one per request");
});

Deno.test("the next batch's interval starts at its own first request", () => {
  const pool = new FakePool(8, 10);
  pool.arrive(2);
  pool.clock.advance(10);
  assert.deepEqual(pool.sent.map((s) => s.ids), [[1, 2]]);
  pool.clock.advance(4);
  pool.arrive(1); // t = 14: due at 24
  pool.finish(0);
  pool.clock.advance(9);
  assert.equal(pool.sent.length, 1);
  pool.clock.advance(1);
  assert.deepEqual(pool.sent.at(-1), { replica: 0, at: 24, ids: [3] });
});

Deno.test("requests that arrive while the replica is busy leave together when it frees", () => {
  const pool = new FakePool(4, 5);
  pool.arrive(4); // full: leaves at once
  pool.arrive(6); // the replica is busy
  pool.clock.advance(20);
  assert.equal(pool.sent.length, 1, "no replica free: nothing leaves");
  pool.finish(0);
  assert.deepEqual(pool.sent.at(-1), { replica: 0, at: 20, ids: [5, 6, 7, 8] });
  pool.finish(0);
  assert.deepEqual(
    pool.sent.at(-1),
    { replica: 0, at: 20, ids: [9, 10] },
    "waited past the interval: leaves",
  );
});

Deno.test("with several replicas each free replica takes the next batch", () => {
  const pool = new FakePool(3, 5, 3);
  pool.arrive(8);
  assert.deepEqual(pool.sent, [
    { replica: 0, at: 0, ids: [1, 2, 3] },
    { replica: 1, at: 0, ids: [4, 5, 6] },
  ]);
  pool.clock.advance(5);
  assert.deepEqual(pool.sent[2], { replica: 2, at: 5, ids: [7, 8] });
  pool.arrive(1);
  pool.finish(1);
  pool.clock.advance(4.5);
  assert.equal(pool.sent.length, 3);
  pool.clock.advance(0.5);
  assert.deepEqual(pool.sent[3], { replica: 1, at: 10, ids: [9] });
});

Deno.test("cancelled requests never join a batch; the timer follows the oldest live request", () => {
  const pool = new FakePool(4, 10);
  const [a] = pool.arrive(1); // due at 10
  pool.clock.advance(3);
  const [b, c] = pool.arrive(2); // b due at 13
  pool.queue.cancel(a!); // its client went away
  pool.queue.cancel(c!); // its queue wait ran out
  pool.arrive(0);
  pool.clock.advance(7); // t = 10: the timer fires, b is not due yet
  assert.equal(pool.sent.length, 0);
  pool.clock.advance(3); // t = 13
  assert.deepEqual(pool.sent, [{ replica: 0, at: 13, ids: [b!.id] }]);
  const [d, e, f, g, h] = pool.arrive(5); // 4 leave at once, one waits
  pool.finish(0);
  assert.deepEqual(pool.sent.at(-1)!.ids, [d!.id, e!.id, f!.id, g!.id]);
  pool.queue.cancel(h!);
  pool.finish(0);
  assert.equal(pool.sent.length, 2);
});

Deno.test("a queue whose requests all left clears the timer", () => {
  const pool = new FakePool(8, 10);
  const reqs = pool.arrive(3);
  assert.equal(pool.clock.timers.size, 1);
  for (const r of reqs) pool.queue.cancel(r);
  pool.clock.advance(10); // fires once, finds nothing
  assert.equal(pool.wakes, 1);
  assert.equal(pool.clock.timers.size, 0);
  assert.deepEqual(pool.sent, []);
});

Deno.test("one timer at a time: later requests do not re-arm it", () => {
  const pool = new FakePool(100, 10);
  for (let i = 0; i < 50; i++) {
    pool.arrive(1);
    pool.clock.advance(0.1);
  }
  assert.equal(pool.clock.timers.size, 1);
  pool.clock.advance(10);
  assert.equal(pool.wakes, 1);
  assert.equal(pool.sent[0]!.ids.length, 50);
});

Deno.test("close() clears the timer and arms no other", () => {
  const pool = new FakePool(8, 10);
  pool.arrive(1);
  pool.batcher.close();
  assert.equal(pool.clock.timers.size, 0);
  pool.arrive(1);
  assert.equal(pool.clock.timers.size, 0);
});

Deno.test("a running batch is cancelled only when every request in it has gone", () => {
  const items = ["a", "b", "c"];
  const batch = new RunningBatch(items);
  assert.equal(batch.leave("a"), false);
  assert.equal(batch.leave("a"), false, "leaving twice counts once");
  assert.equal(batch.leave("x"), false, "not a member");
  assert.equal(batch.leave("b"), false);
  assert.equal(batch.signal.aborted, false);
  assert.equal(batch.remaining, 1);
  assert.equal(batch.leave("c"), true);
  assert.equal(batch.signal.aborted, true);
  assert.equal(batch.remaining, 0);
  assert.throws(() => new RunningBatch([]), RangeError);
});
