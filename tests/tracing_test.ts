/**
 * OpenTelemetry: a real server with `OTEL_DENO=true` exports its spans over
 * OTLP/HTTP (JSON) to a sink on loopback. A request with a W3C
 * `traceparent` continues that trace, its span is named by its route, and it
 * has `queue` and `predict` children (`batch` between them with server-side
 * batching); a failed prediction's span has an error status; log lines of
 * the request carry its trace id. User code in the worker reads its `predict`
 * span's context through `cortex_serve_trace` (hooks and predict; a batch's
 * predict lists its requests'), in both the plain and the Cortex 0.30
 * dialects. Without `OTEL_DENO` nothing is instrumented.
 */
import assert from "node:assert/strict";
import { createApp } from "../src/http/app.ts";
import { loadProjectConfig } from "../src/config/load.ts";
import { tracingEnabled } from "../src/http/tracing.ts";
import { Logger } from "../src/log/logger.ts";
import { ApiPool } from "../src/supervision/pool.ts";
import { makeProject, startServer } from "./_helpers.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

/** One exported span, flattened. */
interface Span {
  readonly name: string;
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string;
  readonly start: bigint;
  readonly end: bigint;
  readonly attributes: Record<string, unknown>;
  readonly status: { code?: number; message?: string };
  readonly scope: string;
}

/** An OTLP/HTTP receiver on 127.0.0.1 that keeps the spans it is sent as JSON. */
function startSink() {
  const spans: Span[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (request) => {
    const path = new URL(request.url).pathname;
    const body = await request.text();
    if (path === "/v1/traces") {
      assert.equal(request.headers.get("content-type"), "application/json");
      for (const resource of JSON.parse(body).resourceSpans as Json[]) {
        for (const scope of resource.scopeSpans) {
          for (const span of scope.spans) {
            spans.push({
              name: span.name,
              traceId: span.traceId,
              spanId: span.spanId,
              parentSpanId: span.parentSpanId ?? "",
              start: BigInt(span.startTimeUnixNano),
              end: BigInt(span.endTimeUnixNano),
              attributes: Object.fromEntries(
                (span.attributes as Json[]).map((a) => [a.key, Object.values(a.value)[0]]),
              ),
              status: span.status ?? {},
              scope: scope.scope.name,
            });
          }
        }
      }
    }
    return new Response("{}", { headers: { "content-type": "application/json" } });
  });
  return { spans, url: `http://127.0.0.1:${server.addr.port}`, server };
}

const FILES = {
  "cortex.yaml": `- kind: deployment
  name: t
- kind: api
  name: plain
  python:
    inference: plain.py
- kind: api
  name: batched
  python:
    inference: batched.py
  server_side_batching:
    max_batch_size: 4
    batch_interval: 5ms
- kind: api
  name: fails
  python:
    inference: fails.py
- kind: api
  name: context
  python:
    inference: context.py
- kind: api
  name: batched-context
  python:
    inference: batched_context.py
  server_side_batching:
    max_batch_size: 2
    batch_interval: 5ms
`,
  "plain.py": "def predict(sample, metadata):\n    return {'echo': sample}\n",
  "batched.py": "def predict(samples, metadata):\n    return [s * 2 for s in samples]\n",
  "fails.py": "def predict(sample, metadata):\n    raise RuntimeError('broken on purpose')\n",
  // User code reads the request's trace context through the documented module.
  "context.py": `import sys
import cortex_serve_trace

def pre_inference(sample, metadata):
    return [cortex_serve_trace.traceparent()]

def predict(sample, metadata):
    sample.append(cortex_serve_trace.headers())
    sample.append("opentelemetry" in sys.modules)
    return sample

def post_inference(prediction, metadata):
    return prediction + [cortex_serve_trace.traceparent()]
`,
  "batched_context.py":
    "import cortex_serve_trace\ndef predict(samples, metadata):\n    return [[cortex_serve_trace.traceparent(), cortex_serve_trace.traceparents()] for s in samples]\n",
};

const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT = "00f067aa0ba902b7";

