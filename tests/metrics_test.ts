/**
 * `GET /metrics` from a real server with real workers: the exposition parses
 * as Prometheus text, counters move by exactly the requests sent, and the
 * Cortex tracker counts what the APIs returned.
 */
import assert from "node:assert/strict";
import { delay, makeProject, post, startServer } from "./_helpers.ts";
import { checkExposition, type Exposition, parsePrometheus, scrape, valueOf } from "./_prometheus.ts";
import { ServerMetrics } from "../src/http/metrics.ts";
import { ApiPool } from "../src/supervision/pool.ts";
import { waitUntil } from "../src/supervision/events.ts";
import { fakeReplica, FakeSpawner, recordingLogger } from "./_fake_worker.ts";

const CONFIG = `- kind: deployment
  name: m
- kind: api
  name: label
  python:
    inference: inference.py
  tracker:
    model_type: classification
- kind: api
  name: keyed
  python:
    inference: inference.py
  tracker:
    key: label
    model_type: classification
- kind: api
  name: value
  python:
    inference: inference.py
  tracker:
    model_type: regression
`;

const INFERENCE = `import os
API = os.environ["CORTEX_API_NAME"]

def predict(sample, metadata):
    if sample.get("fail"):
        raise ValueError("asked to fail")
    if sample.get("crash"):
        os._exit(3)
    if API == "label":
        return sample["label"]
    if API == "keyed":
        return {"label": sample["label"], "score": 0.5}
    return sample["x"] * 2
`;

/** `after - before` for one series. */
function delta(before: Exposition, after: Exposition, name: string, labels: Record<string, string>): number {
  return valueOf(after, name, labels) - valueOf(before, name, labels);
}

