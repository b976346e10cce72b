/**
 * The shared job store on a real `redis-server`: the store's rules
 * (lease, renew, finish once, cancel, reclaim of a dead runner's jobs
 * with XAUTOCLAIM, poison jobs), then two real servers splitting one
 * backlog and finishing it when one of them is SIGKILLed.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { RedisJobStore } from "../src/jobs/redis_store.ts";
import type { NewJob } from "../src/jobs/job.ts";
import { startServer, tempDir } from "./_helpers.ts";
import { asyncProject, eventually, executions, submitJobs } from "./_jobs.ts";
import { startRedis } from "./_redis.ts";

const job = (id: string, n: number): NewJob => ({
  id,
  api: "api",
  request: {
    body: new TextEncoder().encode(`{"n": ${n}}`),
    contentType: "application/json",
    query: "",
    headers: {},
  },
  webhook: { url: "http://127.0.0.1:9/hook", events: ["completed"] },
  createdAt: Date.now(),
});
const result = {
  body: new TextEncoder().encode('{"ok": true}'),
  contentType: "application/json",
  status: 200,
};

Deno.test("redis store: lease, renew, complete once, cancel, reclaim and poison", async () => {
  await using redis = await startRedis();
  await using store = await RedisJobStore.connect(redis.url, { leaseMs: 200, ttlMs: 60_000 });
  await store.submit(job("a", 1));
  await store.submit(job("b", 2));
  await store.submit(job("c", 3));
  assert.deepEqual(await store.depth(), new Map([["api", { inQueue: 3, inProgress: 0 }]]));

  const a = await store.lease("api", "one", 200);
  assert.equal(a?.id, "a");
  assert.equal(new TextDecoder().decode(a.request.body), '{"n": 1}');
  assert.deepEqual(await store.renew(["a"], "one", 200), []);
  const done = await store.finish("a", "one", { kind: "completed", result }, 3);
  assert.equal(done?.status, "completed");
  assert.deepEqual(done.result?.body, result.body);
  assert.equal(await store.finish("a", "one", { kind: "completed", result }, 3), undefined, "once");
  assert.deepEqual((await store.pendingWebhooks(10)).map((r) => r.id), ["a"]);
  await store.webhookDone("a");

  // b is cancelled while queued: skipped by the next lease.
  assert.equal((await store.cancel("api", "b"))?.status, "cancelled");
  assert.equal(await store.get("other", "b"), undefined, "ids are per API");
  const c = await store.lease("api", "one", 200);
  assert.equal(c?.id, "c");
  // Its runner dies: after the lease the reaper requeues it; the old runner's end is refused.
  await eventually("c's lease to expire", async () => (await store.requeueExpired(2)) === 1, 5000);
  assert.deepEqual(await store.renew(["c"], "one", 200), ["c"]);
  assert.equal(await store.finish("c", "one", { kind: "completed", result }, 2), undefined);
  const again = await store.lease("api", "two", 200);
  assert.equal(again?.attempts, 2);
  // Dies again: out of tries, failed.
  await eventually("c's second lease to expire", async () => (await store.requeueExpired(2)) === 1, 5000);
  const failed = await store.get("api", "c");
  assert.equal(failed?.status, "failed");
  assert.match(failed.error ?? "", /stopped 2 times/);
  assert.equal(await store.lease("api", "two", 200), undefined);

  // Cancelled while it runs (from another server): its runner's next renew reports the lease lost.
  await store.submit(job("d", 4));
  assert.equal((await store.lease("api", "two", 200))?.id, "d");
  assert.equal((await store.cancel("api", "d"))?.status, "cancelled");
  assert.deepEqual(await store.renew(["d"], "two", 200), ["d"]);
  assert.equal(await store.finish("d", "two", { kind: "completed", result }, 2), undefined);
  assert.equal((await store.get("api", "d"))?.status, "cancelled");
});

Deno.test("two servers on one Redis split a backlog and finish it when one is SIGKILLed", async () => {
  await using redis = await startRedis();
  await using scratch = await tempDir();
  const log = join(scratch.path, "executions");
  await using project = await asyncProject({ executions: log });
  const args = [`--jobs=${redis.url}`, "--job-lease=1s"];
  await using a = await startServer(project.path, { args });
  await using b = await startServer(project.path, { args });
  const total = 200;
  const ids = await submitJobs(`${a.url}/api`, total, { sleep: 0.01 });
  const finishedBy = (lines: string[]) => lines.filter((l) => l.includes('"job finished"')).length;
  await eventually("both servers to run jobs", () => finishedBy(a.lines) >= 10 && finishedBy(b.lines) >= 10);
  const left = (await (await fetch(`${b.url}/`)).json()).apis[0].jobs.in_queue;
  a.kill("SIGKILL");
  await a.status;
  await eventually("every job to complete", async () => {
    for (const id of [ids[0]!, ids[total - 1]!]) {
      const view = await (await fetch(`${b.url}/api/${id}`)).json();
      if (view.status !== "completed") return false;
    }
    return (await (await fetch(`${b.url}/`)).json()).apis[0].jobs.in_queue === 0;
  }, 60_000);
  await eventually("no job in progress", async () => {
    const jobs = (await (await fetch(`${b.url}/`)).json()).apis[0].jobs;
    return jobs.in_queue === 0 && jobs.in_progress === 0;
  }, 20_000);
  for (const [n, id] of ids.entries()) {
    const view = await (await fetch(`${b.url}/api/${id}`)).json();
    assert.equal(view.status, "completed", `job ${n}`);
    assert.deepEqual(view.result, { n });
  }
  assert.equal(new Set(await executions(log)).size, total);
  assert.ok(left > 0, "jobs were still queued when the first server was killed");
});
