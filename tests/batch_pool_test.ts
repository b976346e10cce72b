/**
 * Server-side batching in the pool, in-process, against replicas with
 * scripted fake workers: when batches leave, which requests they hold, how
 * each request gets its own answer, and how queue limits, timeouts and
 * failures apply. The test answers every call.
 */
import assert from "node:assert/strict";
import { ApiError } from "../src/errors/api_error.ts";
import { ApiPool, type Prediction } from "../src/supervision/pool.ts";
import { waitUntil } from "../src/supervision/events.ts";
import { fakeReplica, FakeSpawner, type FakeWorker, recordingLogger, sample } from "./_fake_worker.ts";

interface Setup {
  readonly maxBatchSize: number;
  readonly batchIntervalMs: number;
  readonly replicas?: number;
  readonly queue?: number;
  readonly predictTimeoutMs?: number;
  readonly queueTimeoutMs?: number;
}

async function makePool(setup: Setup) {
  const { logger } = recordingLogger();
  const spawners: FakeSpawner[] = [];
  const pool = new ApiPool({
    api: "api",
    queuePerReplica: setup.queue ?? 64,
    maxReplicas: setup.replicas ?? 1,
    predictTimeoutMs: setup.predictTimeoutMs ?? 10_000,
    ...(setup.queueTimeoutMs === undefined ? {} : { queueTimeoutMs: setup.queueTimeoutMs }),
    batching: { maxBatchSize: setup.maxBatchSize, batchIntervalMs: setup.batchIntervalMs },
    logger,
  });
  const sizes: number[] = [];
  pool.addBatchListener((size) => sizes.push(size));
  const replicas = Array.from({ length: setup.replicas ?? 1 }, (_, index) => {
    const spawner = new FakeSpawner();
    spawners.push(spawner);
    return fakeReplica(spawner, logger, { index, cancelGraceMs: 50 });
  });
  pool.setReplicas(replicas);
  replicas.forEach((r) => r.start());
  await waitUntil([pool.changes], () => replicas.every((r) => r.state === "ready") || undefined, {
    timeoutMs: 2000,
  });
  const workers = () => spawners.map((s) => s.last);
  /** Submits requests whose samples are `ids`; each settles to its body text or its ApiError. */
  const submit = (...ids: number[]) =>
    ids.map((id) =>
      pool.submit(sample(id), { debug: false }).then(
        (p: Prediction) => text(p),
        (e: ApiError) => e,
      )
    );
  const stop = () => Promise.all(replicas.map((r) => r.stop()));
  return { pool, replicas, workers, sizes, submit, stop };
}

/** A prediction's body as text. */
function text(p: Prediction): string {
  if (p.answer.type !== "body") throw new Error("a stream, not a body");
  return new TextDecoder().decode(p.answer.body);
}

/** Waits until `worker` has a pending batch; returns its samples as numbers. */
async function batchOf(worker: FakeWorker, timeoutMs = 2000): Promise<number[]> {
  await worker.until(() => worker.pendingBatch !== undefined, timeoutMs);
  return worker.pendingBatch!.samples.map(Number);
}

/** Answers `worker`'s pending batch with each sample times ten. */
function answerTimesTen(worker: FakeWorker, failed: Record<number, string> = {}): void {
  worker.answerBatch(worker.pendingBatch!.samples.map((s) => Number(s) * 10), failed);
}

Deno.test("batching pool: a full batch leaves at once; each request gets its own answer", async () => {
  const { workers, sizes, submit, stop } = await makePool({ maxBatchSize: 3, batchIntervalMs: 60_000 });
  const answers = submit(1, 2, 3, 4);
  const [worker] = workers();
  assert.deepEqual(await batchOf(worker!), [1, 2, 3]);
  answerTimesTen(worker!);
  assert.deepEqual(await Promise.all(answers.slice(0, 3)), ["10", "20", "30"]);
  assert.deepEqual(sizes, [3]);
  assert.equal(worker!.batches.length, 1, "4 waits for company: its interval is a minute");
  assert.equal(worker!.samples.length, 0, "never a single predict call");
  await stop();
  assert.ok((await answers[3]) instanceof ApiError, "stopped before its batch was due");
});

