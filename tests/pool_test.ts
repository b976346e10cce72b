/**
 * The pool in-process, against replicas with scripted fake workers: queue
 * order, the queue timeout apart from the predict timeout, client
 * disconnects, drain, rotation. Deterministic: the test answers each call.
 */
import assert from "node:assert/strict";
import type { ApiError } from "../src/errors/api_error.ts";
import { ApiPool, type Prediction } from "../src/supervision/pool.ts";
import { Job } from "../src/supervision/job.ts";
import { waitUntil } from "../src/supervision/events.ts";
import { blockFor, fakeReplica, FakeSpawner, recordingLogger, sample } from "./_fake_worker.ts";

interface Setup {
  readonly replicas?: number;
  readonly queue?: number;
  readonly predictTimeoutMs?: number;
  readonly queueTimeoutMs?: number;
  readonly pipelining?: boolean;
}

async function makePool(setup: Setup = {}) {
  const { logger, records } = recordingLogger();
  const spawners: FakeSpawner[] = [];
  const pool = new ApiPool({
    api: "api",
    queuePerReplica: setup.queue ?? 8,
    maxReplicas: setup.replicas ?? 1,
    predictTimeoutMs: setup.predictTimeoutMs ?? 10_000,
    ...(setup.queueTimeoutMs === undefined ? {} : { queueTimeoutMs: setup.queueTimeoutMs }),
    ...(setup.pipelining === undefined ? {} : { pipelining: setup.pipelining }),
    logger,
  });
  const replicas = Array.from({ length: setup.replicas ?? 1 }, (_, index) => {
    const spawner = new FakeSpawner();
    spawners.push(spawner);
    return fakeReplica(spawner, logger, { index });
  });
  pool.setReplicas(replicas);
  replicas.forEach((r) => r.start());
  await waitUntil([pool.changes], () => replicas.every((r) => r.state === "ready") || undefined, {
    timeoutMs: 2000,
  });
  const stop = () => Promise.all(replicas.map((r) => r.stop()));
  return { pool, replicas, spawners, records, stop };
}

const text = (p: Prediction) =>
  new TextDecoder().decode(p.answer.type === "body" ? p.answer.body : undefined);

Deno.test("pool: one request per replica at a time, the rest wait in FIFO order", async () => {
  const { pool, spawners, stop } = await makePool();
  const worker = spawners[0]!.last;
  const answers = [1, 2, 3].map((i) => pool.submit(sample(i), { debug: false }));
  assert.equal(pool.inFlight, 1);
  assert.equal(pool.queueLength, 2);
  for (const expected of ["1", "2", "3"]) {
    await worker.until(() => worker.pending?.sample === expected);
    worker.answer(Number(expected) * 10);
  }
  assert.deepEqual((await Promise.all(answers)).map(text), ["10", "20", "30"]);
  assert.ok(pool.idle);
  await stop();
});

Deno.test("pool: a full queue answers 503 at once", async () => {
  const { pool, spawners, stop } = await makePool({ queue: 2 });
  const accepted = [0, 1, 2].map((i) => pool.submit(sample(i), { debug: false }));
  await assert.rejects(pool.submit(sample(3), { debug: false }), (e: ApiError) => e.code === "QUEUE_FULL");
  const worker = spawners[0]!.last;
  for (let i = 0; i < 3; i++) {
    await worker.until(() => worker.pending !== undefined);
    worker.answer(i);
  }
  await Promise.all(accepted);
  await stop();
});

Deno.test("pool: waiting past --queue-timeout is 503 with Retry-After and never costs the worker", async () => {
  // Overload: predict takes longer than the queue timeout; 6 requests on one replica.
  const { pool, spawners, stop } = await makePool({ queueTimeoutMs: 40, predictTimeoutMs: 10_000 });
  const worker = spawners[0]!.last;
  const results = Array.from(
    { length: 6 },
    (_, i) => pool.submit(sample(i), { debug: false }).then(text, (e: ApiError) => e),
  );
  const late = await results[5]!;
  assert.ok(typeof late !== "string");
  assert.equal(late.code, "QUEUE_TIMEOUT");
  assert.equal(late.status, 503);
  assert.equal(late.retryAfter, 1);
  assert.match(late.message, /waited 0.04 s \(--queue-timeout\) without a free replica/);
  worker.answer("first");
  assert.equal(await results[0], '"first"');
  for (const result of results.slice(1)) assert.equal((await result as ApiError).code, "QUEUE_TIMEOUT");
  assert.deepEqual(worker.samples, ["0"], "no timed-out job reached the worker");
  assert.deepEqual(worker.signals, []);
  assert.equal(spawners[0]!.workers.length, 1);
  await stop();
});

