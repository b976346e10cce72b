/**
 * The vertical slice through real boundaries: a real server process, real
 * Python workers, real HTTP on 127.0.0.1.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { assertNoWorkersLeft, makeProject, post, ROOT, singleApiConfig, startServer } from "./_helpers.ts";

const IRIS = join(ROOT, "examples", "iris-classifier");
const SETOSA = { sepal_length: 5.2, sepal_width: 3.6, petal_length: 1.4, petal_width: 0.3 };

Deno.test("the iris example answers iris-setosa over HTTP", async () => {
  let stateDir = "";
  {
    await using server = await startServer(IRIS);
    stateDir = server.stateDir;
    const res = await post(`${server.url}/iris/classifier`, SETOSA, { "x-request-id": "abc-123" });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "application/json");
    assert.equal(res.headers.get("x-request-id"), "abc-123");
    assert.equal(await res.json(), "iris-setosa");

    const sample = await Deno.readTextFile(join(IRIS, "sample.json"));
    const again = await fetch(`${server.url}/iris/classifier`, { method: "POST", body: sample });
    assert.equal(await again.json(), "iris-setosa");
    assert.match(again.headers.get("x-request-id") ?? "", /^[0-9a-f-]{36}$/);

    const ready = await server.waitFor((r) => r.msg === "api ready");
    assert.equal(ready.url, `${server.url}/iris/classifier`);
    const loaded = await server.waitFor((r) => String(r.msg).startsWith("loaded model from"));
    assert.equal(loaded.api, "classifier");
    assert.equal(loaded.replica, 0);
  }
  await assertNoWorkersLeft(stateDir);
});

Deno.test("status routes: /healthz, /livez, / and GET on an endpoint", async () => {
  await using server = await startServer(IRIS);
  const health = await fetch(`${server.url}/healthz`);
  assert.deepEqual([health.status, await health.json()], [200, { ok: true }]);
  const live = await fetch(`${server.url}/livez`);
  assert.deepEqual([live.status, await live.json()], [200, { ok: true }]);
  const index = await (await fetch(`${server.url}/`)).json();
  assert.equal(index.deployment, "iris");
  assert.equal(index.apis[0].name, "classifier");
  assert.equal(index.apis[0].endpoint, "/iris/classifier");
  assert.equal(index.apis[0].status, "ready");
  assert.equal(index.apis[0].replicas.ready, 1);
  const describe = await (await fetch(`${server.url}/iris/classifier`)).json();
  assert.equal(describe.api, "classifier");
  assert.match(describe.usage, /POST a JSON sample/);
});

Deno.test("bad requests: 400 malformed or empty, 404, 405, 413", async () => {
  await using server = await startServer(IRIS, { args: ["--max-body=1Ki"] });
  const api = `${server.url}/iris/classifier`;

  const malformed = await post(api, '{"sepal_length": 5.2,');
  assert.equal(malformed.status, 400);
  const body = await malformed.json();
  assert.match(body.error, /not valid JSON: Expecting .*line 1 column/);
  assert.equal(body.api, "classifier");
  assert.equal(body.request_id, malformed.headers.get("x-request-id"));

  const empty = await fetch(api, { method: "POST" });
  assert.equal(empty.status, 400);
  assert.match((await empty.json()).error, /empty/);

  const missing = await fetch(`${server.url}/iris/nothing`);
  assert.equal(missing.status, 404);
  assert.match((await missing.json()).error, /No route for GET \/iris\/nothing/);

  const wrong = await fetch(api, { method: "PUT", body: "{}" });
  assert.equal(wrong.status, 405);
  assert.equal(wrong.headers.get("allow"), "GET, POST");
  await wrong.body?.cancel();

  const big = await post(api, JSON.stringify({ x: "a".repeat(2000) }));
  assert.equal(big.status, 413);
  assert.match((await big.json()).error, /over the limit of 1024 bytes \(--max-body\)/);
});

const FAULTY = `
import numpy as np
import datetime, decimal
print("global scope prints")

def init(metadata):
    print("init prints")

def predict(sample, metadata):
    print("predict prints", sample)
    kind = sample["kind"]
    if kind == "raise":
        raise ValueError("bad sample " + str(sample.get("n")))
    if kind == "numpy":
        return {"array": np.arange(3, dtype=np.int64) * 2, "scalar": np.float32(0.5), "matrix": np.eye(2)}
    if kind == "odd":
        return {
            "set": {3, 1, 2},
            "tuple": (1, "a"),
            "bytes": b"hi",
            "date": datetime.date(2024, 1, 2),
            "when": datetime.datetime(2024, 1, 2, 3, 4, 5),
            "decimal": decimal.Decimal("1.5"),
            "nan": float("nan"),
            "inf": [float("inf"), -float("inf"), np.nan],
        }
    if kind == "object":
        return object()
    return sample
`;

Deno.test("predict errors cost one request; prints never break the protocol; values serialize", async () => {
  await using project = await makeProject({ "inference.py": FAULTY });
  await using server = await startServer(project.path);
  const api = `${server.url}/test/api`;

  const failed = await post(api, { kind: "raise", n: 7 });
  assert.equal(failed.status, 500);
  const error = await failed.json();
  assert.equal(error.error, "ValueError: bad sample 7");
  assert.equal(error.traceback, undefined, "no traceback without --debug");

  const ok = await post(api, { kind: "echo", n: 1 });
  assert.equal(ok.status, 200);
  assert.deepEqual(await ok.json(), { kind: "echo", n: 1 });

  const numpy = await post(api, { kind: "numpy" });
  assert.deepEqual(await numpy.json(), { array: [0, 2, 4], scalar: 0.5, matrix: [[1, 0], [0, 1]] });

  const odd = await post(api, { kind: "odd" });
  assert.deepEqual(await odd.json(), {
    set: [1, 2, 3],
    tuple: [1, "a"],
    bytes: "aGk=",
    date: "2024-01-02",
    when: "2024-01-02T03:04:05",
    decimal: 1.5,
    nan: null,
    inf: [null, null, null],
  });

  const object = await post(api, { kind: "object" });
  assert.equal(object.status, 500);
  assert.match((await object.json()).error, /cannot serialize the prediction: .*type builtins\.object/);

  for (const text of ["global scope prints", "init prints", "predict prints {'kind': 'echo', 'n': 1}"]) {
    const line = await server.waitFor((r) => r.msg === text);
    assert.equal(line.stream, "python");
  }
  const last = await post(api, { kind: "echo" });
  assert.equal(last.status, 200);
  await last.body?.cancel();
});

const OVERLAP = `
import os, time
LOG = os.path.join(os.environ["CORTEX_PROJECT_DIR"], "..", "intervals.log")

def predict(sample, metadata):
    start = time.monotonic()
    time.sleep(0.03)
    with open(LOG, "a") as f:
        f.write("%f %f\\n" % (start, time.monotonic()))
    return sample["i"]
`;

Deno.test("one replica runs one request at a time; a full queue answers 503", async () => {
  await using project = await makeProject({ "inference.py": OVERLAP });
  await using server = await startServer(project.path, { args: ["--queue=4"] });
  const api = `${server.url}/test/api`;

  const answers = await Promise.all(Array.from({ length: 5 }, (_, i) => post(api, { i })));
  assert.deepEqual(answers.map((r) => r.status), [200, 200, 200, 200, 200]);
  assert.deepEqual((await Promise.all(answers.map((r) => r.json()))).sort(), [0, 1, 2, 3, 4]);

  const found = await findIntervals(server.stateDir);
  const intervals = found.trim().split("\n").map((l) => l.split(" ").map(Number) as [number, number])
    .sort((a, b) => a[0] - b[0]);
  assert.equal(intervals.length, 5);
  for (let i = 1; i < intervals.length; i++) {
    assert.ok(
      intervals[i]![0] >= intervals[i - 1]![1],
      `predict calls overlapped: ${JSON.stringify(intervals)}`,
    );
  }

  // One running + 4 queued fill the replica; the rest are refused at once.
  const burst = await Promise.all(Array.from({ length: 12 }, (_, i) => post(api, { i })));
  const statuses = burst.map((r) => r.status);
  const refused = burst.filter((r) => r.status === 503);
  assert.ok(refused.length >= 6, `expected 503s, got ${statuses}`);
  assert.equal(statuses.filter((s) => s === 200).length + refused.length, 12);
  assert.equal(refused[0]!.headers.get("retry-after"), "1");
  assert.match((await refused[0]!.json()).error, /at capacity: 4 requests are already waiting/);
  await Promise.all(burst.filter((r) => !r.bodyUsed).map((r) => r.body?.cancel()));
});

async function findIntervals(stateDir: string): Promise<string> {
  for await (const entry of Deno.readDir(join(stateDir, "projects"))) {
    const path = join(stateDir, "projects", entry.name, "intervals.log");
    const text = await Deno.readTextFile(path).catch(() => "");
    if (text) return text;
  }
  return "";
}

Deno.test("python errors at start are reported; --debug adds tracebacks to error bodies", async () => {
  await using project = await makeProject({
    "cortex.yaml": singleApiConfig(),
    "inference.py": "def predict(sample, metadata):\n    return 1 / 0\n",
  });
  await using server = await startServer(project.path, { args: ["--debug"] });
  const res = await post(`${server.url}/test/api`, {});
  assert.equal(res.status, 500);
  const body = await res.json();
  assert.equal(body.error, "ZeroDivisionError: division by zero");
  assert.match(body.traceback, /Traceback \(most recent call last\)/);
});

Deno.test("the queue holds --queue requests per replica", async () => {
  await using project = await makeProject({
    "cortex.yaml": singleApiConfig("  compute:\n    min_replicas: 2\n"),
    "inference.py": "import time\n\ndef predict(sample, metadata):\n    time.sleep(0.5)\n    return sample\n",
  });
  await using server = await startServer(project.path, { args: ["--queue=2"], replicas: 2 });
  const api = `${server.url}/test/api`;
  const burst = await Promise.all(Array.from({ length: 10 }, (_, i) => post(api, { i })));
  const statuses = burst.map((r) => r.status).sort();
  // Two running and 2 × 2 waiting are accepted; the rest are refused at once.
  assert.deepEqual(statuses, [200, 200, 200, 200, 200, 200, 503, 503, 503, 503]);
  await Promise.all(burst.map((r) => r.body?.cancel()));
});

Deno.test("compute.cpu is accepted and the log says it is not enforced", async () => {
  await using project = await makeProject({
    "cortex.yaml": singleApiConfig("  compute:\n    cpu: 500m\n"),
    "inference.py": "def predict(sample, metadata):\n    return 1\n",
  });
  await using server = await startServer(project.path);
  const line = await server.waitFor((r) => String(r.msg).startsWith("compute.cpu is not enforced"));
  assert.equal(line.api, "api");
  assert.equal(line.cpu, 0.5);
});

Deno.test("a body the worker cannot parse is a 400 and costs no worker: deep nesting, bad UTF-8", async () => {
  await using project = await makeProject({
    "inference.py": "import os\n\ndef predict(sample, metadata):\n    return os.getpid()\n",
    "cortex.yaml": singleApiConfig(),
  });
  await using server = await startServer(project.path);
  const api = `${server.url}/test/api`;
  const pid = await (await post(api, "{}")).json();

  const deep = await post(api, "[".repeat(200_000));
  assert.equal(deep.status, 400);
  assert.match((await deep.json()).error, /not valid JSON: it nests too deeply to parse/);
  const unterminated = await post(api, "[".repeat(500));
  assert.equal(unterminated.status, 400);
  assert.match((await unterminated.json()).error, /not valid JSON: Expecting value/);
  const latin1 = await fetch(api, { method: "POST", body: new Uint8Array([0x22, 0xe9, 0x22]) });
  assert.equal(latin1.status, 400);
  assert.match((await latin1.json()).error, /not valid JSON: .*utf-8/i);
  const blank = await post(api, " \n\t");
  assert.equal(blank.status, 400);
  assert.match((await blank.json()).error, /empty/);

  assert.equal(await (await post(api, "{}")).json(), pid);
  assert.ok(!server.lines.some((line) => line.includes("worker stopped; restarting")));
});