Deno.test("/metrics: request counters, latency histogram, tracker, replica gauges and restarts", async (t) => {
  await using project = await makeProject({ "cortex.yaml": CONFIG, "inference.py": INFERENCE });
  await using server = await startServer(project.path);
  const metricsUrl = `${server.url}/metrics`;
  const before = await scrape(metricsUrl);

  const returned = new Map<string, number>();
  const count = (key: string) => returned.set(key, (returned.get(key) ?? 0) + 1);
  for (const label of ["setosa", "virginica", "setosa", "setosa", "versicolor"]) {
    const res = await post(`${server.url}/m/label`, { label });
    assert.equal(res.status, 200);
    count(`label/${await res.json()}`);
  }
  const failed = await post(`${server.url}/m/label`, { fail: true });
  assert.equal(failed.status, 500);
  await failed.body?.cancel();
  const malformed = await post(`${server.url}/m/label`, "{");
  assert.equal(malformed.status, 400);
  await malformed.body?.cancel();
  for (const label of ["x", "y", "x"]) {
    const res = await post(`${server.url}/m/keyed`, { label });
    count(`keyed/${(await res.json()).label}`);
  }
  const nullLabel = await post(`${server.url}/m/keyed`, { label: null });
  assert.deepEqual(await nullLabel.json(), { label: null, score: 0.5 });
  const values: number[] = [];
  for (const x of [1, 2.5, -3, 100]) values.push(await (await post(`${server.url}/m/value`, { x })).json());

  const after = await scrape(metricsUrl);

  await t.step("requests by api and status move by exactly what was sent", () => {
    const requests = "cortex_serve_requests_total";
    assert.equal(after.types.get(requests), "counter");
    assert.equal(delta(before, after, requests, { api: "label", status: "200" }), 5);
    assert.equal(delta(before, after, requests, { api: "label", status: "500" }), 1);
    assert.equal(delta(before, after, requests, { api: "label", status: "400" }), 1);
    assert.equal(delta(before, after, requests, { api: "keyed", status: "200" }), 4);
    assert.equal(delta(before, after, requests, { api: "value", status: "200" }), 4);
    const latency = "cortex_serve_request_duration_seconds";
    assert.equal(after.types.get(latency), "histogram");
    assert.equal(delta(before, after, `${latency}_count`, { api: "label" }), 7);
    assert.equal(delta(before, after, `${latency}_bucket`, { api: "label", le: "+Inf" }), 7);
    assert.ok(delta(before, after, `${latency}_sum`, { api: "label" }) > 0);
    assert.equal(delta(before, after, "cortex_serve_queue_wait_seconds_count", { api: "label" }), 5);
  });

  await t.step("classification tracker counts the classes returned", () => {
    const classes = after.samples.filter((s) => s.name === "cortex_serve_predictions_total");
    const counted = new Map(classes.map((s) => [`${s.labels.api}/${s.labels.class}`, s.value]));
    assert.deepEqual(counted, returned);
    assert.deepEqual(Object.fromEntries(returned), {
      "label/setosa": 3,
      "label/virginica": 1,
      "label/versicolor": 1,
      "keyed/x": 2,
      "keyed/y": 1,
    });
    assert.equal(valueOf(after, "cortex_serve_tracker_skipped_total", { api: "keyed" }), 1);
    assert.equal(valueOf(after, "cortex_serve_tracker_skipped_total", { api: "label" }), 0);
  });

  await t.step("regression tracker records a histogram of the values returned", () => {
    assert.deepEqual(values, [2, 5, -6, 200]);
    const name = "cortex_serve_prediction_value";
    assert.equal(after.types.get(name), "histogram");
    assert.equal(valueOf(after, `${name}_count`, { api: "value" }), 4);
    assert.equal(valueOf(after, `${name}_sum`, { api: "value" }), 201);
    assert.equal(valueOf(after, `${name}_bucket`, { api: "value", le: "0" }), 1);
    assert.equal(valueOf(after, `${name}_bucket`, { api: "value", le: "5" }), 3);
    assert.equal(valueOf(after, `${name}_bucket`, { api: "value", le: "+Inf" }), 4);
  });

  await t.step("replica, queue and init gauges are read at scrape time", () => {
    for (const api of ["label", "keyed", "value"]) {
      assert.equal(valueOf(after, "cortex_serve_replicas", { api, state: "ready" }), 1);
      assert.equal(valueOf(after, "cortex_serve_replicas", { api, state: "init_failed" }), 0);
      assert.equal(valueOf(after, "cortex_serve_queue_depth", { api }), 0);
      assert.equal(valueOf(after, "cortex_serve_in_flight_requests", { api }), 0);
      assert.ok(valueOf(after, "cortex_serve_init_duration_seconds", { api, replica: "0" }) > 0);
    }
    assert.equal(valueOf(after, "cortex_serve_build_info"), 1);
  });

  await t.step("a crashed worker counts one restart", async () => {
    const crashed = await post(`${server.url}/m/value`, { crash: true });
    assert.equal(crashed.status, 502);
    await crashed.body?.cancel();
    let now = await scrape(metricsUrl);
    for (
      let i = 0;
      i < 100 && valueOf(now, "cortex_serve_replicas", { api: "value", state: "ready" }) !== 1;
      i++
    ) {
      await delay(50);
      now = await scrape(metricsUrl);
    }
    assert.equal(valueOf(now, "cortex_serve_replicas", { api: "value", state: "ready" }), 1);
    assert.equal(delta(before, now, "cortex_serve_replica_restarts_total", { api: "value" }), 1);
    assert.equal(delta(before, now, "cortex_serve_replica_restarts_total", { api: "label" }), 0);
    assert.equal(delta(before, now, "cortex_serve_requests_total", { api: "value", status: "502" }), 1);
  });

  await t.step(
    "the text follows the 0.0.4 grammar line by line; a value past the last bucket is +Inf only",
    async () => {
      const before = await scrape(metricsUrl);
      assert.equal(await (await post(`${server.url}/m/value`, { x: 5e6 })).json(), 1e7);
      const res = await fetch(metricsUrl);
      assert.equal(res.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
      const text = await res.text();
      assert.deepEqual(checkExposition(text), []);
      const after = parsePrometheus(text);
      const name = "cortex_serve_prediction_value_bucket";
      assert.equal(delta(before, after, name, { api: "value", le: "+Inf" }), 1);
      for (const le of ["-1", "0", "1000000"]) {
        assert.equal(
          delta(before, after, name, { api: "value", le }),
          0,
          le,
        );
      }
      for (const family of after.types.keys()) {
        assert.equal(
          text.split("\n").filter((l) => l === `# TYPE ${family} ${after.types.get(family)}`).length,
          1,
        );
        assert.ok(text.includes(`# HELP ${family} `), family);
      }
    },
  );

  await t.step("/metrics answers GET only", async () => {
    const res = await fetch(metricsUrl, { method: "POST", body: "{}" });
    assert.equal(res.status, 405);
    assert.equal(res.headers.get("allow"), "GET");
    await res.body?.cancel();
  });
});

Deno.test("/metrics: restarts of a replica retired between two scrapes are still counted", async () => {
  const { logger } = recordingLogger("info");
  let pools: ApiPool[] = [];
  const metrics = new ServerMetrics({ pools: () => pools });
  const pool = new ApiPool({
    api: "api",
    queuePerReplica: 1,
    maxReplicas: 2,
    predictTimeoutMs: 10_000,
    logger,
    counters: metrics,
  });
  pools = [pool];
  const spawners = [new FakeSpawner(), new FakeSpawner()];
  const replicas = spawners.map((spawner, index) =>
    fakeReplica(spawner, logger, { index, counters: metrics })
  );
  pool.setReplicas(replicas);
  replicas.forEach((r) => r.start());
  const allReady = () => replicas.every((r) => r.state === "ready") || undefined;
  await waitUntil([pool.changes], allReady, { timeoutMs: 2000 });
  const scrapeNow = () => parsePrometheus(metrics.render().body);
  const restarts = (e: Exposition) => valueOf(e, "cortex_serve_replica_restarts_total", { api: "api" });
  assert.equal(restarts(scrapeNow()), 0);

  // Replica 1's worker crashes and comes back; autoscaling retires the
  // replica before the next scrape: its restart is not lost with it.
  spawners[1]!.last.exit(3);
  await spawners[1]!.nth(2);
  await waitUntil([pool.changes], allReady, { timeoutMs: 2000 });
  assert.equal(pool.retireIdle(), replicas[1]);
  await replicas[1]!.stop();
  const after = scrapeNow();
  assert.equal(pool.replicas.length, 1);
  assert.equal(restarts(after), 1);
  assert.equal(valueOf(after, "cortex_serve_scale_events_total", { api: "api", direction: "down" }), 1);
  assert.equal(valueOf(after, "cortex_serve_scale_events_total", { api: "api", direction: "up" }), 0);
  assert.equal(valueOf(after, "cortex_serve_cancelled_total", { api: "api", reason: "client" }), 0);

  // A reload replaces the pool: the counter keeps its total.
  pools = [];
  assert.equal(restarts(scrapeNow()), 1);
  await replicas[0]!.stop();
});
