/**
 * Server-side batching through a real server and real workers: each
 * response answers its own request, batches leave when full or when their
 * interval ends, and each way a batch can fail costs exactly that batch.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "./_cli.ts";
import {
  delay,
  makeProject,
  post,
  PYTHON,
  ROOT,
  type ServerProcess,
  singleApiConfig,
  startServer,
} from "./_helpers.ts";

/**
 * A batched predict. Each sample is {"id": ..., "mode": ...}; the first
 * sample with a mode decides how the whole call behaves. The hooks mark each
 * sample and each prediction, so the test sees they ran once per request.
 */
const INFERENCE = `import os, time

def pre_inference(sample, metadata):
    return dict(sample, pre=sample.get("pre", 0) + 1)

def predict(samples, metadata):
    assert isinstance(samples, list), "predict got %r" % type(samples)
    modes = [s.get("mode") for s in samples if s.get("mode")]
    mode = modes[0] if modes else None
    if mode == "raise":
        raise ValueError("boom in a batch of %d" % len(samples))
    if mode == "short":
        return [s["id"] for s in samples[1:]]
    if mode == "dict":
        return {"ids": [s["id"] for s in samples]}
    if mode == "crash":
        os._exit(3)
    if mode == "sleep":
        time.sleep(5)
    out = [{"id": s["id"], "batch": len(samples), "pre": s["pre"]} for s in samples]
    if mode == "unserialisable":
        out = [object() if s.get("mode") else o for s, o in zip(samples, out)]
    return out

def post_inference(prediction, metadata):
    if not isinstance(prediction, dict):
        return prediction
    if prediction["id"] == "post-raise":
        raise KeyError("post_inference of one prediction")
    return dict(prediction, post=prediction.get("post", 0) + 1)
`;

function batchingConfig(maxBatchSize: number, interval: string): string {
  return singleApiConfig(
    `  server_side_batching:\n    max_batch_size: ${maxBatchSize}\n    batch_interval: ${interval}\n`,
  );
}

/** A parsed JSON body, as loosely typed as `Response.json()` gives it. */
type Body = Awaited<ReturnType<Response["json"]>>;

async function postAll(url: string, samples: unknown[]): Promise<{ status: number; body: Body }[]> {
  return await Promise.all(samples.map(async (sample) => {
    const res = await post(url, sample);
    return { status: res.status, body: await res.json() };
  }));
}

/** The first `count` request log records, once they were written. */
async function requestLines(server: ServerProcess, count: number): Promise<Record<string, unknown>[]> {
  for (let i = 0; i < 100; i++) {
    const records = server.lines.filter((line) => line.startsWith("{")).map((line) => JSON.parse(line))
      .filter((r) => r.msg === "request");
    if (records.length >= count) return records.slice(0, count);
    await delay(20);
  }
  throw new Error(`fewer than ${count} request lines in:\n${server.lines.join("\n")}`);
}

/** Waits until the API answers a plain request again (after a worker restart). */
async function healthy(server: ServerProcess): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const res = await fetch(`${server.url}/healthz`);
    await res.body?.cancel();
    if (res.status === 200) return;
    await delay(50);
  }
  throw new Error("the api did not come back");
}

