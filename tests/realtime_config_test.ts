/**
 * The Cortex 0.17–0.35 dialects of cortex.yaml: kindless lists with
 * networking/monitoring (0.17–0.18) and `kind: RealtimeAPI` /
 * `TrafficSplitter` / `AsyncAPI` resources (0.19–0.35), as Cortex's docs of
 * those releases write them. Errors name the file, line and fix.
 */
import assert from "node:assert/strict";
import { loadProjectConfig } from "../src/config/load.ts";
import { ConfigError } from "../src/config/errors.ts";
import { makeProject } from "./_helpers.ts";

const PREDICTOR = [
  "class PythonPredictor:",
  "    def __init__(self, config):",
  "        self.config = config",
  "    def predict(self, payload, query_params, headers):",
  "        return payload",
  "",
].join("\n");

function yaml(...lines: string[]): string {
  return lines.join("\n") + "\n";
}

async function load(config: string, files: Record<string, string> = {}) {
  await using project = await makeProject({ "cortex.yaml": config, "predictor.py": PREDICTOR, ...files });
  return await loadProjectConfig(project.path);
}

async function fail(config: string, files: Record<string, string> = {}): Promise<ConfigError> {
  await using project = await makeProject({ "cortex.yaml": config, "predictor.py": PREDICTOR, ...files });
  try {
    await loadProjectConfig(project.path);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new assert.AssertionError({ message: "expected a ConfigError" });
}

Deno.test("Cortex 0.30: RealtimeAPI resolves with its defaults, /<name> and ignored keys reported", async () => {
  const project = await load(yaml(
    "- name: iris-classifier", // 1
    "  kind: RealtimeAPI", // 2
    "  predictor:", // 3
    "    type: python", // 4
    "    path: predictor.py", // 5
    "    config:", // 6
    "      bucket: my-bucket", // 7
    "    env:", // 8
    "      MODE: fast", // 9
    "    processes_per_replica: 2", // 10
    "    threads_per_process: 4", // 11
    "    image: quay.io/cortexlabs/python-predictor-cpu:0.30.0", // 12
    "    shm_size: 1Gi", // 13
    "    log_level: info", // 14
    "    dependencies:", // 15
    "      pip: requirements.txt", // 16
    "      conda: conda-packages.txt", // 17
    "  compute:", // 18
    "    cpu: 1", // 19
    "    mem: 1G", // 20
    "    inf: 0", // 21
    "  autoscaling:", // 22
    "    min_replicas: 1", // 23
    "    max_replicas: 3", // 24
    "    target_replica_concurrency: 4", // 25
    "  update_strategy:", // 26
    "    max_surge: 25%", // 27
    "  networking:", // 28
    "    api_gateway: public", // 29
  ));
  assert.equal(project.dialect, "0.19");
  const api = project.apis[0]!;
  assert.equal(api.endpoint, "/iris-classifier");
  assert.equal(api.pythonInterface, "realtime_predictor");
  assert.deepEqual(api.metadata, { bucket: "my-bucket" });
  assert.deepEqual(api.env, { MODE: "fast" });
  assert.equal(api.compute.minReplicas, 2, "processes_per_replica multiplies workers");
  assert.equal(api.compute.maxReplicas, 6);
  assert.equal(api.async, undefined);
  assert.deepEqual(
    project.ignored.map((f) => [f.path, f.line]),
    [
      ["predictor.threads_per_process", 11],
      ["predictor.image", 12],
      ["predictor.shm_size", 13],
      ["predictor.log_level", 14],
      ["predictor.dependencies.conda", 17],
      ["compute.inf", 21],
      ["autoscaling.target_replica_concurrency", 25],
      ["update_strategy.max_surge", 27],
      ["networking.api_gateway", 29],
    ],
  );
});

Deno.test("Cortex 0.18: a kindless list with networking is 0.17–0.18, monitoring is the tracker", async () => {
  const project = await load(yaml(
    "- name: sentiment",
    "  predictor:",
    "    type: python",
    "    path: predictor.py",
    "  networking:",
    "    endpoint: /v1/sentiment",
    "    local_port: 8890",
    "  monitoring:",
    "    model_type: classification",
    "- name: other",
    "  predictor:",
    "    type: python",
    "    path: predictor.py",
  ));
  assert.equal(project.dialect, "0.17");
  assert.deepEqual(project.apis.map((a) => [a.name, a.endpoint, a.pythonInterface]), [
    ["sentiment", "/v1/sentiment", "realtime_predictor"],
    ["other", "/other", "realtime_predictor"],
  ]);
  assert.deepEqual(project.apis[0]!.tracker, { key: undefined, modelType: "classification" });
});

Deno.test("Cortex 0.14: a kindless list without later keys stays the JSON-bodied 0.13 dialect", async () => {
  const project = await load(yaml(
    "- name: iris",
    "  endpoint: /iris",
    "  predictor:",
    "    type: python",
    "    path: predictor.py",
    "  tracker:",
    "    model_type: classification",
    "  autoscaling:",
    "    workers_per_replica: 2",
    "  local_port: 8890", // Cortex 0.16
  ));
  assert.equal(project.dialect, "0.13");
  assert.ok(project.ignored.some((f) => f.path === "local_port"));
  assert.equal(project.apis[0]!.pythonInterface, "python_predictor");
});

Deno.test("TrafficSplitter: weights, its own endpoint, and AsyncAPI marked async", async () => {
  const project = await load(yaml(
    "- name: iris-a",
    "  kind: RealtimeAPI",
    "  predictor: {type: python, path: predictor.py}",
    "- name: iris-b",
    "  kind: SyncAPI",
    "  predictor: {type: python, path: predictor.py}",
    "- name: iris-jobs",
    "  kind: AsyncAPI",
    "  predictor: {type: python, path: predictor.py}",
    "- name: iris",
    "  kind: TrafficSplitter",
    "  networking:",
    "    endpoint: /iris/split",
    "  apis:",
    "    - name: iris-a",
    "      weight: 30",
    "    - name: iris-b",
    "      weight: 70",
  ));
  assert.deepEqual(project.splitters, [{
    name: "iris",
    endpoint: "/iris/split",
    apis: [{ api: "iris-a", weight: 30 }, { api: "iris-b", weight: 70 }],
  }]);
  assert.equal(project.apis.find((a) => a.name === "iris-jobs")?.async, true);
});

Deno.test("TrafficSplitter errors name the line: sum, unknown api", async () => {
  const error = await fail(yaml(
    "- name: iris-a", // 1
    "  kind: RealtimeAPI", // 2
    "  predictor: {type: python, path: predictor.py}", // 3
    "- name: iris", // 4
    "  kind: TrafficSplitter", // 5
    "  apis:", // 6
    "    - name: iris-a", // 7
    "      weight: 30", // 8
    "- name: split2", // 9
    "  kind: TrafficSplitter", // 10
    "  apis:", // 11
    "    - name: iris-z", // 12
    "      weight: 100", // 13
  ));
  const text = error.message;
  assert.match(text, /cortex\.yaml:6.*weights must sum to 100, got 30/);
  assert.match(text, /cortex\.yaml:12.*names no api of this file: "iris-z"/);
});

Deno.test("BatchAPI and TaskAPI are refused with why and what to do", async () => {
  const error = await fail(yaml(
    "- name: iris-a",
    "  kind: RealtimeAPI",
    "  predictor: {type: python, path: predictor.py}",
    "- name: batch",
    "  kind: BatchAPI", // 5
    "  predictor: {type: python, path: predictor.py}",
  ));
  assert.match(error.message, /cortex\.yaml:5.*BatchAPI is not served.*kind: RealtimeAPI/);
});

Deno.test("multi_model_reloading: paths, dir, caches; both-or-neither and one form", async () => {
  const project = await load(
    yaml(
      "- name: multi",
      "  kind: RealtimeAPI",
      "  predictor:",
      "    type: python",
      "    path: predictor.py",
      "    multi_model_reloading:",
      "      paths:",
      "        - name: iris",
      "          path: models/iris",
      "        - name: remote",
      "          path: s3://bucket/remote/",
      "      cache_size: 1",
      "      disk_cache_size: 2",
    ),
    { "models/iris/1/w.txt": "1" },
  );
  assert.deepEqual(project.apis[0]!.models, {
    sources: [
      { name: "iris", location: { kind: "project", path: "models/iris" } },
      { name: "remote", location: { kind: "s3", url: "s3://bucket/remote/" } },
    ],
    dir: undefined,
    cacheSize: 1,
    diskCacheSize: 2,
  });
  const error = await fail(yaml(
    "- name: multi", // 1
    "  kind: RealtimeAPI", // 2
    "  predictor:", // 3
    "    type: python", // 4
    "    path: predictor.py", // 5
    "    multi_model_reloading:", // 6
    "      dir: s3://bucket/models/", // 7
    "      cache_size: 3", // 8
  ));
  assert.match(error.message, /cortex\.yaml:8.*disk_cache_size.*set both/);
});

Deno.test("Cortex 0.22: models.dir and model_path of a PythonPredictor", async () => {
  const project = await load(
    yaml(
      "- name: multi",
      "  kind: RealtimeAPI",
      "  predictor:",
      "    type: python",
      "    path: predictor.py",
      "    models:",
      "      dir: models",
    ),
    { "models/a/1/w.txt": "1" },
  );
  assert.deepEqual(project.apis[0]!.models?.dir, { kind: "project", path: "models" });
});

Deno.test("later-dialect errors: top-level endpoint moved, unknown key, CORTEX_ env", async () => {
  const error = await fail(yaml(
    "- name: iris", // 1
    "  kind: RealtimeAPI", // 2
    "  endpoint: /x", // 3
    "  predictor:", // 4
    "    type: python", // 5
    "    path: predictor.py", // 6
    "    procesess_per_replica: 2", // 7
    "    env:", // 8
    "      CORTEX_X: y", // 9
    "    protobuf_path: api.proto", // 10
  ));
  const text = error.message;
  assert.match(text, /cortex\.yaml:10.*gRPC server.*remove protobuf_path/);
  assert.match(text, /cortex\.yaml:3.*networking\.endpoint/);
  assert.match(text, /cortex\.yaml:7.*did you mean "processes_per_replica"/);
  assert.match(text, /cortex\.yaml:9.*CORTEX_.*reserved/);
});

Deno.test("Cortex 0.35: handler: is the predictor of the Handler interface; both at once is an error", async () => {
  const project = await load(yaml(
    "- name: h",
    "  kind: RealtimeAPI",
    "  handler:",
    "    type: python",
    "    path: predictor.py",
    "    processes_per_replica: 3",
  ));
  assert.equal(project.apis[0]!.pythonInterface, "realtime_handler");
  assert.equal(project.apis[0]!.compute.minReplicas, 3);
  const error = await fail(yaml(
    "- name: h", // 1
    "  kind: RealtimeAPI", // 2
    "  predictor: {type: python, path: predictor.py}", // 3
    "  handler: {type: python, path: predictor.py}", // 4
  ));
  assert.match(error.message, /cortex\.yaml:4.*handler.*cannot be used together with predictor/);
});

Deno.test("Cortex 0.36+: an API of containers (pod:) is refused with why", async () => {
  const error = await fail(yaml(
    "- name: iris", // 1
    "  kind: RealtimeAPI", // 2
    "  pod:", // 3
    "    containers:", // 4
    "      - name: api", // 5
    "        image: quay.io/org/iris:latest", // 6
  ));
  assert.match(error.message, /cortex\.yaml:3.*Cortex 0\.36\+ syntax: the API runs your own containers/);
});

Deno.test("TrafficSplitter shadow (0.31+): outside the sum, one at most; other pip files are reported", async () => {
  const project = await load(yaml(
    "- name: a",
    "  kind: RealtimeAPI",
    "  predictor: {type: python, path: predictor.py, dependencies: {pip: a_requirements.txt}}",
    "- name: recorder",
    "  kind: RealtimeAPI",
    "  predictor: {type: python, path: predictor.py}",
    "- name: split",
    "  kind: TrafficSplitter",
    "  apis:",
    "    - {name: a, weight: 100}",
    "    - {name: recorder, weight: 100, shadow: true}",
  ));
  assert.deepEqual(project.splitters?.[0]?.apis, [
    { api: "a", weight: 100 },
    { api: "recorder", weight: 100, shadow: true },
  ]);
  assert.match(
    project.ignored.find((f) => f.path === "predictor.dependencies.pip")?.reason ?? "",
    /not "a_requirements\.txt": merge its packages into requirements\.txt/,
  );
  const error = await fail(yaml(
    "- name: a", // 1
    "  kind: RealtimeAPI", // 2
    "  predictor: {type: python, path: predictor.py}", // 3
    "- name: split", // 4
    "  kind: TrafficSplitter", // 5
    "  apis:", // 6
    "    - {name: a, weight: 100}", // 7
    "    - {name: a, weight: 10, shadow: true}", // 8
    "    - {name: a, weight: 10, shadow: true}", // 9
  ));
  assert.match(error.message, /cortex\.yaml:9.*more than one shadow api/);
});

Deno.test("Cortex 0.18: compute.inf marks a kindless file as 0.17–0.18 (it is accepted and ignored)", async () => {
  const project = await load(yaml(
    "- name: resnet",
    "  predictor:",
    "    type: python",
    "    path: predictor.py",
    "  compute:",
    "    inf: 1",
  ));
  assert.equal(project.dialect, "0.17");
  assert.ok(project.ignored.some((f) => f.path === "compute.inf"));
});