Deno.test("tracing: spans over OTLP/HTTP continue traceparent, with queue, batch and predict children", async () => {
  const sink = startSink();
  try {
    await using project = await makeProject(FILES);
    const server = await startServer(project.path, {
      replicas: 3,
      env: {
        OTEL_DENO: "true",
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
        OTEL_EXPORTER_OTLP_ENDPOINT: sink.url,
        OTEL_SERVICE_NAME: "cortex-serve-test",
        OTEL_DENO_CONSOLE: "ignore",
      },
    });
    const traceparent = (n: number) => `00-${TRACE.slice(0, -1)}${n}-${PARENT}-01`;
    let seen: Json;
    let seenInBatch: Json;
    try {
      const post = async (path: string, body: string, n: number) => {
        const res = await fetch(server.url + path, {
          method: "POST",
          body,
          headers: { traceparent: traceparent(n) },
        });
        await res.body?.cancel();
        return res.status;
      };
      assert.equal(await post("/t/plain", '{"a": 1}', 1), 200);
      assert.equal(await post("/t/batched", "21", 2), 200);
      assert.equal(await post("/t/fails", "{}", 3), 500);
      const answer = async (path: string, n: number) => {
        const res = await fetch(server.url + path, {
          method: "POST",
          body: "{}",
          headers: { traceparent: traceparent(n), tracestate: "vendor=a:b" },
        });
        assert.equal(res.status, 200);
        return await res.json();
      };
      seen = await answer("/t/context", 5);
      seenInBatch = await answer("/t/batched-context", 6);
      const health = await fetch(`${server.url}/healthz`, { headers: { traceparent: traceparent(4) } });
      await health.body?.cancel();
      await server.waitFor((r) => r.msg === "request" && r.api === "fails");
    } finally {
      // Stopping the server flushes its spans.
      await server[Symbol.asyncDispose]();
    }

    const trees = (n: number) => sink.spans.filter((s) => s.traceId === `${TRACE.slice(0, -1)}${n}`);
    const childrenOf = (spans: Span[], parent: Span) => spans.filter((s) => s.parentSpanId === parent.spanId);

    // A plain prediction: the request span continues the caller's, named by route, with two children.
    const plain = trees(1);
    const request = plain.find((s) => s.parentSpanId === PARENT);
    assert.ok(request, `no span continues the traceparent: ${JSON.stringify(plain.map((s) => s.name))}`);
    assert.equal(request.name, "POST /t/plain");
    assert.equal(request.attributes["http.route"], "/t/plain");
    assert.equal(request.attributes["cortex.api"], "plain");
    const [queue, predict] = ["queue", "predict"].map((name) =>
      childrenOf(plain, request).find((s) => s.name === name)
    );
    assert.ok(queue && predict, JSON.stringify(plain.map((s) => s.name)));
    assert.equal(queue.scope, "cortex-serve");
    assert.ok(queue.start >= request.start && queue.end <= predict.start + 1000n, "queue before predict");
    assert.ok(predict.end <= request.end, "predict within the request");
    assert.equal(predict.attributes["cortex.api"], "plain");
    assert.equal(predict.attributes["cortex.answer"], "body");

    // Server-side batching: predict runs inside a batch span that knows the batch's size.
    const batched = trees(2);
    const batchRequest = batched.find((s) => s.parentSpanId === PARENT)!;
    assert.equal(batchRequest.name, "POST /t/batched");
    const batch = childrenOf(batched, batchRequest).find((s) => s.name === "batch");
    assert.ok(batch, JSON.stringify(batched.map((s) => s.name)));
    assert.equal(Number(batch.attributes["cortex.batch.size"]), 1);
    assert.ok(childrenOf(batched, batch).some((s) => s.name === "predict"));
    assert.ok(childrenOf(batched, batchRequest).some((s) => s.name === "queue"));

    // A failed prediction: an error status with the error's code.
    const failed = trees(3);
    const failedRequest = failed.find((s) => s.parentSpanId === PARENT)!;
    const failedPredict = childrenOf(failed, failedRequest).find((s) => s.name === "predict");
    assert.ok(failedPredict);
    assert.equal(failedPredict.status.code, 2);
    assert.match(failedPredict.status.message ?? "", /broken on purpose/);
    assert.equal(failedPredict.attributes["cortex.error.code"], "PREDICT_FAILED");

    // User code saw the trace context of its request's predict span, in the hooks and in predict.
    const context = trees(5);
    const contextRequest = context.find((s) => s.parentSpanId === PARENT)!;
    const contextPredict = childrenOf(context, contextRequest).find((s) => s.name === "predict");
    assert.ok(contextPredict, JSON.stringify(context.map((s) => s.name)));
    const expected = `00-${TRACE.slice(0, -1)}5-${contextPredict.spanId}-01`;
    // The runtime's request span does not carry an incoming tracestate (Deno 2.9): there is none to pass on.
    assert.deepEqual(seen, [expected, { traceparent: expected }, false, expected]);
    const contextQueue = childrenOf(context, contextRequest).find((s) => s.name === "queue")!;
    assert.ok(contextQueue.end <= contextPredict.start, "queue ends when the predict span starts");
    // A batch's predict serves several traces: it gets each request's, none as its own.
    const inBatch = trees(6);
    const inBatchRequest = inBatch.find((s) => s.parentSpanId === PARENT)!;
    const inBatchBatch = childrenOf(inBatch, inBatchRequest).find((s) => s.name === "batch");
    assert.ok(inBatchBatch, JSON.stringify(inBatch.map((s) => s.name)));
    const inBatchPredict = childrenOf(inBatch, inBatchBatch).find((s) => s.name === "predict")!;
    assert.deepEqual(seenInBatch, [null, [`00-${TRACE.slice(0, -1)}6-${inBatchPredict.spanId}-01`]]);

    // Routed requests are named by their route too.
    const probe = trees(4).find((s) => s.parentSpanId === PARENT);
    assert.equal(probe?.name, "GET /healthz");

    // The request's log line carries its trace and span.
    const line = server.lines.map((l) => JSON.parse(l)).find((r) => r.msg === "request" && r.api === "plain");
    assert.equal(line.trace_id, `${TRACE.slice(0, -1)}1`);
    assert.equal(line.span_id, request.spanId);
  } finally {
    await sink.server.shutdown();
  }
});

