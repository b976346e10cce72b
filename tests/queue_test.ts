/** The bounded FIFO in front of a pool's replicas. */
import assert from "node:assert/strict";
import { BoundedQueue } from "../src/supervision/queue.ts";

interface Item {
  cancelled: boolean;
  readonly n: number;
}
const item = (n: number): Item => ({ cancelled: false, n });

Deno.test("queue: FIFO, refuses past its capacity instead of growing", () => {
  const queue = new BoundedQueue<Item>(2);
  assert.equal(queue.push(item(1)), true);
  assert.equal(queue.push(item(2)), true);
  assert.equal(queue.push(item(3)), false);
  assert.equal(queue.shift()?.n, 1);
  assert.equal(queue.push(item(4)), true);
  assert.deepEqual(queue.drain().map((i) => i.n), [2, 4]);
  assert.equal(queue.shift(), undefined);
  assert.throws(() => new BoundedQueue<Item>(0), RangeError);
});

Deno.test("queue: a cancelled item stops counting at once and is skipped; its slot is reused", () => {
  const queue = new BoundedQueue<Item>(3);
  const items = [item(1), item(2), item(3)];
  items.forEach((i) => queue.push(i));
  queue.cancel(items[1]!);
  queue.cancel(items[1]!); // twice is once
  assert.equal(queue.length, 2);
  assert.equal(queue.push(item(4)), true, "the cancelled slot makes room");
  assert.equal(queue.push(item(5)), false);
  assert.deepEqual(queue.drain().map((i) => i.n), [1, 3, 4]);
});

Deno.test("queue: an item put back goes to the head, into a spare slot when the queue is full", () => {
  const queue = new BoundedQueue<Item>(2, 1);
  queue.push(item(1));
  queue.push(item(2));
  assert.equal(queue.push(item(3)), false, "push never uses the spare slot");
  assert.equal(queue.unshift(item(0)), true);
  assert.equal(queue.length, 3);
  assert.equal(queue.unshift(item(-1)), false, "nor does unshift go past capacity and spares");
  assert.deepEqual(queue.drain().map((i) => i.n), [0, 1, 2]);
  // Around the ring's end, and over cancelled slots.
  const ring = new BoundedQueue<Item>(3, 1);
  const items = [1, 2, 3].map(item);
  items.forEach((i) => ring.push(i));
  ring.cancel(items[2]!);
  ring.shift();
  assert.equal(ring.unshift(item(10)), true);
  assert.equal(ring.push(item(4)), true);
  assert.equal(ring.unshift(item(9)), true);
  assert.deepEqual(ring.drain().map((i) => i.n), [9, 10, 2, 4]);
});
