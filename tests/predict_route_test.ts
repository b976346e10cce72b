/**
 * `POST <endpoint>` in process (it is answered before the app's router):
 * the same routing, headers, error answers and access log as every other
 * route, against a pool whose fake worker answers at once.
 */
import assert from "node:assert/strict";
import { loadProjectConfig } from "../src/config/load.ts";
import { createApp } from "../src/http/app.ts";
import type { CorsPolicy } from "../src/http/cors.ts";
import { KeyStore } from "../src/security/api_keys.ts";
import { recordingLogger } from "./_fake_worker.ts";
import { readyFakePool } from "./_ready_pool.ts";
import { makeProject, tempDir } from "./_helpers.ts";

const KEY = "predict-route-key-0123456789";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

async function setup(options: { cors?: CorsPolicy; keys?: boolean; maxBodyBytes?: number } = {}) {
  await using project = await makeProject({
    "inference.py": "def predict(sample, metadata):\n    return sample\n",
  });
  await using keyDir = await tempDir();
  const resolved = await loadProjectConfig(project.path);
  const { logger, records } = recordingLogger("info");
  const { pool, spawner, replica } = await readyFakePool(logger, { answer: 42 });
  let keys: KeyStore | undefined;
  if (options.keys) {
    const file = `${keyDir.path}/keys`;
    await Deno.writeTextFile(file, `${KEY}\n`);
    keys = await KeyStore.load(file);
  }
  const { app } = createApp({
    project: resolved,
    pools: new Map([["api", pool]]),
    maxBodyBytes: options.maxBodyBytes ?? 1024,
    debug: false,
    logger,
    keys,
    ...(options.cors === undefined ? {} : { cors: options.cors }),
  });
  const requests = () => records.filter((r) => r.msg === "request");
  return { app, spawner, requests, records, [Symbol.asyncDispose]: () => replica.stop() };
}

const post = (body: string, headers: Record<string, string> = {}) => ({ method: "POST", body, headers });

Deno.test("a prediction: JSON answer, CORS, a new request id, one access log line", async () => {
  await using s = await setup();
  const res = await s.app.request("/test/api", post('{"x": 1}'));
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { answer: 42 });
  assert.equal(res.headers.get("content-type"), "application/json");
  assert.equal(res.headers.get("access-control-allow-origin"), "*");
  assert.equal(res.headers.get("access-control-expose-headers"), "x-request-id,retry-after");
  assert.equal(res.headers.get("vary"), null);
  const id = res.headers.get("x-request-id")!;
  assert.match(id, UUID);
  assert.deepEqual(s.spawner.last.samples, ['{"x": 1}']);
  const [line, ...more] = s.requests();
  assert.equal(more.length, 0);
  assert.deepEqual(Object.keys(line!), [
    "time",
    "level",
    "msg",
    "request_id",
    "api",
    "method",
    "path",
    "status",
    "latency_ms",
    "queue_ms",
  ]);
  assert.deepEqual({ ...line, time: 0, latency_ms: 0, queue_ms: 0 }, {
    time: 0,
    level: "info",
    msg: "request",
    request_id: id,
    api: "api",
    method: "POST",
    path: "/test/api",
    status: 200,
    latency_ms: 0,
    queue_ms: 0,
  });
});

Deno.test("routing as the router's: a sane client id is echoed, an encoded path matches, a trailing slash does not", async () => {
  await using s = await setup();
  const echoed = await s.app.request("/test/api?debug=true", post("[1]", { "x-request-id": "client-7.a" }));
  assert.equal(echoed.status, 200);
  assert.equal(echoed.headers.get("x-request-id"), "client-7.a");
  const insane = await s.app.request("/test/api", post("[1]", { "x-request-id": "has space" }));
  assert.match(insane.headers.get("x-request-id")!, UUID);
  const encoded = await s.app.request("/test/a%70i", post("[2]"));
  assert.equal(encoded.status, 200);
  const slash = await s.app.request("/test/api/", post("[3]"));
  assert.equal(slash.status, 404);
  await slash.body?.cancel();
  assert.deepEqual(s.spawner.last.samples, ["[1]", "[1]", "[2]"]);
  assert.deepEqual(s.requests().map((r) => [r.request_id === "client-7.a", r.path]), [
    [true, "/test/api"],
    [false, "/test/api"],
    [false, "/test/api"],
  ]);
});

Deno.test("errors: an empty or oversized body is answered and logged; other methods get 405", async () => {
  await using s = await setup({ maxBodyBytes: 16 });
  const empty = await s.app.request("/test/api", post("  \n"));
  assert.equal(empty.status, 400);
  const body = await empty.json();
  assert.equal(body.api, "api");
  assert.equal(body.request_id, empty.headers.get("x-request-id"));
  assert.equal(empty.headers.get("access-control-allow-origin"), "*");
  const big = await s.app.request("/test/api", post("x".repeat(17)));
  assert.equal(big.status, 413);
  await big.body?.cancel();
  const put = await s.app.request("/test/api", { method: "PUT", body: "[1]" });
  assert.equal(put.status, 405);
  assert.equal(put.headers.get("allow"), "GET, POST");
  await put.body?.cancel();
  assert.deepEqual(s.requests().map((r) => [r.method, r.status]), [["POST", 400], ["POST", 413], [
    "PUT",
    405,
  ]]);
  assert.deepEqual(s.spawner.last.samples, []);
});

Deno.test("listed origins: the allowed one is named, another gets only Vary", async () => {
  await using s = await setup({ cors: { kind: "list", origins: ["https://app.example"] } });
  const allowed = await s.app.request("/test/api", post("[1]", { origin: "https://app.example" }));
  assert.equal(allowed.headers.get("access-control-allow-origin"), "https://app.example");
  assert.equal(allowed.headers.get("vary"), "Origin");
  await allowed.body?.cancel();
  const other = await s.app.request("/test/api", post("[1]", { origin: "https://evil.example" }));
  assert.equal(other.status, 200);
  assert.equal(other.headers.get("access-control-allow-origin"), null);
  assert.equal(other.headers.get("access-control-expose-headers"), null);
  assert.equal(other.headers.get("vary"), "Origin");
  await other.body?.cancel();
  const off = await setup({ cors: { kind: "none" } });
  const plain = await off.app.request("/test/api", post("[1]", { origin: "https://app.example" }));
  assert.deepEqual([...plain.headers.keys()].sort(), ["content-type", "x-request-id"]);
  await plain.body?.cancel();
  await off[Symbol.asyncDispose]();
});

Deno.test("API keys: a missing key is a 401 with CORS headers and no access line; a good key is logged by id", async () => {
  await using s = await setup({ keys: true });
  const refused = await s.app.request("/test/api", post("[1]"));
  assert.equal(refused.status, 401);
  assert.equal(refused.headers.get("www-authenticate"), 'Bearer realm="cortex-serve"');
  assert.equal(refused.headers.get("access-control-allow-origin"), "*");
  const body = await refused.json();
  assert.equal(body.api, null);
  assert.equal(body.request_id, refused.headers.get("x-request-id"));
  const ok = await s.app.request("/test/api", post("[1]", { authorization: `Bearer ${KEY}` }));
  assert.equal(ok.status, 200);
  await ok.body?.cancel();
  const lines = s.requests();
  assert.equal(lines.length, 1);
  assert.equal(typeof lines[0]!.key_id, "string");
  assert.deepEqual(s.spawner.last.samples, ["[1]"]);
});
