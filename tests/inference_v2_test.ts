/**
 * The Open Inference Protocol (KServe V2 REST): every answer of a real
 * server with real workers is checked against JSON Schemas written from the
 * protocol's published REST text (tests/fixtures/inference_v2/), with request
 * fixtures in the protocol's form; the tensor ↔ sample mapping and the
 * not-ready and API-key cases are checked in process.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Ajv } from "ajv";
import { loadProjectConfig } from "../src/config/load.ts";
import { createApp } from "../src/http/app.ts";
import { inferCall, outputsOf, parsePrediction, reshape } from "../src/http/inference_v2_tensors.ts";
import { Logger } from "../src/log/logger.ts";
import { KeyStore } from "../src/security/api_keys.ts";
import { ApiPool } from "../src/supervision/pool.ts";
import { VERSION } from "../src/cli/version.ts";
import { ROOT, startServer, tempDir } from "./_helpers.ts";

const FIXTURES = join(ROOT, "tests", "fixtures", "inference_v2");
const IRIS = join(ROOT, "examples", "iris-classifier");

// deno-lint-ignore no-explicit-any
type Json = any;

const SCHEMAS: Record<string, Json> = JSON.parse(await Deno.readTextFile(join(FIXTURES, "schemas.json")));
const REQUESTS: Record<string, Json> = JSON.parse(await Deno.readTextFile(join(FIXTURES, "requests.json")));
const ajv = new Ajv({ allErrors: true, allowUnionTypes: true });
for (const [name, schema] of Object.entries(SCHEMAS)) if (!name.startsWith("$")) ajv.addSchema(schema);

/** Asserts `value` is a `schema` object of the protocol. */
function assertConforms(schema: string, value: unknown, what: string): void {
  const check = ajv.getSchema(schema)!;
  assert.ok(
    check(value),
    `${what}: not a ${schema}: ${ajv.errorsText(check.errors)}\n${JSON.stringify(value)}`,
  );
}

const PROJECT_FILES: Record<string, string> = {
  "cortex.yaml": `- kind: deployment
  name: iris
- kind: api
  name: classifier
  python:
    inference: src/inference.py
  metadata:
    model: iris_model.npz
- kind: api
  name: echo
  python:
    inference: v2/echo.py
- kind: api
  name: shapes
  python:
    inference: v2/shapes.py
- kind: api
  name: fails
  python:
    inference: v2/fails.py
- kind: api
  name: streams
  python:
    inference: v2/streams.py
`,
  "v2/sample.json": '{"x": [[1.0, 2.0]], "n": 3, "tag": "a"}',
  "v2/echo.py": "def predict(sample, metadata):\n    return sample\n",
  "v2/shapes.py": `import numpy as np

def predict(sample, metadata):
    return {"m": np.arange(6.0).reshape(2, 3), "count": 6, "ragged": [[1], [2, 3]], "none": None, "empty": []}
`,
  "v2/fails.py": "def predict(sample, metadata):\n    raise ValueError('no good sample')\n",
  "v2/streams.py": "def predict(sample, metadata):\n    for i in range(100):\n        yield i\n",
};

