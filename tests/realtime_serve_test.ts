/**
 * A project written the way Cortex 0.30 documented it serves unchanged
 * through a real server and real workers: the payload by Content-Type (JSON,
 * text with its charset, forms with files, bytes), `query_params` and
 * `headers` by name, str/bytes/Response answers, `post_predict` after the
 * answer, and a TrafficSplitter. The other releases' projects are in
 * ./realtime_later_test.ts.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { makeProject, startServer } from "./_helpers.ts";

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