const REALTIME_FILES = {
  "cortex.yaml": `- name: single
  kind: RealtimeAPI
  predictor:
    type: python
    path: predictor.py
- name: batched
  kind: RealtimeAPI
  predictor:
    type: python
    path: batched.py
    server_side_batching:
      max_batch_size: 3
      batch_interval: 100ms
`,
  "predictor.py": `import cortex_serve_trace

class PythonPredictor:
    def __init__(self, config):
        pass

    def predict(self, payload):
        return {"traceparent": cortex_serve_trace.traceparent()}
`,
  "batched.py": `import cortex_serve_trace

class PythonPredictor:
    def __init__(self, config):
        pass

    def predict(self, payload):
        return [{"in_batch": cortex_serve_trace.traceparents()} for p in payload]
`,
};

Deno.test("tracing: a Cortex 0.30 PythonPredictor sees its predict span's context, alone and in a batch", async () => {
  const sink = startSink();
  try {
    await using project = await makeProject(REALTIME_FILES);
    const server = await startServer(project.path, {
      env: {
        OTEL_DENO: "true",
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
        OTEL_EXPORTER_OTLP_ENDPOINT: sink.url,
        OTEL_DENO_CONSOLE: "ignore",
      },
    });
    const trace = (n: number) => `${TRACE.slice(0, -2)}${n}`;
    let single: Json;
    let batched: Json[];
    try {
      const post = async (path: string, body: string, n: number) => {
        const res = await fetch(server.url + path, {
          method: "POST",
          body,
          headers: { traceparent: `00-${trace(n)}-${PARENT}-01`, "content-type": "application/json" },
        });
        assert.equal(res.status, 200, path);
        return await res.json();
      };
      single = await post("/single", "{}", 10);
      // One of them does not parse: the others' contexts are what predict's list holds.
      const bad = fetch(`${server.url}/batched`, {
        method: "POST",
        body: "{bad",
        headers: { "content-type": "application/json" },
      });
      batched = await Promise.all([post("/batched", "1", 11), post("/batched", "2", 12)]);
      assert.equal((await bad).status, 400);
      await (await bad).body?.cancel();
    } finally {
      await server[Symbol.asyncDispose]();
    }
    const predictOf = (n: number) => {
      const spans = sink.spans.filter((s) => s.traceId === trace(n));
      const predict = spans.find((s) => s.name === "predict");
      assert.ok(predict, JSON.stringify(spans.map((s) => s.name)));
      return `00-${trace(n)}-${predict.spanId}-01`;
    };
    assert.deepEqual(single, { traceparent: predictOf(10) });
    for (const [i, n] of [11, 12].entries()) {
      const inBatch: string[] = batched[i].in_batch;
      assert.ok(inBatch.includes(predictOf(n)), JSON.stringify(inBatch));
      // Never the unparsable request's, whether or not it was in the same batch.
      const ours = [predictOf(11), predictOf(12)];
      assert.ok(inBatch.every((parent) => ours.includes(parent)), JSON.stringify(inBatch));
    }
  } finally {
    await sink.server.shutdown();
  }
});

Deno.test("tracing: off without OTEL_DENO, nothing instrumented", async () => {
  assert.equal(Deno.env.get("OTEL_DENO"), undefined, "run the tests without OTEL_DENO");
  assert.equal(tracingEnabled(), false);
  await using project = await makeProject(FILES);
  const config = await loadProjectConfig(project.path);
  const logger = new Logger({ sink: () => {} });
  const pools = new Map(config.apis.map((api) => [
    api.name,
    new ApiPool({ api: api.name, queuePerReplica: 1, maxReplicas: 1, predictTimeoutMs: 1000, logger }),
  ]));
  const { app } = createApp({ project: config, pools, maxBodyBytes: 1024, debug: false, logger });
  for (const pool of pools.values()) assert.ok(!Object.hasOwn(pool, "submit"), "submit left as it is");
  assert.ok(!Object.hasOwn(logger, "log"), "logger left as it is");
  assert.equal(
    app.routes.filter((r) => r.method === "ALL" && r.path === "/*").length,
    1,
    "no tracing middleware",
  );
});
