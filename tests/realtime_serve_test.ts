/**
 * Projects written the way Cortex 0.18, 0.2x and 0.3x documented them serve
 * unchanged through a real server and real workers: the payload by
 * Content-Type (JSON, text with its charset, forms with files, bytes),
 * `query_params` and `headers` by name, str/bytes/Response answers,
 * `post_predict` after the answer, a TrafficSplitter, and a multi-model API
 * that picks up a version added while it serves.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { makeProject, PYTHON, ROOT, startServer } from "./_helpers.ts";
import { runCli } from "./_cli.ts";

const CORTEX_030 = `# Cortex 0.30 (docs/workloads/realtime/configuration.md)
- name: inspector
  kind: RealtimeAPI
  predictor:
    type: python
    path: inspector.py
    config:
      release: "0.30"
    dependencies:
      pip: requirements.txt
    shm_size: 64Mi
  compute:
    cpu: 200m
  networking:
    api_gateway: public

- name: answers
  kind: RealtimeAPI
  predictor:
    type: python
    path: answers.py
  networking:
    endpoint: /v1/answers

- name: variant-a
  kind: RealtimeAPI
  predictor:
    type: python
    path: variant.py
    config: {variant: a}

- name: variant-b
  kind: RealtimeAPI
  predictor:
    type: python
    path: variant.py
    config: {variant: b}

- name: recorder
  kind: RealtimeAPI
  predictor:
    type: python
    path: recorder.py

- name: variants
  kind: TrafficSplitter
  apis:
    - name: variant-a
      weight: 50
    - name: variant-b
      weight: 50
    - name: recorder
      weight: 100
      shadow: true
`;

const RECORDER = `class PythonPredictor:
    def __init__(self, config):
        pass

    def predict(self, payload):
        print("recorded %r" % payload, flush=True)
        return "dropped"
`;

const INSPECTOR = `import os


class PythonPredictor:
    def __init__(self, config):
        self.release = config["release"]

    def predict(self, payload, query_params, headers):
        kind = type(payload).__name__
        if kind == "FormData":
            payload = {
                key: value if isinstance(value, str) else {
                    "filename": value.filename,
                    "content_type": value.content_type,
                    "size": len(value.file.read()),
                }
                for key, value in payload.items()
            }
        elif isinstance(payload, bytes):
            payload = list(payload[:4])
        return {
            "release": self.release,
            "type": kind,
            "payload": payload,
            "query": dict(query_params),
            "header": headers.get("X-Client"),
        }

    def post_predict(self, response, payload, query_params):
        if query_params.get("fail") == "1":
            raise RuntimeError("post_predict broke")
        if query_params.get("wait") == "1":
            import time
            deadline = time.monotonic() + 20
            while not os.path.exists(query_params["gate"]) and time.monotonic() < deadline:
                time.sleep(0.01)
        print("post_predict saw %s for %s" % (response["type"], query_params.get("tag")), flush=True)
`;

const ANSWERS = `from starlette.responses import Response


class PythonPredictor:
    def __init__(self, config):
        pass

    def predict(self, payload):
        kind = payload["answer"]
        if kind == "str":
            return "plain words"
        if kind == "bytes":
            return bytes([0, 1, 2, 255])
        if kind == "response":
            return Response(content="<b>made</b>", status_code=201, media_type="text/html",
                            headers={"X-Made-By": "predictor"})
        if kind == "raise":
            raise ValueError("asked to fail")
        return {"json": [1, 2.5, None]}
`;

const VARIANT = `class PythonPredictor:
    def __init__(self, config):
        self.variant = config["variant"]

    def predict(self):
        return self.variant
`;

Deno.test("Cortex 0.30 project: payloads by Content-Type, answers by type, post_predict, splitter", async () => {
  await using project = await makeProject({
    "cortex.yaml": CORTEX_030,
    "inspector.py": INSPECTOR,
    "answers.py": ANSWERS,
    "variant.py": VARIANT,
    "recorder.py": RECORDER,
    "requirements.txt": "",
    ".cortexignore": "notes/\n",
  });
  const gate = join(project.path, "gate");
  await using server = await startServer(project.path);
  const url = server.url;

  // JSON, with query_params and headers.
  let response = await fetch(`${url}/inspector?tag=json&x=1`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-client": "tests" },
    body: JSON.stringify({ a: [1, 2] }),
  });
  assert.equal(response.status, 200);
  assert.deepEqual(await response.json(), {
    release: "0.30",
    type: "dict",
    payload: { a: [1, 2] },
    query: { tag: "json", x: "1" },
    header: "tests",
  });
  await server.waitFor((r) => String(r.msg).includes("post_predict saw dict for json"));

  // Text, its charset honoured.
  response = await fetch(`${url}/inspector?tag=text`, {
    method: "POST",
    headers: { "content-type": "text/plain; charset=latin-1" },
    body: new Uint8Array([0x63, 0x61, 0x66, 0xe9]),
  });
  assert.deepEqual((await response.json()).payload, "café");

  // Bytes: any other Content-Type, untouched (no base64, no JSON).
  response = await fetch(`${url}/inspector?tag=bytes`, {
    method: "POST",
    headers: { "content-type": "image/png" },
    body: new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0, 0, 0xff]),
  });
  assert.deepEqual((await response.json()).payload, [0x89, 0x50, 0x4e, 0x47]);

  // A multipart form with a file, and a urlencoded one.
  const form = new FormData();
  form.append("label", "cat");
  form.append("image", new Blob([new Uint8Array(1000)], { type: "image/jpeg" }), "cat.jpg");
  response = await fetch(`${url}/inspector?tag=form`, { method: "POST", body: form });
  const formAnswer = await response.json();
  assert.equal(formAnswer.type, "FormData");
  assert.deepEqual(formAnswer.payload, {
    label: "cat",
    image: { filename: "cat.jpg", content_type: "image/jpeg", size: 1000 },
  });
  response = await fetch(`${url}/inspector?tag=urlencoded`, {
    method: "POST",
    body: new URLSearchParams({ a: "1", b: "two words" }),
  });
  assert.deepEqual((await response.json()).payload, { a: "1", b: "two words" });

  // Invalid JSON is the client's fault.
  response = await fetch(`${url}/inspector`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: "{nope",
  });
  assert.equal(response.status, 400);
  assert.match((await response.json()).error, /^The request body is not valid JSON/);

  // post_predict runs after the answer: the answer does not wait for it.
  response = await fetch(`${url}/inspector?tag=late&wait=1&gate=${encodeURIComponent(gate)}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: "1",
  });
  assert.equal(response.status, 200);
  await response.body?.cancel();
  await Deno.writeTextFile(gate, "");
  await server.waitFor((r) => String(r.msg).includes("post_predict saw int for late"));
  // A raising post_predict is logged; the client still gets its answer.
  response = await fetch(`${url}/inspector?fail=1`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: "2",
  });
  assert.equal(response.status, 200);
  await response.body?.cancel();
  await server.waitFor((r) => String(r.msg).includes("post_predict raised RuntimeError: post_predict broke"));

  // Answers: str, bytes, a Starlette Response, JSON, an error.
  const ask = (answer: string) =>
    fetch(`${url}/v1/answers`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ answer }),
    });
  response = await ask("str");
  assert.equal(response.headers.get("content-type"), "text/plain; charset=utf-8");
  assert.equal(await response.text(), "plain words");
  response = await ask("bytes");
  assert.equal(response.headers.get("content-type"), "application/octet-stream");
  assert.deepEqual(new Uint8Array(await response.arrayBuffer()), new Uint8Array([0, 1, 2, 255]));
  response = await ask("response");
  assert.equal(response.status, 201);
  assert.equal(response.headers.get("content-type"), "text/html; charset=utf-8");
  assert.equal(response.headers.get("x-made-by"), "predictor");
  assert.ok(response.headers.get("x-request-id"));
  assert.equal(await response.text(), "<b>made</b>");
  response = await ask("json");
  assert.equal(response.headers.get("content-type"), "application/json");
  assert.deepEqual(await response.json(), { json: [1, 2.5, null] });
  response = await ask("raise");
  assert.equal(response.status, 500);
  await response.body?.cancel();

  // The splitter: its own endpoint, both variants reached, shown in GET /.
  const seen = new Set<string>();
  for (let i = 0; i < 200 && seen.size < 2; i++) {
    response = await fetch(`${url}/variants`, { method: "POST", body: `call ${i}` });
    assert.equal(response.status, 200);
    seen.add(await response.text());
  }
  assert.deepEqual([...seen].sort(), ["a", "b"]);
  // The shadow got a copy of each (weight 100), its answers dropped.
  await server.waitFor((r) => String(r.msg).includes("recorded 'call 0'"));
  const index = await (await fetch(`${url}/`, { headers: { accept: "application/json" } })).json();
  assert.deepEqual(index.splitters, [{
    name: "variants",
    endpoint: "/variants",
    status: "ready",
    apis: [
      { api: "variant-a", weight: 50, endpoint: "/variant-a", status: "ready" },
      { api: "variant-b", weight: 50, endpoint: "/variant-b", status: "ready" },
      { api: "recorder", weight: 100, shadow: true, endpoint: "/recorder", status: "ready" },
    ],
  }]);
  const ignored = server.lines.filter((l) => l.includes("accepted and ignored"));
  assert.equal(ignored.filter((l) => l.includes("predictor.shm_size")).length, 1, "reported once");
});

const CORTEX_018 = `# Cortex 0.18 (docs/deployments/api-configuration.md): a list without kind
- name: reverser
  predictor:
    type: python
    path: reverser.py
    processes_per_replica: 2
  networking:
    endpoint: /reverse
    api_gateway: none
`;

const REVERSER = `import os


class PythonPredictor:
    def __init__(self, config):
        pass

    def predict(self, payload, headers):
        if isinstance(payload, bytes):
            return payload[::-1]
        return {"got": payload, "greeting": os.environ.get("GREETING"), "ignored": os.path.exists("notes")}
`;

Deno.test("Cortex 0.18 project: bytes in and out, .env and .cortexignore, two processes per replica", async () => {
  await using project = await makeProject({
    "cortex.yaml": CORTEX_018,
    "reverser.py": REVERSER,
    ".env": "export GREETING='hello there'\n",
    ".cortexignore": "notes/\n",
    "notes/draft.txt": "not shipped",
  });
  await using server = await startServer(project.path, { replicas: 2 });
  let response = await fetch(`${server.url}/reverse`, {
    method: "POST",
    headers: { "content-type": "application/octet-stream" },
    body: new Uint8Array([1, 2, 3]),
  });
  assert.equal(response.status, 200);
  assert.deepEqual(new Uint8Array(await response.arrayBuffer()), new Uint8Array([3, 2, 1]));
  response = await fetch(`${server.url}/reverse`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: "[1]",
  });
  assert.deepEqual(await response.json(), { got: [1], greeting: "hello there", ignored: false });
  const index = await (await fetch(`${server.url}/`, { headers: { accept: "application/json" } })).json();
  assert.equal(index.apis[0].replicas.total, 2);
});

const CORTEX_025_MODELS = `# Cortex 0.25 (docs/workloads/realtime/models.md)
- name: models
  kind: RealtimeAPI
  predictor:
    type: python
    path: predictor.py
    multi_model_reloading:
      dir: models
      cache_size: 1
      disk_cache_size: 1
`;

const MULTI_MODEL = `import os


class PythonPredictor:
    def __init__(self, config, python_client):
        self.client = python_client

    def load_model(self, model_path):
        with open(os.path.join(model_path, "weights.txt")) as f:
            return f.read().strip()

    def predict(self, query_params):
        name = query_params["model"]
        version = query_params.get("version", "latest")
        return {"model": name, "weights": self.client.get_model(name, version)}
`;

Deno.test("Cortex 0.25 multi-model: versions, the cache, a version added while serving, metrics", async () => {
  await using project = await makeProject({
    "cortex.yaml": CORTEX_025_MODELS,
    "predictor.py": MULTI_MODEL,
    "models/iris/1/weights.txt": "iris-v1",
    "models/iris/2/weights.txt": "iris-v2",
    "models/wine/weights.txt": "wine",
  });
  await using server = await startServer(project.path);
  const ask = async (query: string) => {
    const response = await fetch(`${server.url}/models?${query}`, { method: "POST" });
    const body = await response.json();
    assert.equal(response.status, 200, JSON.stringify(body));
    return body.weights;
  };
  assert.equal(await ask("model=iris"), "iris-v2");
  assert.equal(await ask("model=iris&version=1"), "iris-v1");
  assert.equal(await ask("model=wine"), "wine");
  const missing = await fetch(`${server.url}/models?model=iris&version=7`, { method: "POST" });
  assert.equal(missing.status, 500);
  assert.match((await missing.json()).error, /has no version 7; it has 1, 2/);

  await Deno.mkdir(join(project.path, "models/iris/3"));
  await Deno.writeTextFile(join(project.path, "models/iris/3/weights.txt"), "iris-v3");
  assert.equal(await ask("model=iris"), "iris-v3");

  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  const value = (name: string, model: string) =>
    Number(new RegExp(`^${name}\\{api="models",model="${model}"\\} (\\S+)$`, "m").exec(metrics)?.[1]);
  assert.equal(value("cortex_serve_model_loads_total", "iris"), 3);
  assert.equal(value("cortex_serve_model_loads_total", "wine"), 1);
  assert.ok(value("cortex_serve_model_evictions_total", "iris") >= 2, metrics);
});

Deno.test("validate: a PythonPredictor's wrong signature names the file, the line and the fix", async () => {
  const config = "- name: api\n  kind: RealtimeAPI\n  predictor:\n    type: python\n    path: predictor.py\n";
  const check = async (source: string, extra = "") => {
    await using project = await makeProject({
      "cortex.yaml": config + extra,
      "predictor.py": source,
      "models/a/1/w.txt": "w",
    });
    return await runCli(["validate", project.path, `--python=${PYTHON}`]);
  };
  let result = await check(
    "class PythonPredictor:\n    def __init__(self, config):\n        pass\n\n" +
      "    def predict(self, payload, request):\n        return 1\n",
  );
  assert.notEqual(result.code, 0);
  assert.match(
    result.stderr,
    /predictor\.py:1: PythonPredictor\.predict has the parameter 'request', which Cortex never passes .*remove it or give it a default/,
  );
  result = await check(
    "class PythonPredictor:\n    def __init__(self, config, python_client):\n        pass\n\n" +
      "    def predict(self, payload):\n        return 1\n",
    "    multi_model_reloading:\n      dir: models\n",
  );
  assert.notEqual(result.code, 0);
  assert.match(result.stderr, /needs PythonPredictor\.load_model\(self, model_path\)/);
});

const CORTEX_035 = `# Cortex 0.35 (docs/workloads/realtime/configuration.md): handler, class Handler
- name: greeter
  kind: RealtimeAPI
  handler:
    type: python
    path: handler.py
    config:
      greeting: hello
  networking:
    endpoint: /greet
`;

const HANDLER = `class Handler:
    def __init__(self, config):
        self.greeting = config["greeting"]

    def handle_post(self, payload, query_params):
        def callback():
            print("callback after %s" % payload, flush=True)

        if query_params.get("broken") == "1":
            def callback():
                raise RuntimeError("callback broke")

        return "%s %s" % (self.greeting, payload), callback

    def handle_get(self):
        return "never served"
`;

Deno.test("Cortex 0.35 project: handler:, class Handler, handle_post's callback after the answer", async () => {
  await using project = await makeProject({ "cortex.yaml": CORTEX_035, "handler.py": HANDLER });
  await using server = await startServer(project.path);
  await server.waitFor((r) => String(r.msg).includes("Handler.handle_get is not served"));
  let response = await fetch(`${server.url}/greet`, {
    method: "POST",
    headers: { "content-type": "text/plain" },
    body: "world",
  });
  assert.equal(await response.text(), "hello world");
  await server.waitFor((r) => String(r.msg).includes("callback after world"));
  response = await fetch(`${server.url}/greet?broken=1`, {
    method: "POST",
    headers: { "content-type": "text/plain" },
    body: "again",
  });
  assert.equal(response.status, 200);
  assert.equal(await response.text(), "hello again");
  await server.waitFor((r) => String(r.msg).includes("the callback of handle_post raised RuntimeError"));
});

Deno.test("Cortex 0.30 server_side_batching: predict gets lists, each request its own typed answer", async () => {
  await using project = await makeProject({
    "cortex.yaml": `- name: batched
  kind: RealtimeAPI
  predictor:
    type: python
    path: batched.py
    server_side_batching:
      max_batch_size: 4
      batch_interval: 200ms
`,
    "batched.py": `class PythonPredictor:
    def __init__(self, config):
        pass

    def predict(self, payload, headers):
        assert isinstance(payload, list) and isinstance(headers, list)
        return [p.upper() if isinstance(p, str) else {"n": p, "batch": len(payload)} for p in payload]
`,
  });
  await using server = await startServer(project.path);
  const send = (body: string, type: string) =>
    fetch(`${server.url}/batched`, { method: "POST", headers: { "content-type": type }, body });
  const answers = await Promise.all([
    send("abc", "text/plain"),
    send("1", "application/json"),
    send("{bad", "application/json"),
    send("xyz", "text/plain"),
  ]);
  assert.deepEqual(answers.map((r) => r.status), [200, 200, 400, 200]);
  assert.equal(await answers[0]!.text(), "ABC");
  const json = await answers[1]!.json();
  assert.equal(json.n, 1);
  assert.ok(json.batch >= 1);
  await answers[2]!.body?.cancel();
  assert.equal(await answers[3]!.text(), "XYZ");
});

Deno.test("without Starlette the worker's own FormData, UploadFile, QueryParams and Headers read the same", async () => {
  const script = `
import sys
sys.modules["starlette"] = None  # as if it were not installed
sys.path.insert(0, sys.argv[1])
from _cortex_serve_worker import payloads
assert not payloads.STARLETTE
body = (b'--B\\r\\nContent-Disposition: form-data; name="f"; filename="a.bin"\\r\\n'
        b'Content-Type: application/x-thing\\r\\n\\r\\n\\x00\\x01\\r\\n'
        b'--B\\r\\nContent-Disposition: form-data; name="k"\\r\\n\\r\\nv\\r\\n--B--\\r\\n')
form = payloads.parse_payload("multipart/form-data; boundary=B", body)
upload = form["f"]
q = payloads.query_params("a=1&a=2&b=")
h = payloads.headers_of([["x-thing", "T"]])
print(upload.filename, upload.content_type, upload.file.read().hex(), form["k"], q["a"], q.getlist("a"), h["X-Thing"])
`;
  const worker = join(ROOT, "src", "python", "worker");
  const output = await new Deno.Command(PYTHON, {
    args: ["-c", script, worker],
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const stderr = new TextDecoder().decode(output.stderr);
  assert.equal(output.code, 0, stderr);
  assert.equal(
    new TextDecoder().decode(output.stdout).trim(),
    "a.bin application/x-thing 0001 v 2 ['1', '2'] T",
  );
});