Deno.test("batching pool: a partial batch leaves when its first request's interval has passed", async () => {
  const { workers, submit, stop } = await makePool({ maxBatchSize: 8, batchIntervalMs: 40 });
  const started = performance.now();
  const answers = submit(1, 2);
  const [worker] = workers();
  assert.equal(worker!.pendingBatch, undefined);
  assert.deepEqual(await batchOf(worker!), [1, 2]);
  const waited = performance.now() - started;
  assert.ok(waited >= 39, `left after ${waited} ms`);
  answerTimesTen(worker!);
  assert.deepEqual(await Promise.all(answers), ["10", "20"]);
  await stop();
});

Deno.test("batching pool: requests that arrive while the replica is busy leave together when it is free", async () => {
  const { workers, sizes, submit, stop } = await makePool({ maxBatchSize: 4, batchIntervalMs: 20 });
  const first = submit(1);
  const [worker] = workers();
  assert.deepEqual(await batchOf(worker!), [1]);
  const later = submit(2, 3, 4, 5, 6);
  answerTimesTen(worker!);
  assert.deepEqual(await Promise.all(first), ["10"]);
  assert.deepEqual(await batchOf(worker!), [2, 3, 4, 5], "a full batch at once");
  answerTimesTen(worker!);
  assert.deepEqual(await batchOf(worker!), [6], "the rest waited past its interval: leaves at once");
  answerTimesTen(worker!);
  assert.deepEqual(await Promise.all(later), ["20", "30", "40", "50", "60"]);
  assert.deepEqual(sizes, [1, 4, 1]);
  await stop();
});

Deno.test("batching pool: with several replicas each free replica takes the next batch", async () => {
  const { workers, submit, stop } = await makePool({ maxBatchSize: 2, batchIntervalMs: 60_000, replicas: 3 });
  const answers = submit(1, 2, 3, 4, 5, 6, 7);
  const [a, b, c] = workers();
  assert.deepEqual(await batchOf(a!), [1, 2]);
  assert.deepEqual(await batchOf(b!), [3, 4]);
  assert.deepEqual(await batchOf(c!), [5, 6]);
  answerTimesTen(b!);
  assert.deepEqual(await Promise.all(answers.slice(2, 4)), ["30", "40"]);
  assert.equal(b!.batches.length, 1, "7 alone is not due for a minute");
  answerTimesTen(a!);
  answerTimesTen(c!);
  const more = submit(8);
  assert.deepEqual(await batchOf(b!), [7, 8], "the next free replica takes the next batch");
  answerTimesTen(b!);
  assert.deepEqual(await Promise.all([...answers, ...more]), [
    "10",
    "20",
    "30",
    "40",
    "50",
    "60",
    "70",
    "80",
  ]);
  await stop();
});

Deno.test("batching pool: one failed item fails its request only; a worker crash fails the whole batch", async () => {
  const { workers, submit, stop } = await makePool({ maxBatchSize: 3, batchIntervalMs: 60_000 });
  const answers = submit(1, 2, 3);
  const [worker] = workers();
  await batchOf(worker!);
  answerTimesTen(worker!, { 1: "cannot serialize the prediction: object" });
  const [one, two, three] = await Promise.all(answers);
  assert.deepEqual([one, three], ["10", "30"]);
  assert.ok(two instanceof ApiError && two.code === "PREDICT_FAILED", String(two));

  const crashed = submit(4, 5, 6);
  await batchOf(worker!);
  worker!.exit(3);
  for (const answer of await Promise.all(crashed)) {
    assert.ok(answer instanceof ApiError && answer.code === "WORKER_DIED", String(answer));
    assert.match(answer.message, /exited with code 3/);
  }
  await stop();
});

