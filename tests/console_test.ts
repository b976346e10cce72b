/**
 * The console's server side, in process: Accept negotiation, which console
 * routes need a key, the page's security headers, the bounded rings and the
 * last-minute latency window.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadProjectConfig } from "../src/config/load.ts";
import { Logger } from "../src/log/logger.ts";
import { createApp } from "../src/http/app.ts";
import { ApiPool } from "../src/supervision/pool.ts";
import { KeyStore } from "../src/security/api_keys.ts";
import { prefersHtml, quality } from "../src/http/console/negotiate.ts";
import { binOf, binValue, LatencyWindow } from "../src/http/console/latency_window.ts";
import { LogRing, RequestRing } from "../src/http/console/recent.ts";
import { ConsoleActivity } from "../src/http/console/activity.ts";
import { consoleState } from "../src/http/console/data.ts";
import { REPLICA_STATES, STATE_INFO } from "../src/supervision/replica_states.ts";
import { ROOT, tempDir } from "./_helpers.ts";

const BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8";
const KEY = "console-test-key-0123456789";

async function iris(options: { keys?: KeyStore; activity?: ConsoleActivity } = {}) {
  const project = await loadProjectConfig(join(ROOT, "examples", "iris-classifier"));
  const logger = new Logger({ sink: () => {} });
  const pools = new Map(project.apis.map((api) => [
    api.name,
    new ApiPool({ api: api.name, queuePerReplica: 1, maxReplicas: 1, predictTimeoutMs: 1000, logger }),
  ]));
  return createApp({ project, pools, maxBodyBytes: 1024, debug: false, logger, ...options }).app;
}

Deno.test("Accept negotiation: browsers get HTML; curl, fetch and API clients get JSON", () => {
  assert.equal(prefersHtml(BROWSER_ACCEPT), true);
  assert.equal(prefersHtml("text/html"), true);
  assert.equal(prefersHtml("text/*, application/json;q=0.5"), false); // no "html" spelled out
  assert.equal(prefersHtml("text/html;q=0.5, application/json"), false);
  assert.equal(prefersHtml("application/json, text/html"), false);
  assert.equal(prefersHtml("*/*"), false);
  assert.equal(prefersHtml(undefined), false);
  assert.equal(prefersHtml("text/html;q=0"), false);
  assert.equal(quality("text/*;q=0.3, */*;q=0.1", "text/html"), 0.3);
  assert.equal(quality("application/json", "text/html"), 0);
});

Deno.test("GET / answers the page to a browser and JSON to everyone else, both with Vary: Accept", async () => {
  const app = await iris();
  const page = await app.request("/", { headers: { accept: BROWSER_ACCEPT } });
  assert.equal(page.status, 200);
  assert.equal(page.headers.get("content-type"), "text/html; charset=utf-8");
  assert.equal(page.headers.get("vary"), "Accept");
  const csp = page.headers.get("content-security-policy") ?? "";
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'self'(;|$)/);
  assert.match(csp, /style-src 'self'(;|$)/);
  assert.doesNotMatch(csp, /unsafe|https?:/);
  assert.equal(page.headers.get("x-content-type-options"), "nosniff");
  const html = await page.text();
  assert.match(html, /<script type="module" src="\/_console\/console\.js"><\/script>/);
  assert.doesNotMatch(html, /<script>|<style|\sstyle=|\son[a-z]+=/i, "no inline script, style or handler");

  const json = await app.request("/");
  assert.equal(json.headers.get("content-type"), "application/json");
  assert.equal(json.headers.get("vary"), "Accept");
  assert.equal((await json.json()).deployment, "iris");

  for (
    const [path, type] of [
      ["/_console/console.js", "text/javascript; charset=utf-8"],
      ["/_console/chart.js", "text/javascript; charset=utf-8"],
      ["/_console/console.css", "text/css; charset=utf-8"],
      ["/_console/icon.svg", "image/svg+xml"],
    ]
  ) {
    const res = await app.request(path!);
    assert.equal(res.status, 200, path);
    assert.equal(res.headers.get("content-type"), type);
    assert.ok((await res.text()).length > 100);
  }
});

Deno.test("the console data: each API's state, counters and last minute, recent requests and log lines", async () => {
  const activity = new ConsoleActivity();
  activity.record("classifier", 200, 2, "req-1");
  activity.record("classifier", 503, 40, "req-2");
  activity.tap("info", "loaded model", { api: "classifier", replica: 0, stream: "python" }, undefined);
  const app = await iris({ activity });
  const data = await (await app.request("/_console/data")).json();
  assert.equal(data.deployment, "iris");
  assert.equal(data.apis[0].name, "classifier");
  assert.equal(data.apis[0].state, "starting");
  assert.equal(data.apis[0].state_label, "starting");
  assert.equal(data.apis[0].last_minute.requests, 2);
  assert.equal(data.apis[0].last_minute.errors, 1);
  assert.equal(data.apis[0].last_minute.rate.length, 60);
  assert.deepEqual(data.requests.map((r: { request_id: string }) => r.request_id), ["req-2", "req-1"]);
  assert.deepEqual(data.logs[0], {
    time: data.logs[0].time,
    level: "info",
    api: "classifier",
    replica: 0,
    message: "loaded model",
    detail: "",
  });
  const samples = await (await app.request("/_console/samples")).json();
  assert.deepEqual(JSON.parse(samples.classifier), {
    sepal_length: 5.2,
    sepal_width: 3.6,
    petal_length: 1.4,
    petal_width: 0.3,
  });
});

