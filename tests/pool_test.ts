/**
 * The pool in-process, against replicas with scripted fake workers: queue
 * order, the queue timeout apart from the predict timeout, client
 * disconnects, drain, rotation, and a job's lifecycle. Deterministic: the
 * test answers each call. Pipelining: pool_pipelining_test.ts.
 */
import assert from "node:assert/strict";
import type { ApiError } from "../src/errors/api_error.ts";
import { ApiPool } from "../src/supervision/pool.ts";
import { Job } from "../src/supervision/job.ts";
import { waitUntil } from "../src/supervision/events.ts";
import { blockFor, fakeReplica, FakeSpawner, recordingLogger, sample } from "./_fake_worker.ts";
import { makePool, text } from "./_pool.ts";

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

Deno.test("pool: a client given as its request is read only once it has waited a whole tick, then dropped at its abort", async () => {
  // Without pipelining the second request waits in the queue, not in the worker.
  const { pool, spawners, stop } = await makePool({ pipelining: false });
  const worker = spawners[0]!.last;
  let reads = 0;
  let readAt = 0;
  const read = Promise.withResolvers<void>();
  const controller = new AbortController();
  const client = {
    get signal() {
      reads++;
      readAt = performance.now();
      read.resolve();
      return controller.signal;
    },
  };
  // Answered before any tick: its signal is never made.
  const quick = pool.submit(sample(1), { debug: false, client });
  await worker.until(() => worker.pending?.sample === "1");
  worker.answer(1);
  await quick;
  assert.equal(reads, 0);
  // Queued behind a running request: the first tick after it waited a whole tick (100 ms here) starts
  // listening, not the first tick after it arrived (under load that one finds every request in flight).
  const running = pool.submit(sample(2), { debug: false });
  // Not a wait for an event: it sets the phase, so the next tick comes 50 ms after the request arrives.
  await new Promise((resolve) => setTimeout(resolve, 50));
  const submitted = performance.now();
  const queued = pool.submit(sample(3), { debug: false, client }).catch((e: ApiError) => e);
  const late = setTimeout(() => read.reject(new Error("no tick read the signal within 2 s")), 2000);
  await read.promise.finally(() => clearTimeout(late));
  assert.equal(reads, 1);
  assert.ok(readAt - submitted >= 100, `read ${(readAt - submitted).toFixed(1)} ms after it arrived`);
  controller.abort();
  const error = (await queued) as ApiError;
  assert.equal(error.code, "CLIENT_CLOSED");
  assert.equal(pool.queueLength, 0);
  worker.answer(2);
  await running;
  assert.deepEqual(worker.samples, ["1", "2"]);
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
