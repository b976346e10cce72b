/**
 * One set of steps for both HTTP pipelines (src/http/steps.ts): a
 * prediction at `POST <endpoint>` (the fast path, before the router) and
 * the same prediction through a routed Hono route (`POST
 * /v2/models/<api>/infer`) get the same cross-cutting headers and access
 * log fields, with and without a key, with and without an origin (allowed
 * or not), answered or failed; and so do a job submitted at `POST
 * <endpoint>` (`Prefer: respond-async`) and a routed job route.
 */
import assert from "node:assert/strict";
import { loadProjectConfig } from "../src/config/load.ts";
import { createApp } from "../src/http/app.ts";
import { CorsRule, NO_CORS } from "../src/http/cors.ts";
import { KeyStore } from "../src/security/api_keys.ts";
import { recordingLogger } from "./_fake_worker.ts";
import { readyFakePool } from "./_ready_pool.ts";
import { makeProject, tempDir } from "./_helpers.ts";
import { JobService } from "../src/jobs/service.ts";
import { openJobStore } from "../src/jobs/open_store.ts";

const KEY = "steps-test-key-0123456789abcdef";
const ORIGIN = "https://app.example";
const MAX_BODY = 256;

/** The headers the steps own (the rest belongs to the route's answer). */
const CROSS_CUTTING = [
  "access-control-allow-origin",
  "access-control-expose-headers",
  "vary",
  "www-authenticate",
  "retry-after",
  "x-request-id",
  "content-type",
];
/** The access log fields the steps own (`path` is the route's own). */
const LOG_FIELDS = ["level", "msg", "request_id", "api", "method", "status", "key_id", "queue_ms"];

async function setup(jobs?: JobService) {
  await using project = await makeProject({
    "inference.py": "def predict(sample, metadata):\n    return sample\n",
  });
  await using keyDir = await tempDir();
  const resolved = await loadProjectConfig(project.path);
  const { logger, records } = recordingLogger("info");
  const { pool, replica } = await readyFakePool(logger, { y: 1 });
  const file = `${keyDir.path}/keys`;
  await Deno.writeTextFile(file, `${KEY}\n`);
  const { app } = createApp({
    project: resolved,
    pools: new Map([["api", pool]]),
    maxBodyBytes: MAX_BODY,
    debug: false,
    logger,
    keys: await KeyStore.load(file),
    cors: { kind: "list", origins: [ORIGIN] },
    jobs,
  });
  return { app, records, [Symbol.asyncDispose]: () => replica.stop() };
}

/** One request's case: its key, its origin, and whether its body is too large (413). */
interface Case {
  readonly key: boolean;
  readonly origin: string | undefined;
  readonly tooLarge: boolean;
}

const CASES: Case[] = [];
for (const key of [true, false]) {
  for (const origin of [undefined, ORIGIN, "https://other.example"]) {
    for (const tooLarge of [false, true]) CASES.push({ key, origin, tooLarge });
  }
}

function init(c: Case, body: string, id: string, extra: Record<string, string> = {}): RequestInit {
  const headers: Record<string, string> = {
    "content-type": "application/json",
    "x-request-id": id,
    ...extra,
  };
  if (c.key) headers["x-api-key"] = KEY;
  if (c.origin !== undefined) headers.origin = c.origin;
  return { method: "POST", headers, body: c.tooLarge ? "x".repeat(MAX_BODY + 1) : body };
}

/** What the steps made of one request: its status, their headers, their log fields. */
async function observe(
  s: Awaited<ReturnType<typeof setup>>,
  path: string,
  request: RequestInit,
): Promise<Record<string, unknown>> {
  const before = s.records.length;
  const res = await s.app.request(path, request);
  await res.body?.cancel();
  const headers = Object.fromEntries(CROSS_CUTTING.map((name) => [name, res.headers.get(name)]));
  const lines = s.records.slice(before).filter((r) => r.msg === "request");
  const log = lines.map((line) =>
    Object.fromEntries(
      LOG_FIELDS.filter((f) => line[f] !== undefined).map((f) => [f, f === "queue_ms" ? "set" : line[f]]),
    )
  );
  return { status: res.status, headers, log };
}

