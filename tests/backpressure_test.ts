/**
 * Backpressure through a real server: waiting for a replica is bounded by
 * --queue-timeout and never costs a worker, and a client that leaves while
 * queued costs nothing.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { makeProject, post, startServer } from "./_helpers.ts";

/** predict records each sample's `id` in a file next to the staged project, then sleeps. */
const RECORDING = `import os, time
LOG = os.path.join(os.environ["CORTEX_PROJECT_DIR"], "..", "ran.log")

def predict(sample, metadata):
    with open(LOG, "a") as f:
        f.write(sample["id"] + "\\n")
    print("running", sample["id"], flush=True)
    time.sleep(sample.get("sleep", 0))
    return sample["id"]
`;

async function ran(stateDir: string): Promise<string[]> {
  const ids: string[] = [];
  for await (const entry of Deno.readDir(join(stateDir, "projects"))) {
    const text = await Deno.readTextFile(join(stateDir, "projects", entry.name, "ran.log")).catch(() => "");
    ids.push(...text.split("\n").filter(Boolean));
  }
  return ids;
}

Deno.test("overload: waiting past --queue-timeout is 503 with Retry-After; no worker is restarted", async () => {
  // predict 0.2 s, --predict-timeout 500ms (so --queue-timeout 500ms), 6 requests at once on one
  // replica: the third starts at 0.4 s and runs past 0.5 s from its arrival, the rest wait too long.
  await using project = await makeProject({ "inference.py": RECORDING });
  await using server = await startServer(project.path, { args: ["--predict-timeout=500ms"] });
  const api = `${server.url}/test/api`;
  const answers = await Promise.all(
    Array.from({ length: 6 }, (_, i) => post(api, { id: `r${i}`, sleep: 0.2 })),
  );
  const statuses = answers.map((r) => r.status);
  const bodies = await Promise.all(answers.map((r) => r.json()));
  assert.ok(statuses.filter((s) => s === 200).length >= 2, JSON.stringify(statuses));
  assert.ok(statuses.every((s) => s === 200 || s === 503), JSON.stringify(bodies));
  for (const [i, res] of answers.entries()) {
    if (res.status !== 503) continue;
    assert.equal(res.headers.get("retry-after"), "1");
    assert.match(bodies[i].error, /waited 0.5 s \(--queue-timeout\) without a free replica/);
  }
  const served = bodies.filter((_, i) => statuses[i] === 200);
  assert.deepEqual(await ran(server.stateDir), served, "only the answered requests reached predict");
  assert.ok(!server.lines.some((l) => l.includes("worker stopped; restarting")), "a worker was restarted");
  // Summarised like every other refusal, not one request line each.
  const summary = await server.waitFor((r) => r.msg === "requests rejected" && r.reason === "queue timeout");
  const refused = statuses.filter((s) => s === 503).length;
  assert.ok(Number(summary.count) >= 1 && Number(summary.count) <= refused, JSON.stringify(summary));
  assert.equal(summary.status, 503);
  const requestLines = server.lines.filter((l) => l.includes('"msg":"request"'));
  assert.ok(!requestLines.some((l) => l.includes('"status":503')), requestLines.join("\n"));
});

Deno.test("--predict-timeout bounds predict only: 504, predict is cancelled; --queue-timeout answers the waiting one", async () => {
  await using project = await makeProject({ "inference.py": RECORDING });
  await using server = await startServer(project.path, {
    args: ["--predict-timeout=500ms", "--queue-timeout=200ms"],
  });
  const api = `${server.url}/test/api`;
  const running = post(api, { id: "slow", sleep: 2 });
  await server.waitFor((r) => r.msg === "running slow");
  const started = performance.now();
  const queued = await post(api, { id: "queued" });
  const waited = performance.now() - started;
  assert.equal(queued.status, 503);
  assert.match((await queued.json()).error, /waited 0.2 s \(--queue-timeout\)/);
  assert.ok(waited >= 150 && waited < 1500, `answered after ${waited} ms`);
  const slow = await running;
  assert.equal(slow.status, 504);
  assert.match((await slow.json()).error, /did not finish within --predict-timeout/);
  assert.deepEqual(await ran(server.stateDir), ["slow"], "the queued request never reached predict");
});

Deno.test("a client that disconnects while queued is dropped and its prediction is not run", async () => {
  await using project = await makeProject({ "inference.py": RECORDING });
  await using server = await startServer(project.path, { args: ["--log-level=debug"] });
  const api = `${server.url}/test/api`;
  const first = post(api, { id: "first", sleep: 1 });
  await server.waitFor((r) => r.msg === "running first");
  const gone = new AbortController();
  const abandoned = fetch(api, {
    method: "POST",
    body: JSON.stringify({ id: "abandoned" }),
    signal: gone.signal,
  })
    .catch((error: unknown) => error);
  await server.waitFor((r) => r.msg === "request queued");
  gone.abort();
  assert.ok((await abandoned) instanceof Error);
  await server.waitFor((r) => r.msg === "client went away while queued");
  const index = await (await fetch(`${server.url}/`)).json();
  assert.equal(index.apis[0].queue, 0, "the abandoned request left the queue at once");

  assert.equal(await (await first).json(), "first");
  assert.equal(await (await post(api, { id: "after" })).json(), "after");
  assert.deepEqual(await ran(server.stateDir), ["first", "after"]);
});
