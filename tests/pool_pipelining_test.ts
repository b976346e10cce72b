/**
 * Pipelining in-process (../src/supervision/pipelining.ts): a busy replica
 * sent the next request behind the running one, what becomes of that
 * request when the worker is lost, its client leaves or its wait is over,
 * and when the pool does not pipeline. Deterministic: the test answers
 * each call.
 */
import assert from "node:assert/strict";
import type { ApiError } from "../src/errors/api_error.ts";
import type { ApiPool } from "../src/supervision/pool.ts";
import { waitUntil } from "../src/supervision/events.ts";
import { blockFor, type FakeSpawner, sample } from "./_fake_worker.ts";
import { makePool, text } from "./_pool.ts";

async function warm(pool: ApiPool, spawner: FakeSpawner, ms = 0): Promise<void> {
  const first = pool.submit(sample("warm"), { debug: false });
  const worker = spawner.last;
  await worker.until(() => worker.pending?.sample === '"warm"');
  blockFor(ms);
  worker.answer("warm");
  await first;
  await waitUntil([pool.changes], () => pool.idle || undefined, { timeoutMs: 2000 });
}

const settled = <T>(promise: Promise<T>) => promise.then((v) => v, (e: ApiError) => e);

Deno.test("pipelining: a busy replica is sent the next request behind the running one; answers keep their order", async () => {
  const { pool, spawners, records, stop } = await makePool({ predictTimeoutMs: 100, queueTimeoutMs: 10_000 });
  await warm(pool, spawners[0]!);
  const worker = spawners[0]!.last;
  const answers = [1, 2, 3].map((i) => pool.submit(sample(i), { debug: false }));
  // Two in the worker (the running one and one behind it), one in the queue.
  await worker.until(() => worker.outstanding === 2);
  assert.equal(pool.inFlight, 2);
  assert.equal(pool.queueLength, 1);
  // The predict timeout of the one behind starts when it starts, not when it was sent.
  blockFor(150);
  worker.answer(10);
  await worker.until(() => worker.pending?.sample === "2" && worker.outstanding === 2);
  worker.answer(20);
  await worker.until(() => worker.pending?.sample === "3");
  worker.answer(30);
  assert.deepEqual((await Promise.all(answers)).map(text), ["10", "20", "30"]);
  const events = records.filter((r) => r.msg === "replica state").map((r) => r.event);
  assert.ok(events.includes("pipeline") && events.includes("next"), events.join(" "));
  await stop();
});

Deno.test("pipelining: a worker lost with a request behind fails the running one only; the other runs on the next worker", async () => {
  const { pool, spawners, stop } = await makePool();
  const spawner = spawners[0]!;
  await warm(pool, spawner);
  const worker = spawner.last;
  const running = settled(pool.submit(sample(1), { debug: false }));
  const behind = pool.submit(sample(2), { debug: false });
  await worker.until(() => worker.outstanding === 2);
  worker.exit(1);
  assert.equal(((await running) as ApiError).code, "WORKER_DIED");
  const next = await spawner.nth(2);
  await next.until(() => next.pending?.sample === "2");
  next.answer(20);
  assert.equal(text(await behind), "20");
  assert.deepEqual(next.samples, ["2"]);
  await stop();
});

Deno.test("pipelining: a worker that dies after an answer was running the request behind it: 502, never run again", async () => {
  const { pool, replicas, spawners, stop } = await makePool();
  const spawner = spawners[0]!;
  await warm(pool, spawner);
  const worker = spawner.last;
  const first = pool.submit(sample(1), { debug: false });
  const poison = settled(pool.submit(sample(2), { debug: false }));
  await worker.until(() => worker.outstanding === 2);
  worker.answer(10);
  worker.exit(1); // in the same turn: the server hears of both together
  assert.equal(text(await first), "10");
  assert.equal(((await poison) as ApiError).code, "WORKER_DIED");
  const next = await spawner.nth(2);
  await waitUntil([pool.changes], () => replicas[0]!.state === "ready" || undefined, { timeoutMs: 2000 });
  assert.deepEqual(next.samples, []);
  assert.ok(pool.idle);
  await stop();
});

Deno.test("pipelining: the client of a request behind leaves: dropped in the worker, the running one goes on", async () => {
  // The worker drops it at once, or only when it gets to it: its cancel grace starts then, not before.
  for (const dropWhenReached of [false, true]) {
    const { pool, spawners, replicas, stop } = await makePool();
    await warm(pool, spawners[0]!);
    const worker = spawners[0]!.last;
    worker.dropWhenReached = dropWhenReached;
    const running = pool.submit(sample(1), { debug: false });
    const client = new AbortController();
    const behind = settled(pool.submit(sample(2), { debug: false, signal: client.signal }));
    await worker.until(() => worker.outstanding === 2);
    client.abort();
    assert.equal(((await behind) as ApiError).code, "CLIENT_CLOSED");
    if (!dropWhenReached) await worker.until(() => worker.outstanding === 1);
    blockFor(40); // twice the 20 ms cancel grace, with the running request still running
    await new Promise((resolve) => setTimeout(resolve, 0));
    assert.deepEqual(worker.signals, [], "the running request is not the cancelled one");
    assert.equal(worker.pending?.sample, "1");
    worker.answer(10);
    assert.equal(text(await running), "10");
    await waitUntil([pool.changes], () => replicas[0]!.state === "ready" || undefined, { timeoutMs: 2000 });
    assert.equal(worker.outstanding, 0);
    assert.deepEqual(worker.signals, []);
    await stop();
  }
});

Deno.test("pipelining: a request behind whose queue wait is over is taken back: 503 QUEUE_TIMEOUT", async () => {
  const { pool, spawners, stop } = await makePool({ queueTimeoutMs: 50, predictTimeoutMs: 10_000 });
  await warm(pool, spawners[0]!);
  const worker = spawners[0]!.last;
  const running = pool.submit(sample(1), { debug: false });
  const behind = settled(pool.submit(sample(2), { debug: false }));
  await worker.until(() => worker.outstanding === 2);
  const error = (await behind) as ApiError;
  assert.equal(error.code, "QUEUE_TIMEOUT");
  assert.equal(error.status, 503);
  await worker.until(() => worker.outstanding === 1);
  worker.answer(10);
  assert.equal(text(await running), "10");
  await stop();
});

Deno.test("pipelining: not while predictions are slow, nor when turned off, nor while a replica is free", async () => {
  for (const setup of [{ slow: true }, { off: true }]) {
    const { pool, spawners, stop } = await makePool(setup.off ? { pipelining: false } : {});
    await warm(pool, spawners[0]!, setup.slow ? 15 : 0);
    const worker = spawners[0]!.last;
    const answers = [1, 2].map((i) => pool.submit(sample(i), { debug: false }));
    await worker.until(() => worker.pending?.sample === "1");
    assert.equal(worker.outstanding, 1);
    assert.equal(pool.queueLength, 1);
    worker.answer(10);
    await worker.until(() => worker.pending?.sample === "2");
    worker.answer(20);
    await Promise.all(answers);
    await stop();
  }
  const { pool, spawners, stop } = await makePool({ replicas: 2 });
  await warm(pool, spawners[0]!);
  const answers = [1, 2].map((i) => pool.submit(sample(i), { debug: false }));
  const [a, b] = [spawners[0]!.last, spawners[1]!.last];
  assert.equal(a.outstanding + b.outstanding, 2);
  assert.ok(a.outstanding === 1 && b.outstanding === 1);
  a.pending ? a.answer(0) : undefined;
  b.pending ? b.answer(0) : undefined;
  await Promise.all(answers);
  await stop();
});