Deno.test("with API keys, the page and its assets are open; the data, the JSON index and predictions are not", async () => {
  await using dir = await tempDir();
  const file = join(dir.path, "keys");
  await Deno.writeTextFile(file, `${KEY}\n`, { mode: 0o600 });
  const app = await iris({ keys: await KeyStore.load(file) });
  const status = async (path: string, init: RequestInit = {}) => {
    const res = await app.request(path, init);
    await res.body?.cancel();
    return res.status;
  };
  assert.equal(await status("/", { headers: { accept: BROWSER_ACCEPT } }), 200);
  assert.equal(await status("/_console/console.js"), 200);
  assert.equal(await status("/_console/console.css"), 200);
  assert.equal(await status("/"), 401);
  assert.equal(await status("/_console/data"), 401);
  assert.equal(await status("/_console/samples"), 401);
  assert.equal(await status("/_console/nothing"), 401);
  assert.equal(await status("/", { method: "POST", headers: { accept: BROWSER_ACCEPT } }), 401);
  assert.equal(await status("/_console/data", { headers: { authorization: `Bearer ${KEY}` } }), 200);
});

Deno.test("the request ring keeps the newest requests, newest first, in a fixed size", () => {
  const ring = new RequestRing(3);
  for (let i = 1; i <= 5; i++) ring.push(i, "api", 200 + i, i / 3, `id-${i}`);
  assert.deepEqual(ring.list().map((r) => [r.request_id, r.status, r.latency_ms]), [
    ["id-5", 205, 1.667],
    ["id-4", 204, 1.333],
    ["id-3", 203, 1],
  ]);
});

Deno.test("the log ring keeps API and worker lines and warnings, not the access log, and cuts long lines", () => {
  const ring = new LogRing(2);
  ring.offer("info", "listening", {}, { url: "http://x" });
  ring.offer("info", "request", { api: "a" }, { status: 200 });
  assert.equal(ring.list().length, 0);
  ring.offer("warn", "unauthorized", {}, { path: "/", reason: "no key" });
  ring.offer("info", "x".repeat(5000), { api: "a", replica: 1, stream: "python" }, undefined);
  ring.offer("error", "worker exited", { api: "a", replica: 1 }, { code: 1 });
  const lines = ring.list();
  assert.deepEqual(lines.map((l) => [l.level, l.api, l.replica, l.message.length, l.detail]), [
    ["error", "a", 1, 13, "code=1"],
    ["info", "a", 1, 2000, ""],
  ]);
});

Deno.test("the latency window: p50 and p99 of the last minute within a bin, per-second rate, old seconds drop out", () => {
  const window = new LatencyWindow();
  const t0 = 1_800_000_000_000;
  for (let i = 0; i < 98; i++) window.record(200, 2, t0);
  window.record(500, 100, t0 + 1000);
  window.record(200, 100, t0 + 1000);
  let snap = window.snapshot(t0 + 1500);
  assert.equal(snap.requests, 100);
  assert.equal(snap.errors, 1);
  assert.ok(Math.abs(snap.p50_ms! - 2) / 2 < 0.1, `p50 ${snap.p50_ms}`);
  assert.ok(Math.abs(snap.p99_ms! - 100) / 100 < 0.1, `p99 ${snap.p99_ms}`);
  assert.deepEqual(snap.rate.slice(-2), [98, 2]);
  assert.deepEqual(snap.latency_ms.slice(-3), [null, 2, 100]);
  snap = window.snapshot(t0 + 60_500);
  assert.equal(snap.requests, 2, "the first second has left the window");
  snap = window.snapshot(t0 + 120_000);
  assert.deepEqual([snap.requests, snap.p50_ms, snap.p99_ms], [0, null, null]);
  window.record(200, 1, t0 + 120_000); // reuses the slot of t0: old counts are gone
  assert.equal(window.snapshot(t0 + 120_000).requests, 1);
  assert.equal(binOf(0), 0);
  assert.equal(binOf(1e9), binOf(1e12));
  assert.ok(binValue(binOf(5)) / 5 < 1.1 && binValue(binOf(5)) / 5 > 0.9);
});

Deno.test("an API whose every ready replica is predicting shows as busy", () => {
  assert.equal(consoleState("ready", { ready: 0, busy: 2 }), "busy");
  assert.equal(consoleState("ready", { ready: 1, busy: 1 }), "ready");
  assert.equal(consoleState("restarting", { ready: 0, busy: 0 }), "restarting");
});

Deno.test("the console styles every replica state of the one list, and takes its labels from the server", async () => {
  const app = await iris();
  const css = await (await app.request("/_console/console.css")).text();
  for (const state of REPLICA_STATES) {
    assert.match(css, new RegExp(`\\.state-${state}\\b`), `console.css has no .state-${state}`);
    assert.ok(STATE_INFO[state].label.length > 0);
  }
  const js = await (await app.request("/_console/console.js")).text();
  assert.match(js, /state_label/);
  assert.doesNotMatch(js, /init failed|out of memory/, "no state list of its own");
});
