/**
 * Sync requests beside a job backlog, through a real server: jobs take a
 * replica only when no sync request waits and leave one of two free, so
 * sync latency with a backlog stays within 1.2× of without (p50 and p90 of
 * a bounded number of sequential requests).
 */
import assert from "node:assert/strict";
import { post, startServer } from "./_helpers.ts";
import { asyncProject, jobCounts } from "./_jobs.ts";

const SYNC_REQUESTS = 100;

/** p50 and p90 (ms) of `SYNC_REQUESTS` sequential sync predictions of 40 ms. */
async function measure(url: string, count = SYNC_REQUESTS): Promise<{ p50: number; p90: number }> {
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    const response = await post(url, { n: i, sleep: 0.04 });
    assert.equal(response.status, 200);
    await response.body?.cancel();
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  return { p50: times[Math.floor(count * 0.5)]!, p90: times[Math.floor(count * 0.9)]! };
}

Deno.test("sync latency under a job backlog stays within 1.2x of no backlog", async () => {
  await using project = await asyncProject({ replicas: 2, async: false });
  await using server = await startServer(project.path, { replicas: 2 });
  const url = `${server.url}/api`;
  await measure(url, 10); // warm up
  const quiet = await measure(url);
  // A backlog of 100 jobs of 100 ms on one replica (10 s): longer than the measurement below (~5 s).
  for (let n = 0; n < 100; n++) {
    const response = await post(url, { n, sleep: 0.1 }, { prefer: "respond-async" });
    assert.equal(response.status, 202);
    await response.body?.cancel();
  }
  const busy = await measure(url);
  const counts = await jobCounts(server.url);
  assert.ok(counts.in_queue > 0, "the backlog lasted the whole measurement");
  assert.ok(counts.in_queue < 100, "jobs ran during the measurement");
  // At most one: the other replica is kept for sync requests (none for a moment between two jobs).
  assert.ok(counts.in_progress <= 1, `${counts.in_progress} jobs running on 2 replicas`);
  const detail = `quiet p50 ${quiet.p50.toFixed(1)} p90 ${quiet.p90.toFixed(1)}; ` +
    `backlog p50 ${busy.p50.toFixed(1)} p90 ${busy.p90.toFixed(1)} ms`;
  assert.ok(busy.p50 <= quiet.p50 * 1.2, detail);
  assert.ok(busy.p90 <= quiet.p90 * 1.2, detail);
});