Deno.test("server-side batching through a real worker", async (t) => {
  await using project = await makeProject({
    "cortex.yaml": batchingConfig(4, "2s"),
    "inference.py": INFERENCE,
  });
  await using server = await startServer(project.path);
  const api = `${server.url}/test/api`;

  await t.step("every response answers its own request; hooks run once per sample", async () => {
    const ids = Array.from({ length: 16 }, (_, i) => `req-${i}-${crypto.randomUUID()}`);
    const answers = await postAll(api, ids.map((id) => ({ id })));
    answers.forEach((answer, i) => {
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      assert.deepEqual(answer.body, { id: ids[i], batch: 4, pre: 1, post: 1 });
    });
    const logged = await requestLines(server, 16);
    assert.ok(logged.every((r) => r.batch_size === 4 && r.status === 200), JSON.stringify(logged[0]));
  });

  await t.step("a full batch leaves at once", async () => {
    const started = performance.now();
    const answers = await postAll(api, [{ id: "a" }, { id: "b" }, { id: "c" }, { id: "d" }]);
    const ms = performance.now() - started;
    assert.deepEqual(answers.map((a) => a.body.batch), [4, 4, 4, 4]);
    assert.ok(ms < 1500, `a full batch waited ${ms} ms of its 2 s interval`);
  });

  await t.step("a partial batch leaves once the interval since its first request has passed", async () => {
    const started = performance.now();
    const answers = await postAll(api, [{ id: "x" }, { id: "y" }]);
    const ms = performance.now() - started;
    assert.deepEqual(answers.map((a) => [a.status, a.body.id, a.body.batch]), [[200, "x", 2], [200, "y", 2]]);
    assert.ok(ms >= 1900 && ms < 4000, `a partial batch left after ${ms} ms (interval 2 s)`);
  });

  /** Sends one full batch whose first sample has `mode`; returns the answers. */
  const failing = (mode: string) => postAll(api, [{ id: "1", mode }, { id: "2" }, { id: "3" }, { id: "4" }]);
  const thenOk = async () => {
    const answers = await postAll(api, [{ id: "5" }, { id: "6" }, { id: "7" }, { id: "8" }]);
    assert.deepEqual(answers.map((a) => a.status), [200, 200, 200, 200], "the next batch is served");
  };

  await t.step("a raise fails every request of the batch with 500 and the exception", async () => {
    for (const answer of await failing("raise")) {
      assert.equal(answer.status, 500);
      assert.equal(answer.body.error, "ValueError: boom in a batch of 4");
    }
    await thenOk();
  });

  await t.step("a list of the wrong length fails the batch, saying so", async () => {
    for (const answer of await failing("short")) {
      assert.equal(answer.status, 500);
      assert.match(answer.body.error, /^predict returned 3 items for a batch of 4/);
    }
    await thenOk();
  });

  await t.step("a return that is not a list fails the batch, saying so", async () => {
    for (const answer of await failing("dict")) {
      assert.equal(answer.status, 500);
      assert.match(
        answer.body.error,
        /^predict returned builtins\.dict for a batch of 4: .*must return a list/,
      );
    }
    await thenOk();
  });

  await t.step("one unserialisable prediction fails its own request only", async () => {
    const answers = await failing("unserialisable");
    assert.deepEqual(answers.map((a) => a.status), [500, 200, 200, 200]);
    assert.match(answers[0]!.body.error, /cannot serialize the prediction: .*builtins\.object/);
    assert.deepEqual(answers.slice(1).map((a) => a.body.id), ["2", "3", "4"]);
  });

  await t.step("post_inference raising on one prediction fails that request only", async () => {
    const answers = await postAll(api, [{ id: "1" }, { id: "post-raise" }, { id: "3" }, { id: "4" }]);
    assert.deepEqual(answers.map((a) => a.status), [200, 500, 200, 200]);
    assert.equal(answers[1]!.body.error, "KeyError: 'post_inference of one prediction'");
  });

  await t.step("a crash fails every request of the batch with 502; the next batch is served", async () => {
    for (const answer of await failing("crash")) {
      assert.equal(answer.status, 502);
      assert.match(answer.body.error, /stopped during the request \(worker exited with code 3\)/);
    }
    await healthy(server);
    await thenOk();
  });

  await t.step("GET / and GET <endpoint> show the batching settings; /metrics counts batches", async () => {
    const index = await (await fetch(`${server.url}/`)).json();
    assert.deepEqual(index.apis[0].batching, { max_batch_size: 4, batch_interval_ms: 2000 });
    const described = await (await fetch(api)).json();
    assert.deepEqual(described.batching, { max_batch_size: 4, batch_interval_ms: 2000 });
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    const count = /^cortex_serve_batch_size_count\{api="api"\} (\d+)$/m.exec(metrics);
    assert.ok(count !== null, metrics);
    // 4 + 1 full batches, one partial (2), 6 failing batches and 4 that followed them.
    assert.equal(Number(count[1]), 16);
    assert.match(metrics, /^cortex_serve_batch_size_bucket\{le="2",api="api"\} 1$/m);
    assert.match(metrics, /^cortex_serve_batch_size_sum\{api="api"\} 62$/m);
  });
});

Deno.test("--predict-timeout bounds a batch's predict: every request of it gets 504", async () => {
  await using project = await makeProject({
    "cortex.yaml": batchingConfig(8, "100ms"),
    "inference.py": INFERENCE,
  });
  await using server = await startServer(project.path, { args: ["--predict-timeout=1s"] });
  const api = `${server.url}/test/api`;
  const started = performance.now();
  const answers = await postAll(api, [{ id: "1", mode: "sleep" }, { id: "2" }, { id: "3" }]);
  const ms = performance.now() - started;
  for (const answer of answers) {
    assert.equal(answer.status, 504, JSON.stringify(answer.body));
    assert.match(answer.body.error, /did not finish within --predict-timeout/);
  }
  assert.ok(ms >= 1000 && ms < 3000, `answered after ${ms} ms`);
  await healthy(server);
  const after = await postAll(api, [{ id: "4" }]);
  assert.deepEqual(after.map((a) => [a.status, a.body.batch]), [[200, 1]]);
});

Deno.test("without server_side_batching, predict still receives one sample", async () => {
  await using project = await makeProject({
    "inference.py": "def predict(sample, metadata):\n    return [type(sample).__name__, sample]\n",
  });
  await using server = await startServer(project.path);
  const answers = await postAll(`${server.url}/test/api`, [{ a: 1 }, { a: 2 }]);
  assert.deepEqual(answers.map((a) => a.body), [["dict", { a: 1 }], ["dict", { a: 2 }]]);
  const index = await (await fetch(`${server.url}/`)).json();
  assert.equal(index.apis[0].batching, null);
  const logged = await requestLines(server, 2);
  assert.ok(logged.every((r) => !("batch_size" in r)));
});