Deno.test("inference v2: a real server speaks the protocol's REST schema", async () => {
  await using dir = await tempDir("cortex-serve-v2-");
  const copy = await new Deno.Command("cp", { args: ["-r", `${IRIS}/.`, dir.path] }).output();
  assert.ok(copy.success);
  for (const [path, text] of Object.entries(PROJECT_FILES)) {
    await Deno.mkdir(join(dir.path, path, ".."), { recursive: true });
    await Deno.writeTextFile(join(dir.path, path), text);
  }
  await using server = await startServer(dir.path, { replicas: 5 });
  const get = (path: string) => fetch(server.url + path);
  const infer = async (
    model: string,
    body: unknown,
  ): Promise<{ status: number; body: Json; res: Response }> => {
    const res = await fetch(`${server.url}/v2/models/${model}/infer`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
    return { status: res.status, body: await res.json(), res };
  };
  for (const [name, request] of Object.entries(REQUESTS)) {
    if (!name.startsWith("$")) assertConforms("inference_request", request, `fixture ${name}`);
  }

  // Server metadata and health.
  const meta = await (await get("/v2")).json();
  assertConforms("metadata_server_response", meta, "GET /v2");
  assert.deepEqual(meta, { name: "cortex-serve", version: VERSION, extensions: [] });
  for (
    const path of [
      "/v2/health/live",
      "/v2/health/ready",
      "/v2/models/echo/ready",
      "/v2/models/classifier/ready",
    ]
  ) {
    const res = await get(path);
    assert.equal(res.status, 200, path);
    assert.equal(await res.text(), "", `${path}: empty body`);
  }

  // Model metadata: inputs from sample.json (the API's own, else the project's).
  const classifier = await (await get("/v2/models/classifier")).json();
  assertConforms("metadata_model_response", classifier, "classifier metadata");
  assert.deepEqual(classifier.inputs.map((t: Json) => [t.name, t.datatype, t.shape]), [
    ["sepal_length", "FP64", []],
    ["sepal_width", "FP64", []],
    ["petal_length", "FP64", []],
    ["petal_width", "FP64", []],
  ]);
  const echoMeta = await (await get("/v2/models/echo")).json();
  assertConforms("metadata_model_response", echoMeta, "echo metadata");
  assert.deepEqual(echoMeta.inputs, [
    { name: "x", datatype: "FP64", shape: [1, 2] },
    { name: "n", datatype: "INT64", shape: [] },
    { name: "tag", datatype: "BYTES", shape: [] },
  ]);

  // An unchanged Cortex predictor, called with tensors.
  const iris = await infer("classifier", REQUESTS.iris);
  assert.equal(iris.status, 200, JSON.stringify(iris.body));
  assertConforms("inference_response", iris.body, "classifier");
  assert.equal(iris.body.id, iris.res.headers.get("x-request-id"), "no id given: the request id");
  assert.deepEqual(iris.body.outputs, [{
    name: "output-0",
    shape: [],
    datatype: "BYTES",
    data: ["iris-setosa"],
  }]);

  // Round trip: what the sample held comes back as the same tensors, flattened.
  const mixed = await infer("echo", REQUESTS.mixed);
  assert.equal(mixed.status, 200, JSON.stringify(mixed.body));
  assertConforms("inference_response", mixed.body, "echo mixed");
  assert.equal(mixed.body.id, "42");
  assert.equal(mixed.body.model_name, "echo");
  assert.deepEqual(mixed.body.outputs, [
    { name: "matrix", shape: [2, 2], datatype: "INT64", data: [1, 2, 3, 4] },
    { name: "nested", shape: [2, 3], datatype: "FP64", data: [1.5, 2.5, 3.5, 4.5, 5.5, 6.5] },
    { name: "flags", shape: [3], datatype: "BOOL", data: [true, false, true] },
    { name: "words", shape: [2], datatype: "BYTES", data: ["hello", "world"] },
    { name: "scale", shape: [], datatype: "FP64", data: [0.25] },
  ]);
  const picked = await infer("echo", REQUESTS.requested_output);
  assertConforms("inference_response", picked.body, "requested output");
  assert.deepEqual(picked.body.outputs, [{ name: "b", shape: [1], datatype: "INT64", data: [8] }]);
  const text = await infer("echo", REQUESTS.json_text);
  assertConforms("inference_response", text.body, "json text");
  const config = text.body.outputs[0];
  assert.deepEqual({ ...config, data: undefined }, {
    name: "config",
    shape: [],
    datatype: "BYTES",
    parameters: { content_type: "json" },
    data: undefined,
  });
  assert.deepEqual(JSON.parse(config.data[0]), { depth: 3, tags: ["x", null] });

  // Predictions of every kind, including numpy arrays and values that are no tensor.
  const shapes = await infer("shapes", { inputs: [{ name: "x", shape: [], datatype: "INT8", data: [1] }] });
  assertConforms("inference_response", shapes.body, "shapes");
  assert.deepEqual(shapes.body.outputs, [
    { name: "m", shape: [2, 3], datatype: "FP64", data: [0, 1, 2, 3, 4, 5] },
    { name: "count", shape: [], datatype: "INT64", data: [6] },
    {
      name: "ragged",
      shape: [],
      datatype: "BYTES",
      data: ["[[1],[2,3]]"],
      parameters: { content_type: "json" },
    },
    { name: "none", shape: [], datatype: "BYTES", data: ["null"], parameters: { content_type: "json" } },
    { name: "empty", shape: [0], datatype: "FP64", data: [] },
  ]);

  // Errors, in the protocol's form.
  const errors: [string, unknown, number, RegExp][] = [
    ["echo", REQUESTS.wrong_count, 400, /shape \[2, 3\] holds 6 elements, 'data' has 5/],
    ["echo", REQUESTS.out_of_range, 400, /element 1 \(256\) is not a valid UINT8/],
    ["echo", "{not json", 400, /not JSON/],
    ["echo", { inputs: [] }, 400, /non-empty array/],
    ["echo", { ...REQUESTS.requested_output, outputs: [{ name: "c" }] }, 400, /No output 'c'/],
    ["fails", REQUESTS.iris, 500, /ValueError: no good sample/],
    ["streams", REQUESTS.iris, 400, /streams its answer.*POST the sample to \/iris\/streams/],
    ["streams", REQUESTS.iris, 400, /streams its answer/],
    ["nope", REQUESTS.iris, 404, /Unknown model 'nope'.*classifier, echo/],
  ];
  for (const [model, body, status, message] of errors) {
    const answer = await infer(model, body);
    assert.equal(answer.status, status, `${model}: ${JSON.stringify(answer.body)}`);
    assertConforms("error_response", answer.body, `${model} error`);
    assert.match(answer.body.error, message);
  }
  const wrongMethod = await get("/v2/models/echo/infer");
  assert.equal(wrongMethod.status, 405);
  assert.equal(wrongMethod.headers.get("allow"), "POST");
  assertConforms("error_response", await wrongMethod.json(), "405");
  const unknown = await get("/v2/models/nope");
  assert.equal(unknown.status, 404);
  assertConforms("error_response", await unknown.json(), "unknown model metadata");
  const noRoute = await get("/v2/repository/index");
  assert.equal(noRoute.status, 404);
  assertConforms("error_response", await noRoute.json(), "no route");

  // A stream was cancelled, not left running: the replica still answers at once.
  const after = await infer("echo", REQUESTS.requested_output);
  assert.equal(after.status, 200);

  // V2 requests count in the API's metrics and log like its own endpoint.
  const metrics = await (await get("/metrics")).text();
  assert.match(metrics, /cortex_serve_requests_total\{api="echo",status="200"\} [4-9]/);
  assert.match(metrics, /cortex_serve_requests_total\{api="streams",status="400"\} 2/);
  // Metadata and ready probes are not requests of the API.
  assert.match(metrics, /cortex_serve_requests_total\{api="classifier",status="200"\} 1\n/);
  const logged = await server.waitFor((r) => r.msg === "request" && r.path === "/v2/models/classifier/infer");
  assert.equal(logged.api, "classifier");
});

/** An app on the iris example whose API has no replica. */
async function notReadyApp(keys?: KeyStore) {
  const project = await loadProjectConfig(IRIS);
  const logger = new Logger({ sink: () => {} });
  const pools = new Map(project.apis.map((api) => [
    api.name,
    new ApiPool({ api: api.name, queuePerReplica: 1, maxReplicas: 1, predictTimeoutMs: 1000, logger }),
  ]));
  return createApp({ project, pools, maxBodyBytes: 1024, debug: false, logger, keys }).app;
}

Deno.test("inference v2: not ready is 400 on the health routes and 503 with Retry-After on infer", async () => {
  const app = await notReadyApp();
  for (const path of ["/v2/health/ready", "/v2/models/classifier/ready"]) {
    const res = await app.request(path);
    assert.equal(res.status, 400, path);
    assert.equal(await res.text(), "");
  }
  const live = await app.request("/v2/health/live");
  assert.equal(live.status, 200);
  await live.body?.cancel();
  const res = await app.request("/v2/models/classifier/infer", {
    method: "POST",
    body: JSON.stringify(REQUESTS.iris),
  });
  assert.equal(res.status, 503);
  assert.ok(Number(res.headers.get("retry-after")) > 0);
  assertConforms("error_response", await res.json(), "not ready");
});

Deno.test("inference v2: with API keys the health routes stay open, the rest needs a key", async () => {
  await using dir = await tempDir();
  const file = join(dir.path, "keys");
  await Deno.writeTextFile(file, "k-0123456789abcdef0123456789abcdef\n", { mode: 0o600 });
  const app = await notReadyApp(await KeyStore.load(file));
  for (const [path, status] of [["/v2/health/live", 200], ["/v2/health/ready", 400], ["/v2", 401]] as const) {
    const res = await app.request(path);
    assert.equal(res.status, status, path);
    await res.body?.cancel();
  }
  const res = await app.request("/v2", { headers: { "x-api-key": "k-0123456789abcdef0123456789abcdef" } });
  assert.equal(res.status, 200);
  assertConforms("metadata_server_response", await res.json(), "with key");
});

Deno.test("inference v2: tensors to a sample: shapes, scalars, datatypes, JSON text", () => {
  assert.deepEqual(reshape([1, 2, 3, 4, 5, 6], [2, 3]), [[1, 2, 3], [4, 5, 6]]);
  assert.deepEqual(reshape([1, 2, 3, 4, 5, 6], [3, 1, 2]), [[[1, 2]], [[3, 4]], [[5, 6]]]);
  assert.deepEqual(reshape([7], []), 7);
  assert.deepEqual(reshape([], [2, 0]), [[], []]);
  const call = inferCall({
    id: "a",
    inputs: [
      { name: "m", shape: [2, 2], datatype: "INT32", data: [[1, 2], [3, 4]] },
      { name: "s", shape: [], datatype: "BYTES", data: ["x"] },
      { name: "j", shape: [2], datatype: "BYTES", data: ["{}", "[1]"], parameters: { content_type: "json" } },
    ],
    outputs: [{ name: "y" }],
  });
  assert.deepEqual(call, { sample: { m: [[1, 2], [3, 4]], s: "x", j: [{}, [1]] }, id: "a", outputs: ["y"] });
  const refused: [unknown, RegExp][] = [
    [[], /JSON object with 'inputs'/],
    [{ inputs: [{ name: "x", shape: [1], datatype: "FP128", data: [1] }] }, /'datatype' must be one of/],
    [{ inputs: [{ name: "x", shape: [-1], datatype: "FP32", data: [1] }] }, /non-negative integers/],
    [{ inputs: [{ name: "x", shape: [1], datatype: "BOOL", data: [1] }] }, /not a valid BOOL/],
    [{ inputs: [{ name: "x", shape: [1], datatype: "INT32", data: [1.5] }] }, /not a valid INT32/],
    [{ inputs: [{ name: "x", shape: [1], datatype: "UINT16", data: [-1] }] }, /not a valid UINT16/],
    [{ inputs: [{ name: "x", shape: [1], datatype: "BYTES", data: [1] }] }, /not a valid BYTES/],
    [{
      inputs: [{
        name: "x",
        shape: [1],
        datatype: "BYTES",
        data: ["{"],
        parameters: { content_type: "json" },
      }],
    }, /not JSON text/],
    [{
      inputs: [{ name: "x", shape: [], datatype: "FP32", data: [1] }, {
        name: "x",
        shape: [],
        datatype: "FP32",
        data: [1],
      }],
    }, /given twice/],
    [{ inputs: [{ name: "x", shape: [], datatype: "FP32", data: [1] }], id: 4 }, /'id' must be a string/],
    [{ inputs: [{ name: "x", shape: [], datatype: "FP32", data: [1] }], outputs: [{}] }, /outputs\[0\]/],
  ];
  for (const [body, message] of refused) {
    assert.throws(() => inferCall(body), (error: Error & { code?: string }) => {
      assert.equal(error.code, "BAD_REQUEST");
      assert.match(error.message, message);
      return true;
    });
  }
});

Deno.test("inference v2: a prediction to outputs: kinds, floats written as floats, non-tensors as JSON", () => {
  assert.deepEqual(outputsOf(parsePrediction("[[1.0, 2], [3, 4]]")), [
    { name: "output-0", shape: [2, 2], datatype: "FP64", data: [1, 2, 3, 4] },
  ]);
  assert.deepEqual(outputsOf(parsePrediction('{"a": [true], "b": 2, "c": 2.5e0, "d": [["x"]]}')), [
    { name: "a", shape: [1], datatype: "BOOL", data: [true] },
    { name: "b", shape: [], datatype: "INT64", data: [2] },
    { name: "c", shape: [], datatype: "FP64", data: [2.5] },
    { name: "d", shape: [1, 1], datatype: "BYTES", data: ["x"] },
  ]);
  const json = (value: string) => ({
    name: "output-0",
    shape: [],
    datatype: "BYTES",
    data: [value],
    parameters: { content_type: "json" },
  });
  assert.deepEqual(outputsOf(parsePrediction('[1, "a"]')), [json('[1,"a"]')]);
  assert.deepEqual(outputsOf(parsePrediction('[{"a": 1.5}]')), [json('[{"a":1.5}]')]);
  assert.deepEqual(outputsOf(parsePrediction("null")), [json("null")]);
});

Deno.test("inference v2: CORS as on the prediction routes, preflight included", async () => {
  const app = await notReadyApp();
  const preflight = await app.request("/v2/models/classifier/infer", {
    method: "OPTIONS",
    headers: { origin: "https://tools.example", "access-control-request-method": "POST" },
  });
  assert.equal(preflight.status, 204);
  assert.equal(preflight.headers.get("access-control-allow-origin"), "*");
  const res = await app.request("/v2", { headers: { origin: "https://tools.example" } });
  assert.equal(res.headers.get("access-control-allow-origin"), "*");
  await res.body?.cancel();
  const doc = await app.request("/openapi.json", { headers: { origin: "https://tools.example" } });
  assert.equal(doc.headers.get("access-control-allow-origin"), "*");
  await doc.body?.cancel();
});