Deno.test("a prediction at its endpoint and through a routed route get the same headers and log fields", async () => {
  await using s = await setup();
  const infer = JSON.stringify({ inputs: [{ name: "x", shape: [1], datatype: "INT64", data: [1] }] });
  let n = 0;
  for (const c of CASES) {
    const id = `steps-${n++}`;
    const fast = await observe(s, "/test/api", init(c, '{"x": [1]}', id));
    const routed = await observe(s, "/v2/models/api/infer", init(c, infer, id));
    assert.deepEqual(routed, fast, JSON.stringify(c));
    // And they are the ones the case calls for.
    const status = !c.key ? 401 : c.tooLarge ? 413 : 200;
    const allowed = c.origin === ORIGIN;
    const keyId = (fast.log as Record<string, unknown>[])[0]?.key_id;
    if (c.key) assert.equal(typeof keyId, "string");
    assert.deepEqual(fast, {
      status,
      headers: {
        "access-control-allow-origin": allowed ? ORIGIN : null,
        "access-control-expose-headers": allowed ? "x-request-id,retry-after" : null,
        vary: "Origin",
        "www-authenticate": c.key ? null : 'Bearer realm="cortex-serve"',
        "retry-after": null,
        "x-request-id": id,
        "content-type": "application/json",
      },
      log: c.key
        ? [{
          level: "info",
          msg: "request",
          request_id: id,
          api: "api",
          method: "POST",
          status,
          key_id: keyId,
          ...(status === 200 ? { queue_ms: "set" } : {}),
        }]
        : [],
    }, JSON.stringify(c));
  }
});

Deno.test("CORS headers are made once per origin decision", () => {
  const listed = new CorsRule({ kind: "list", origins: [ORIGIN, "https://b.example"] });
  const ask = (origin?: string) => listed.ofRequest(new Headers(origin === undefined ? {} : { origin }));
  assert.equal(ask(ORIGIN), ask(ORIGIN));
  assert.notEqual(ask(ORIGIN), ask("https://b.example"));
  assert.equal(ask("https://evil.example"), ask());
  assert.deepEqual(ask(ORIGIN).json, {
    "content-type": "application/json",
    "access-control-allow-origin": ORIGIN,
    "access-control-expose-headers": "x-request-id,retry-after",
    vary: "Origin",
  });
  assert.deepEqual(ask().json, { "content-type": "application/json", vary: "Origin" });
  const any = new CorsRule({ kind: "any" });
  assert.equal(any.ofRequest(new Headers({ origin: ORIGIN })), any.ofRequest(new Headers()));
  const headers = new Headers({ vary: "Accept" });
  ask(ORIGIN).addTo(headers);
  assert.equal(headers.get("vary"), "Accept, Origin");
  assert.equal(headers.get("access-control-allow-origin"), ORIGIN);
  NO_CORS.addTo(headers);
  assert.deepEqual(NO_CORS.json, { "content-type": "application/json" });
});

Deno.test("a job submitted at the endpoint and the routed job route (cancel) get the same headers and log fields", async () => {
  await using state = await tempDir();
  const { logger } = recordingLogger("info");
  const week = 7 * 24 * 3600_000;
  await using jobs = new JobService({
    store: await openJobStore({ kind: "sqlite" }, { stateDir: state.path, leaseMs: 30_000, ttlMs: week }),
    logger,
  });
  await using s = await setup(jobs);
  const async = { prefer: "respond-async" };
  let n = 0;
  for (const c of CASES.filter((c) => !c.tooLarge)) {
    const id = `job-${n++}`;
    const submitted = await s.app.request("/test/api", init(c, '{"x": [1]}', id, async));
    const location = submitted.headers.get("location");
    const jobId = c.key ? (await submitted.json()).id : (await submitted.body?.cancel(), "none");
    assert.equal(submitted.status, c.key ? 202 : 401, JSON.stringify(c));
    if (c.key) assert.equal(location, `/test/api/${jobId}`);
    const submit = await observe(s, "/test/api", init(c, '{"x": [1]}', id, async));
    const cancelled = await observe(s, `/test/api/${jobId}/cancel`, init(c, "", id));
    assert.equal(cancelled.status, c.key ? 200 : 401);
    // The same but for the status: 202 for the submit, 200 for the cancel.
    const strip = (o: Record<string, unknown>) => ({
      ...o,
      status: undefined,
      log: (o.log as Record<string, unknown>[]).map((line) => ({ ...line, status: undefined })),
    });
    assert.deepEqual(strip(cancelled), strip(submit), JSON.stringify(c));
    assert.equal((submit.headers as Record<string, unknown>)["x-request-id"], id);
    assert.equal((submit.log as unknown[]).length, c.key ? 1 : 0);
  }
});
