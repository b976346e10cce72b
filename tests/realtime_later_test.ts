/**
 * Cortex 0.18, 0.25 and 0.35 projects serve unchanged through a real server
 * and real workers: bytes in and out with `.env` and `.cortexignore`, a
 * multi-model API that picks up a version added while it serves, `handler:`
 * with `class Handler`, typed answers of a batching API, and the worker's
 * own form classes when Starlette is absent. (The Cortex 0.30 project is in
 * ./realtime_serve_test.ts.)
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { makeProject, PYTHON, ROOT, startServer } from "./_helpers.ts";
import { runCli } from "./_cli.ts";

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