Deno.test("pool: a job whose wait is over is not dispatched, even when the replica frees up before the timer runs", async () => {
  const { pool, spawners, stop } = await makePool({ queueTimeoutMs: 20 });
  const worker = spawners[0]!.last;
  const first = pool.submit(sample("first"), { debug: false });
  const second = pool.submit(sample("second"), { debug: false }).catch((e: ApiError) => e);
  // Hold the event loop past the second job's wait, then free the replica in
  // the same turn: no timer has run, the dispatch itself must refuse it.
  blockFor(40);
  worker.answer("done");
  await first;
  assert.equal(((await second) as ApiError).code, "QUEUE_TIMEOUT");
  assert.deepEqual(worker.samples, ['"first"']);
  assert.deepEqual(worker.signals, []);
  await stop();
});

Deno.test("pool: --predict-timeout counts from dispatch, not from arrival", async () => {
  const { pool, spawners, stop } = await makePool({ predictTimeoutMs: 150, queueTimeoutMs: 5000 });
  const worker = spawners[0]!.last;
  const first = pool.submit(sample(1), { debug: false });
  const second = pool.submit(sample(2), { debug: false });
  // Each runs 100 ms: the second waited 100 ms and ran 100 ms, 200 ms in all.
  for (const n of [1, 2]) {
    await worker.until(() => worker.pending?.sample === String(n));
    await new Promise((resolve) => setTimeout(resolve, 100));
    worker.answer(n);
  }
  assert.deepEqual([text(await first), text(await second)], ["1", "2"]);
  assert.ok((await second).queueMs >= 90);
  assert.deepEqual(worker.signals, []);
  await stop();
});

Deno.test("pool: predict past --predict-timeout is 504 and the replica restarts; queued work waits for it", async () => {
  const { pool, spawners, stop } = await makePool({ predictTimeoutMs: 30, queueTimeoutMs: 5000 });
  const first = pool.submit(sample(1), { debug: false }).catch((e: ApiError) => e);
  const second = pool.submit(sample(2), { debug: false });
  assert.equal(((await first) as ApiError).code, "PREDICT_TIMEOUT");
  const replacement = await spawners[0]!.nth(2);
  await replacement.until(() => replacement.pending !== undefined);
  replacement.answer("after restart");
  assert.equal(text(await second), '"after restart"');
  await stop();
});

Deno.test("pool: a client that leaves while queued is dropped before it reaches the worker: 499, as when running", async () => {
  const { pool, spawners, records, stop } = await makePool();
  const worker = spawners[0]!.last;
  const first = pool.submit(sample(1), { debug: false });
  const client = new AbortController();
  const gone = pool.submit(sample(2), { debug: false, signal: client.signal }).catch((e: ApiError) => e);
  client.abort();
  const error = (await gone) as ApiError;
  assert.equal(error.code, "CLIENT_CLOSED");
  assert.equal(error.status, 499);
  assert.equal(pool.queueLength, 0);
  worker.answer(1);
  await first;
  assert.deepEqual(worker.samples, ["1"]);
  assert.ok(records.some((r) => r.msg === "client went away while queued"));
  await stop();
});

Deno.test("drain wakes when the last queued job leaves by queue timeout or disconnect", async () => {
  for (const leave of ["timeout", "disconnect"] as const) {
    const { pool, spawners, stop } = await makePool({ queueTimeoutMs: leave === "timeout" ? 50 : 60_000 });
    // The only replica crashes: the queued job waits for its restart, which never comes.
    const spawner = spawners[0]!;
    spawner.scripts.splice(0, spawner.scripts.length, "pending");
    const client = new AbortController();
    const running = pool.submit(sample(1), { debug: false }).catch((e: ApiError) => e);
    const queued = pool.submit(sample(2), { debug: false, signal: client.signal }).catch((e: ApiError) => e);
    spawner.last.exit(3);
    assert.equal(((await running) as ApiError).code, "WORKER_DIED");
    assert.equal(pool.queueLength, 1);
    const started = performance.now();
    const drained = pool.drain(10_000);
    if (leave === "disconnect") client.abort();
    assert.equal(await drained, true);
    assert.ok(performance.now() - started < 2000, `drain took ${performance.now() - started} ms`);
    assert.ok(["QUEUE_TIMEOUT", "CLIENT_CLOSED"].includes(((await queued) as ApiError).code));
    await stop();
  }
});

Deno.test("drain: waits for running and queued work, refuses new work, cuts off at its timeout", async () => {
  const { pool, spawners, stop } = await makePool();
  const worker = spawners[0]!.last;
  const running = pool.submit(sample(1), { debug: false });
  const queued = pool.submit(sample(2), { debug: false });
  const drained = pool.drain(5000);
  await assert.rejects(pool.submit(sample(3), { debug: false }), (e: ApiError) => e.code === "SHUTTING_DOWN");
  worker.answer(1);
  await worker.until(() => worker.pending?.sample === "2");
  worker.answer(2);
  assert.equal(await drained, true);
  await Promise.all([running, queued]);

  const second = await makePool();
  const stuck = second.pool.submit(sample(1), { debug: false });
  const cut = second.pool.submit(sample(2), { debug: false }).catch((e: ApiError) => e);
  assert.equal(await second.pool.drain(30), false);
  assert.equal(((await cut) as ApiError).code, "SHUTTING_DOWN");
  second.spawners[0]!.last.answer(1);
  await stuck;
  await Promise.all([stop(), second.stop()]);
});

