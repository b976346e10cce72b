/**
 * The latency breakdown (`serve --latency-breakdown`): through a real
 * server and a real worker, every prediction's segments are there, none is
 * negative, they add up to the request's time in the server, which the
 * client's own round trip contains; the user's predict time lands in
 * `predict`. Off by default: no histogram, no route. The segment arithmetic
 * and the clock bound are also checked alone.
 */
import assert from "node:assert/strict";
import { makeProject, post, startServer } from "./_helpers.ts";
import { checkExposition, parsePrometheus, valueOf } from "./_prometheus.ts";
import type { BreakdownReport } from "../src/http/latency_breakdown.ts";
import { ClockOffset, SEGMENTS, segmentsOf } from "../src/http/latency_segments.ts";

/** predict sleeps `sleep_ms` (the segment it must land in), then echoes. */
const INFERENCE = `import time

def predict(sample, metadata):
    time.sleep(sample["sleep_ms"] / 1000)
    return sample
`;

const SLEEP_MS = 15;
const REQUESTS = 25;

Deno.test("--latency-breakdown: each prediction's segments, none negative, add up to its time", async () => {
  await using project = await makeProject({ "inference.py": INFERENCE });
  await using server = await startServer(project.path, { args: ["--latency-breakdown"] });
  const roundTrips: number[] = [];
  for (let i = 0; i < REQUESTS; i++) {
    const started = performance.now();
    const response = await post(`${server.url}/test/api`, { sleep_ms: SLEEP_MS, i });
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { sleep_ms: SLEEP_MS, i });
    roundTrips.push((performance.now() - started) / 1000);
  }
  // A request that fails is not broken down.
  assert.equal((await post(`${server.url}/test/api`, "{")).status, 400);

  const response = await fetch(`${server.url}/metrics/latency-breakdown`);
  assert.equal(response.status, 200);
  const report: BreakdownReport = await response.json();
  assert.deepEqual(report.segments, [...SEGMENTS]);
  assert.equal(report.requests.length, REQUESTS);
  assert.ok(report.clock_uncertainty_seconds >= 0 && report.clock_uncertainty_seconds < 0.01);
  const slowestRoundTrip = Math.max(...roundTrips);
  for (const request of report.requests) {
    assert.equal(request.api, "api");
    assert.equal(request.segments.length, SEGMENTS.length);
    for (const value of request.segments) assert.ok(value >= 0 && Number.isFinite(value), String(value));
    const sum = request.segments.reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(sum - request.total) < 1e-6, `segments ${sum} s, total ${request.total} s`);
    // The server's part of a round trip the client measured around it.
    assert.ok(
      request.total <= slowestRoundTrip,
      `${request.total} s, slowest round trip ${slowestRoundTrip} s`,
    );
    const at = (name: string) => request.segments[SEGMENTS.indexOf(name as typeof SEGMENTS[number])]!;
    assert.ok(at("predict") >= SLEEP_MS / 1000, `predict ${at("predict")} s`);
    assert.ok(at("predict") > request.total / 2, `predict ${at("predict")} s of ${request.total} s`);
    assert.equal(at("worker_busy"), 0); // one client: nothing pipelined
  }
  // Slowest first.
  const totals = report.requests.map((r) => r.total);
  assert.deepEqual(totals, [...totals].sort((a, b) => b - a));
  // Most of each round trip is the server's (a loaded machine may delay a few clients).
  const serverTotals = [...totals].sort((a, b) => a - b);
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1]!;
  assert.ok(
    median(serverTotals) > median(roundTrips) / 2,
    `${median(serverTotals)} vs ${median(roundTrips)}`,
  );

  const text = await (await fetch(`${server.url}/metrics`)).text();
  const exposition = parsePrometheus(text);
  assert.deepEqual(checkExposition(text), []);
  for (const segment of SEGMENTS) {
    const labels = { api: "api", segment };
    assert.equal(
      valueOf(exposition, "cortex_serve_request_segment_seconds_count", labels),
      REQUESTS,
      segment,
    );
  }
  const predictSum = valueOf(exposition, "cortex_serve_request_segment_seconds_sum", {
    api: "api",
    segment: "predict",
  });
  assert.ok(predictSum >= REQUESTS * SLEEP_MS / 1000, String(predictSum));
});

Deno.test("without --latency-breakdown: no segment histogram and no breakdown route", async () => {
  await using project = await makeProject({ "inference.py": INFERENCE });
  await using server = await startServer(project.path);
  assert.equal((await post(`${server.url}/test/api`, { sleep_ms: 0 })).status, 200);
  const text = await (await fetch(`${server.url}/metrics`)).text();
  assert.ok(!text.includes("cortex_serve_request_segment"), "segment metrics without the flag");
  const response = await fetch(`${server.url}/metrics/latency-breakdown`);
  await response.body?.cancel();
  assert.equal(response.status, 404);
});

Deno.test("segments: the clock bound splits the two crossings, the sum is the total", () => {
  const clock = new ClockOffset();
  // The worker's clock is 1000 ms ahead; each crossing takes 0.05 ms (first request) or more.
  const request = (written: number, toWorker: number, toServer: number) => ({
    written,
    free: 0,
    read: written + 1000 + toWorker,
    started: written + 1000 + toWorker + 0.01,
    ended: written + 1000 + toWorker + 2,
    sent: written + 1000 + toWorker + 2.02,
    received: written + toWorker + 2.02 + toServer,
  });
  const out = new Float64Array(SEGMENTS.length);
  const first = request(10, 0.05, 0.05);
  clock.observe(first);
  assert.ok(Math.abs(clock.offset - 1000) < 1e-9);
  assert.ok(Math.abs(clock.uncertainty - 0.05) < 1e-9);
  const slow = request(20, 0.05, 3); // the server woke up late
  clock.observe(slow);
  const total = segmentsOf(
    { accepted: 19, queued: 19.5, responded: slow.received + 0.1, written: slow.received + 0.2 },
    slow,
    clock,
    out,
  );
  const at = (name: string) => out[SEGMENTS.indexOf(name as typeof SEGMENTS[number])]!;
  assert.ok(Math.abs(at("to_server") - 0.003) < 1e-7, String(at("to_server")));
  assert.ok(Math.abs(at("to_worker") - 0.00005) < 1e-7, String(at("to_worker")));
  assert.ok(Math.abs(at("predict") - 0.00199) < 1e-7);
  assert.ok(Math.abs(out.reduce((a, b) => a + b, 0) - total) < 1e-9);
  // Sent behind a running request: the wait for the worker is `worker_busy`, not `to_worker`.
  const behind = { ...request(30, 1.55, 0.05), free: 30 + 1000 + 1.5 };
  clock.observe(behind);
  segmentsOf(
    { accepted: 29, queued: 29.9, responded: behind.received, written: behind.received },
    behind,
    clock,
    out,
  );
  assert.ok(Math.abs(at("worker_busy") - 0.0015) < 1e-7, String(at("worker_busy")));
  assert.ok(at("to_worker") >= 0 && at("to_worker") < 0.0001);
  for (const value of out) assert.ok(value >= 0);
});
