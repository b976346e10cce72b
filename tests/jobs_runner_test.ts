/**
 * The job runner in-process: a real SQLite store in a temp dir, a real
 * pool, replicas on scripted fake workers. Proves the sharing policy
 * (sync requests first, one replica of two kept free), requeue after a
 * lost worker and the poison rule, cancellation through the pool's cancel
 * path, and the store's result files and retention sweep.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ApiPool } from "../src/supervision/pool.ts";
import { waitUntil } from "../src/supervision/events.ts";
import { SqliteJobStore } from "../src/jobs/sqlite_store.ts";
import { JobService } from "../src/jobs/service.ts";
import type { JobRecord, JobRequest } from "../src/jobs/job.ts";
import type { ApiError } from "../src/errors/api_error.ts";
import { fakeReplica, FakeSpawner, recordingLogger, sample } from "./_fake_worker.ts";
import { tempDir } from "./_helpers.ts";
import { eventually } from "./_jobs.ts";

const request = (value: unknown): JobRequest => ({
  body: sample(value),
  contentType: "application/json",
  query: "",
  headers: {},
});

async function setup(replicaCount: number, maxAttempts = 3) {
  const { logger } = recordingLogger("info");
  const dir = await tempDir();
  const pool = new ApiPool({
    api: "api",
    queuePerReplica: 8,
    maxReplicas: replicaCount,
    predictTimeoutMs: 10_000,
    logger,
  });
  const spawners = Array.from({ length: replicaCount }, () => new FakeSpawner());
  const replicas = spawners.map((spawner, index) => fakeReplica(spawner, logger, { index }));
  pool.setReplicas(replicas);
  replicas.forEach((r) => r.start());
  await waitUntil([pool.changes], () => replicas.every((r) => r.state === "ready") || undefined, {
    timeoutMs: 2000,
  });
  const store = await SqliteJobStore.open({ dir: dir.path, inlineResultBytes: 64 });
  const jobs = new JobService({ store, logger, maxAttempts, tickMs: 20, leaseMs: 10_000 });
  jobs.usePools(new Map([["api", pool]]));
  const record = async (id: string): Promise<JobRecord> => (await jobs.get("api", id))!;
  return {
    pool,
    spawners,
    jobs,
    store,
    dir,
    record,
    async [Symbol.asyncDispose]() {
      // As the server stops: no new job, the replicas stop, runs cut short go back to the queue.
      const closing = jobs.close();
      await Promise.all(replicas.map((r) => r.stop()));
      await closing;
      await jobs[Symbol.asyncDispose]();
      await dir[Symbol.asyncDispose]();
    },
  };
}

Deno.test("runner, one replica: a waiting sync request goes before the next job", async () => {
  await using s = await setup(1);
  const worker = s.spawners[0]!.last;
  const ids: string[] = [];
  for (const n of [0, 1, 2]) ids.push(await s.jobs.submit("api", request({ job: n }), undefined));
  await worker.until(() => worker.pending?.sample === '{"job":0}');
  const sync = s.pool.submit(sample("sync"), { debug: false });
  assert.equal(s.pool.queueLength, 1);
  worker.answer("done 0");
  await worker.until(() => worker.pending !== undefined);
  assert.equal(worker.pending?.sample, '"sync"', "the sync request, not job 1");
  worker.answer("sync answer");
  await sync;
  await worker.until(() => worker.pending?.sample === '{"job":1}');
  worker.answer("done 1");
  await worker.until(() => worker.pending?.sample === '{"job":2}');
  worker.answer("done 2");
  await eventually("job 2 to complete", async () => (await s.record(ids[2]!)).status === "completed");
  assert.equal(new TextDecoder().decode((await s.record(ids[0]!)).result?.body), '"done 0"');
});

Deno.test("runner, two replicas: jobs leave one replica free for sync requests", async () => {
  await using s = await setup(2);
  for (const n of [0, 1, 2, 3]) await s.jobs.submit("api", request({ job: n }), undefined);
  const [a, b] = s.spawners.map((sp) => sp.last);
  await waitUntil([a!.changes, b!.changes], () => a!.pending ?? b!.pending, { timeoutMs: 2000 });
  // A sync request starts at once: a replica was free.
  const sync = s.pool.submit(sample("sync"), { debug: false });
  assert.equal(s.pool.queueLength, 0);
  assert.equal(s.pool.inFlight, 2);
  const syncWorker = a!.pending?.sample === '"sync"' ? a! : b!;
  syncWorker.answer("ok");
  await sync;
  await eventually(
    "the count of jobs",
    () => s.jobs.depth("api").inProgress + s.jobs.depth("api").inQueue === 4,
  );
  assert.equal(syncWorker.outstanding, 0, "no job took the replica the sync request freed");
});

Deno.test("runner: a job whose worker dies is requeued, then failed after --job-attempts", async () => {
  await using s = await setup(1, 2);
  const id = await s.jobs.submit("api", request({ poison: true }), undefined);
  const first = s.spawners[0]!.last;
  await first.until(() => first.pending !== undefined);
  first.exit(1);
  const second = await s.spawners[0]!.nth(2);
  await second.until(() => second.pending !== undefined);
  assert.equal((await s.record(id)).attempts, 2);
  second.exit(1);
  await eventually("the job to fail", async () => (await s.record(id)).status === "failed");
  assert.match((await s.record(id)).error ?? "", /tried 2 times/);
});

Deno.test("runner: cancelling a running job cancels it in the worker; a queued one never runs", async () => {
  await using s = await setup(1);
  const running = await s.jobs.submit("api", request({ job: "long" }), undefined);
  const queued = await s.jobs.submit("api", request({ job: "never" }), undefined);
  const worker = s.spawners[0]!.last;
  await worker.until(() => worker.pending !== undefined);
  assert.equal((await s.jobs.cancel("api", queued))?.status, "cancelled");
  assert.equal((await s.jobs.cancel("api", running))?.status, "cancelled");
  await worker.until(() => worker.cancels === 1);
  worker.cancelled();
  const after = await s.jobs.submit("api", request({ job: "after" }), undefined);
  await worker.until(() => worker.pending?.sample === '{"job":"after"}');
  worker.answer("ok");
  await eventually("the next job to complete", async () => (await s.record(after)).status === "completed");
  assert.ok(!worker.samples.includes('{"job":"never"}'));
  assert.equal((await s.record(running)).status, "cancelled", "a cancelled job stays cancelled");
});

Deno.test("sqlite store: large results go to files, read back, swept with the job", async () => {
  await using s = await setup(1);
  const worker = s.spawners[0]!.last;
  worker.autoAnswer = "x".repeat(1000);
  const id = await s.jobs.submit("api", request({}), undefined);
  await eventually("the job to complete", async () => (await s.record(id)).status === "completed");
  const files = [...Deno.readDirSync(join(s.dir.path, "results"))];
  assert.equal(files.length, 1);
  assert.equal(new TextDecoder().decode((await s.record(id)).result?.body), JSON.stringify("x".repeat(1000)));
  assert.equal(await s.store.sweep(60_000), 0, "not old enough");
  assert.equal(await s.store.sweep(-1), 1);
  assert.equal([...Deno.readDirSync(join(s.dir.path, "results"))].length, 0);
  assert.equal(await s.jobs.get("api", id), undefined);
});

Deno.test("job service: past --job-queue waiting jobs a submit is refused with 503", async () => {
  const { logger } = recordingLogger("info");
  await using dir = await tempDir();
  await using jobs = new JobService({
    store: await SqliteJobStore.open({ dir: dir.path }),
    logger,
    maxQueued: 2,
  });
  jobs.usePools(new Map()); // no replica: nothing runs
  await jobs.submit("api", request(1), undefined);
  await jobs.submit("api", request(2), undefined);
  await eventually("the count", () => jobs.depth("api").inQueue === 2);
  await assert.rejects(
    jobs.submit("api", request(3), undefined),
    (e: ApiError) => e.code === "QUEUE_FULL" && /has 2 jobs waiting \(--job-queue\)/.test(e.message),
  );
});