Deno.test("pool: work rotates over ready replicas; a busy one is skipped", async () => {
  const { pool, spawners, stop } = await makePool({ replicas: 3 });
  const workers = spawners.map((s) => s.last);
  const answers = [0, 1, 2].map((i) => pool.submit(sample(i), { debug: false }));
  assert.deepEqual(workers.map((w) => w.pending?.sample), ["0", "1", "2"]);
  workers[1]!.answer("b");
  const fourth = pool.submit(sample(3), { debug: false });
  await workers[1]!.until(() => workers[1]!.pending?.sample === "3");
  assert.equal(workers[0]!.pending?.sample, "0");
  workers[0]!.answer("a");
  workers[2]!.answer("c");
  workers[1]!.answer("d");
  assert.deepEqual((await Promise.all([...answers, fourth])).map(text), ['"a"', '"b"', '"c"', '"d"']);
  await stop();
});

Deno.test("pool: not ready while no replica has started; 503 with the cause when init failed", async () => {
  const { logger } = recordingLogger();
  const pool = new ApiPool({
    api: "api",
    queuePerReplica: 1,
    maxReplicas: 1,
    predictTimeoutMs: 1000,
    logger,
  });
  const spawner = new FakeSpawner({ fail: "ModuleNotFoundError: No module named 'torch'" });
  const replica = fakeReplica(spawner, logger, {
    backoff: { initialMs: 60_000, maxMs: 60_000, resetAfterMs: 60_000 },
  });
  pool.setReplicas([replica]);
  await assert.rejects(pool.submit(sample(1), { debug: false }), /Api api is not ready \(starting\)/);
  replica.start();
  await waitUntil([pool.changes], () => replica.state === "init_failed" || undefined, { timeoutMs: 2000 });
  await assert.rejects(
    pool.submit(sample(1), { debug: false }),
    (e: ApiError) =>
      e.code === "NOT_READY" && /init failed: init failed: ModuleNotFoundError/.test(e.message),
  );
  await replica.stop();
});

Deno.test("pool: a client that leaves while its request runs cancels it; the replica takes the next one", async () => {
  const { pool, spawners, stop } = await makePool();
  const worker = spawners[0]!.last;
  const client = new AbortController();
  const gone = pool.submit(sample(1), { debug: false, signal: client.signal }).catch((e: ApiError) => e);
  const next = pool.submit(sample(2), { debug: false });
  await worker.until(() => worker.pending?.sample === "1");
  client.abort();
  assert.equal(((await gone) as ApiError).code, "CLIENT_CLOSED");
  assert.equal(worker.cancels, 1);
  assert.equal(pool.inFlight, 1, "the replica is busy until the worker stops the request");
  worker.cancelled();
  await worker.until(() => worker.pending?.sample === "2");
  worker.answer(2);
  assert.equal(text(await next), "2");
  assert.equal(spawners[0]!.workers.length, 1);
  await stop();
});

/** One quick prediction, so the pool knows its predictions are short (pipelining turns on). */
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

Deno.test("job: one lifecycle state; it leaves the queue once, and only a sent job comes back", () => {
  const settled: unknown[] = [];
  const make = () =>
    new Job(
      sample(1),
      { debug: false },
      100,
      (p) => settled.push(p),
      (e) => settled.push(e),
    );
  const dropped = make();
  assert.equal(dropped.state, "queued");
  assert.ok(Math.abs(dropped.deadlineAt - dropped.arrived - 100) < 1e-6, "its queue wait");
  assert.throws(() => dropped.returned(), /Job is queued, not sent/);
  assert.equal(dropped.clientGone(), true, "a queued job is the pool's to drop");
  dropped.cancelled = true; // what the queue does when it drops it
  assert.equal(dropped.state, "answered");
  assert.equal(dropped.cancelled, true);
  dropped.answer(new Error("gone"));
  assert.equal(settled.length, 1);
  assert.throws(() => dropped.send({} as never), /Job is answered, not queued/);

  const job = make();
  let cancels = 0;
  const run = { started: false, cancel: () => cancels++ } as never;
  job.send(run);
  assert.equal(job.state, "sent");
  assert.equal(job.started, false, "the replica says when it started");
  assert.equal(job.clientGone(), false, "a sent job is cancelled in its replica");
  assert.equal(cancels, 1);
  job.returned();
  assert.equal(job.state, "queued");
  job.send(run);
  job.begin(1000, 50);
  assert.equal(job.deadlineAt, 1050);
  job.finish();
  assert.equal(job.state, "finished");
  assert.equal(job.cancelled, false);
});