Deno.test("batching pool: --predict-timeout bounds the batch's call: every request gets 504", async () => {
  const { workers, submit, stop } = await makePool({
    maxBatchSize: 2,
    batchIntervalMs: 60_000,
    predictTimeoutMs: 50,
  });
  const answers = submit(1, 2);
  const [worker] = workers();
  await batchOf(worker!);
  for (const answer of await Promise.all(answers)) {
    assert.ok(answer instanceof ApiError && answer.code === "PREDICT_TIMEOUT", String(answer));
  }
  assert.equal(worker!.cancels, 1, "the batch is cancelled in the worker");
  // The fake never answers the cancel: past --cancel-grace the worker is stopped.
  await worker!.until(() => worker!.signals.includes("SIGTERM"));
  await stop();
});

Deno.test("batching pool: --queue-timeout applies to each waiting request; it never joins a batch", async () => {
  const { workers, submit, stop } = await makePool({
    maxBatchSize: 2,
    batchIntervalMs: 60_000,
    queueTimeoutMs: 50,
  });
  const running = submit(1, 2);
  const [worker] = workers();
  await batchOf(worker!);
  const waiting = submit(3, 4, 5);
  for (const answer of await Promise.all(waiting)) {
    assert.ok(answer instanceof ApiError && answer.code === "QUEUE_TIMEOUT", String(answer));
  }
  answerTimesTen(worker!);
  assert.deepEqual(await Promise.all(running), ["10", "20"]);
  assert.deepEqual(worker!.batches, [["1", "2"]]);
  await stop();
});

Deno.test("batching pool: the queue limit applies per request; a client gone while queued never joins", async () => {
  const { pool, workers, submit, stop } = await makePool({
    maxBatchSize: 2,
    batchIntervalMs: 60_000,
    queue: 3,
  });
  const running = submit(1, 2);
  const [worker] = workers();
  await batchOf(worker!);
  const gone = new AbortController();
  const leaving = pool.submit(sample(3), { debug: false, signal: gone.signal }).catch((e: ApiError) => e);
  const queued = submit(4, 5);
  const full = await submit(6)[0];
  assert.ok(full instanceof ApiError && full.code === "QUEUE_FULL", String(full));
  gone.abort();
  assert.ok((await leaving) instanceof ApiError);
  answerTimesTen(worker!);
  assert.deepEqual(await batchOf(worker!), [4, 5]);
  answerTimesTen(worker!);
  assert.deepEqual(await Promise.all([...running, ...queued]), ["10", "20", "40", "50"]);
  await stop();
});

Deno.test("batching pool: a running batch keeps serving the requests whose clients stayed", async () => {
  const { pool, workers, stop } = await makePool({ maxBatchSize: 2, batchIntervalMs: 60_000 });
  const gone = new AbortController();
  const leaving = pool.submit(sample(1), { debug: false, signal: gone.signal });
  const staying = pool.submit(sample(2), { debug: false });
  const [worker] = workers();
  await batchOf(worker!);
  gone.abort();
  answerTimesTen(worker!);
  assert.equal(text(await staying), "20");
  assert.equal(text(await leaving), "10", "answered, if nobody reads it");
  assert.equal(worker!.cancels, 0, "the batch was not cancelled");
  await stop();
});

Deno.test("batching pool: a running batch is cancelled once every one of its clients has gone", async () => {
  const { pool, workers, stop } = await makePool({ maxBatchSize: 2, batchIntervalMs: 60_000 });
  const clients = [new AbortController(), new AbortController()];
  const answers = clients.map((client, i) =>
    pool.submit(sample(i), { debug: false, signal: client.signal }).catch((e: ApiError) => e)
  );
  const [worker] = workers();
  await batchOf(worker!);
  clients[0]!.abort();
  assert.equal(worker!.cancels, 0);
  clients[1]!.abort();
  await worker!.until(() => worker!.cancels === 1);
  for (const answer of await Promise.all(answers)) {
    assert.ok(answer instanceof ApiError && answer.code === "CLIENT_CLOSED", String(answer));
  }
  worker!.answerBatch([0, 0], { 0: "cancelled", 1: "cancelled" }, "cancelled");
  await stop();
});
