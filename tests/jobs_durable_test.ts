/**
 * Durable jobs through a real server, real workers and the SQLite store on
 * disk: nothing is lost when the server is SIGKILLed, every job is
 * completed once (executions may repeat: at-least-once), a job that keeps
 * killing its worker is failed after --job-attempts, cancellation, 404s.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { post, ROOT, startServer, tempDir } from "./_helpers.ts";
import { asyncProject, eventually, executions, jobCounts, storedJobs, submitJobs } from "./_jobs.ts";

Deno.test("500 jobs, the server SIGKILLed mid-way and restarted: every job completed exactly once", async () => {
  await using scratch = await tempDir();
  const log = join(scratch.path, "executions");
  await using project = await asyncProject({ replicas: 2, executions: log });
  await using state = await tempDir("cortex-serve-jobs-state-");
  const args = [`--state-dir=${state.path}`, "--job-lease=1s"];
  const total = 500;
  let ids: string[];
  {
    await using first = await startServer(project.path, { args, replicas: 2 });
    ids = await submitJobs(`${first.url}/api`, total, { sleep: 0.005 });
    // Every 202 came after the job was committed: kill while jobs run.
    await eventually("a third of the jobs to run", async () => (await executions(log)).length >= total / 3);
    first.kill("SIGKILL");
    await first.status;
  }
  const ranBefore = (await executions(log)).length;
  assert.ok(ranBefore < total, `all ${ranBefore} jobs ran before the kill: nothing was tested`);
  {
    await using second = await startServer(project.path, { args, replicas: 2 });
    await eventually("the job queue to empty", async () => {
      const counts = await jobCounts(second.url);
      return counts.in_queue === 0 && counts.in_progress === 0;
    }, 60_000);
    const one = await (await fetch(`${second.url}/api/${ids[7]}`)).json();
    assert.equal(one.status, "completed");
    assert.deepEqual(one.result, { n: 7 });
  }
  const rows = storedJobs(state.path);
  assert.equal(rows.length, total);
  const byId = new Map(rows.map((row) => [row.id, row]));
  ids.forEach((id, n) => {
    const row = byId.get(id);
    assert.equal(row?.status, "completed", `job ${n}`);
    assert.deepEqual(JSON.parse(row.result), { n });
  });
  // At-least-once: every job ran, a job cut short by the kill may have run twice.
  const ran = await executions(log);
  assert.deepEqual(new Set(ran).size, total);
  assert.ok(ran.length - total <= 2, `${ran.length - total} jobs ran twice; at most the 1 running per kill`);
});

Deno.test("a job that kills its worker every time is failed after --job-attempts; others go on", async () => {
  await using project = await asyncProject();
  await using server = await startServer(project.path, { args: ["--job-attempts=2"] });
  const poison = await (await post(`${server.url}/api`, { n: 1, crash: true })).json();
  const good = await (await post(`${server.url}/api`, { n: 2 })).json();
  let view: Record<string, unknown> = {};
  await eventually("the poison job to fail", async () => {
    view = await (await fetch(`${server.url}/api/${poison.id}`)).json();
    return view.status === "failed";
  });
  assert.equal(view.attempts, 2);
  assert.match(String(view.error), /tried 2 times/);
  await eventually("the good job to complete", async () => {
    const g = await (await fetch(`${server.url}/api/${good.id}`)).json();
    return g.status === "completed";
  });
});

Deno.test("cancel: DELETE stops a running job, POST .../cancel a queued one; unknown ids are 404", async () => {
  await using project = await asyncProject();
  await using server = await startServer(project.path);
  const running = await (await post(`${server.url}/api`, { n: 1, sleep: 30 })).json();
  const queued = await (await post(`${server.url}/api`, { n: 2 })).json();
  await eventually("the first job to run", async () => {
    const v = await (await fetch(`${server.url}/api/${running.id}`)).json();
    return v.status === "in_progress";
  });
  const cancelled = await fetch(`${server.url}/api/${running.id}`, { method: "DELETE" });
  assert.equal(cancelled.status, 200);
  assert.equal((await cancelled.json()).status, "cancelled");
  // The worker was told to stop: the replica is free again well before 30 s.
  await server.waitFor((r) => r.msg === "request cancelled" || r.msg === "worker ready", 15_000);
  await eventually("the second job to complete", async () => {
    const v = await (await fetch(`${server.url}/api/${queued.id}`)).json();
    return v.status === "completed";
  }, 20_000);
  const again = await fetch(`${server.url}/api/${queued.id}/cancel`, { method: "POST" });
  assert.equal((await again.json()).status, "completed", "a finished job stays finished");
  const unknown: [string, string][] = [["GET", "/api/nope"], ["DELETE", "/api/nope"], [
    "POST",
    "/api/nope/cancel",
  ]];
  for (const [method, path] of unknown) {
    const response = await fetch(`${server.url}${path}`, { method });
    assert.equal(response.status, 404, `${method} ${path}`);
    assert.match((await response.json()).error, /no job "nope"/);
  }
  const bad = await fetch(`${server.url}/api?webhook=not-a-url`, { method: "POST", body: "{}" });
  assert.equal(bad.status, 400);
  assert.match((await bad.json()).error, /webhook: "not-a-url" is not an absolute URL/);
});

Deno.test("example async-reports: the sample becomes a job whose result is the summary", async () => {
  const dir = join(ROOT, "examples", "async-reports");
  await using server = await startServer(dir, { replicas: 2 });
  const sample = await Deno.readTextFile(join(dir, "sample.json"));
  const database = join(server.stateDir, "jobs", "jobs.sqlite");
  await assert.rejects(Deno.stat(database), Deno.errors.NotFound, "the store is created at the first job");
  const submitted = await post(`${server.url}/reports/summarizer`, sample);
  assert.equal(submitted.status, 202);
  const { id } = await submitted.json();
  assert.equal(submitted.headers.get("location"), `/reports/summarizer/${id}`);
  assert.ok((await Deno.stat(database)).isFile);
  let view: Record<string, unknown> = {};
  await eventually("the job to complete", async () => {
    view = await (await fetch(`${server.url}/reports/summarizer/${id}`)).json();
    return view.status === "completed";
  });
  assert.deepEqual(view.result, {
    words: 56,
    top_words: ["pump", "seal", "week", "night", "shift"],
    summary: "The night shift found the pump failure at 02:10. " +
      "The seal had worn faster than its rated life because the pump ran hot all week.",
  });
  // The job queue is seen in the metrics, the console's data and the API's description.
  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  assert.match(metrics, /^cortex_serve_jobs\{api="summarizer",status="in_queue"\} 0$/m);
  const consoleData = await (await fetch(`${server.url}/_console/data`)).json();
  assert.deepEqual(consoleData.apis[0].jobs, { in_queue: 0, in_progress: 0 });
  const described = await (await fetch(`${server.url}/reports/summarizer`)).json();
  assert.equal(described.async, true);
  assert.match(described.usage, /202 with a job id/);
});

Deno.test("--jobs off: no job routes, Prefer: respond-async is answered synchronously", async () => {
  await using project = await asyncProject({ async: false });
  await using server = await startServer(project.path, { args: ["--jobs=off"] });
  const response = await post(`${server.url}/api`, { n: 4 }, { prefer: "respond-async" });
  assert.equal(response.status, 200);
  assert.deepEqual(await response.json(), { n: 4 });
  assert.equal((await fetch(`${server.url}/api/some-id`)).status, 404);
  assert.equal((await (await fetch(`${server.url}/`)).json()).apis[0].jobs, null);
  assert.doesNotMatch(await (await fetch(`${server.url}/metrics`)).text(), /cortex_serve_jobs/);
});

Deno.test("jobs go on across a reload (SIGHUP): queued ones run on the new version", async () => {
  await using project = await asyncProject();
  await using server = await startServer(project.path);
  const before = await submitJobs(`${server.url}/api`, 6, { sleep: 0.2 });
  server.kill("SIGHUP");
  await server.waitFor((r) => String(r.msg).startsWith("reloaded"));
  const after = await submitJobs(`${server.url}/api`, 3);
  await eventually("every job to complete", async () => {
    for (const id of [...before, ...after]) {
      const view = await (await fetch(`${server.url}/api/${id}`)).json();
      if (view.status !== "completed") return false;
    }
    return true;
  });
});

Deno.test("a job running longer than --job-lease keeps its lease (renewed) and runs once", async () => {
  await using scratch = await tempDir();
  const log = join(scratch.path, "executions");
  await using project = await asyncProject({ executions: log });
  await using server = await startServer(project.path, { args: ["--job-lease=1s"] });
  const { id } = await (await post(`${server.url}/api`, { n: 1, sleep: 3 })).json();
  let view: Record<string, unknown> = {};
  await eventually("the job to complete", async () => {
    view = await (await fetch(`${server.url}/api/${id}`)).json();
    return view.status === "completed";
  });
  assert.equal(view.attempts, 1);
  assert.deepEqual(await executions(log), [1]);
  assert.ok(!server.lines.some((l) => l.includes("requeued")));
});