Deno.test("examples/iris-batch classifies concurrent requests, each with its own answer", async () => {
  await using server = await startServer(join(ROOT, "examples", "iris-batch"));
  const flowers: [number[], string][] = [
    [[5.1, 3.5, 1.4, 0.2], "iris-setosa"],
    [[6.6, 2.9, 4.6, 1.3], "iris-versicolor"],
    [[7.7, 2.6, 6.9, 2.3], "iris-virginica"],
    [[4.9, 3.0, 1.4, 0.2], "iris-setosa"],
    [[6.7, 3.1, 4.4, 1.4], "iris-versicolor"],
    [[6.9, 3.2, 5.7, 2.3], "iris-virginica"],
  ];
  const samples = [...flowers, ...flowers.toReversed()].map(([[a, b, c, d]]) => ({
    sepal_length: a,
    sepal_width: b,
    petal_length: c,
    petal_width: d,
  }));
  const answers = await postAll(`${server.url}/iris-batch/classifier`, samples);
  assert.deepEqual(
    answers.map((a) => a.body),
    [...flowers, ...flowers.toReversed()].map(([, label]) => label),
  );
  const sample = JSON.parse(await Deno.readTextFile(join(ROOT, "examples", "iris-batch", "sample.json")));
  assert.deepEqual((await postAll(`${server.url}/iris-batch/classifier`, [sample]))[0], {
    status: 200,
    body: "iris-setosa",
  });
  const logged = await requestLines(server, 13);
  assert.ok(logged.every((r) => typeof r.batch_size === "number" && r.batch_size >= 1));
  const get = await runCli(["get", `--url=${server.url}`]);
  assert.equal(get.code, 0, get.stderr);
  assert.match(
    get.stdout,
    /\n\nclassifier: server-side batching, up to 32 requests per predict call, waiting at most 5 ms for a batch to fill\n$/,
  );
});

Deno.test("validate passes examples/iris-batch and prints its batching", async () => {
  const validated = await runCli(["validate", "examples/iris-batch", `--python=${PYTHON}`]);
  assert.equal(validated.code, 0, validated.stderr);
  assert.match(
    validated.stdout,
    /^ok: deployment iris-batch: classifier \(\/iris-batch\/classifier, batches of up to 32 within 5 ms\); /,
  );
});

Deno.test("validate lists server_side_batching mistakes with their lines", async () => {
  await using project = await makeProject({
    "cortex.yaml": singleApiConfig(
      "  server_side_batching:\n    max_batch_size: 1\n    batch_interval: 20\n",
    ),
    "inference.py": INFERENCE,
  });
  const validated = await runCli(["validate", project.path, `--python=${PYTHON}`]);
  assert.equal(validated.code, 1);
  assert.match(
    validated.stderr,
    /^cortex\.yaml:8:21: api "api": server_side_batching\.max_batch_size: must be a whole number from 2 to 1024, got 1 /m,
  );
  assert.match(
    validated.stderr,
    /^cortex\.yaml:9:21: api "api": server_side_batching\.batch_interval: must be a duration with its unit, got 20 \(fix: write the unit, such as "20s" or "20ms"\)$/m,
  );
});

Deno.test("a batch_interval not shorter than --queue-timeout is warned about at startup", async () => {
  await using project = await makeProject({
    "cortex.yaml": batchingConfig(8, "2s"),
    "inference.py": INFERENCE,
  });
  await using server = await startServer(project.path, { args: ["--queue-timeout=1s"] });
  const warning = await server.waitFor((r) =>
    String(r.msg).startsWith("server_side_batching.batch_interval")
  );
  assert.equal(warning.level, "warn");
  assert.equal(warning.batch_interval_ms, 2000);
  assert.equal(warning.queue_timeout_ms, 1000);
});

Deno.test("a Cortex 0.13 PythonPredictor with predictor.server_side_batching gets a list", async () => {
  await using project = await makeProject({
    "cortex.yaml": [
      "- name: fare",
      "  predictor:",
      "    type: python",
      "    path: predictor.py",
      "    server_side_batching: {max_batch_size: 3, batch_interval: 10s}",
      "",
    ].join("\n"),
    "predictor.py": `class PythonPredictor:
    def __init__(self, config):
        pass

    def predict(self, payload):
        return [{"miles": p["miles"], "fare": p["miles"] * 2, "batch": len(payload)} for p in payload]
`,
  });
  await using server = await startServer(project.path);
  const answers = await postAll(`${server.url}/fare`, [{ miles: 1 }, { miles: 2 }, { miles: 3 }]);
  assert.deepEqual(answers.map((a) => a.body), [
    { miles: 1, fare: 2, batch: 3 },
    { miles: 2, fare: 4, batch: 3 },
    { miles: 3, fare: 6, batch: 3 },
  ]);
});
