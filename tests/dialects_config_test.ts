/**
 * The later Cortex dialects of cortex.yaml (0.10/0.11, 0.12, 0.13): each is
 * detected from its shape and resolved into the same config; mixing them,
 * and combinations Cortex refused, fail with the line.
 */
import assert from "node:assert/strict";
import { basename, join } from "node:path";
import { pathToFileURL } from "node:url";
import { loadProjectConfig } from "../src/config/load.ts";
import { ConfigError } from "../src/config/errors.ts";
import { makeProject } from "./_helpers.ts";

const PREDICTOR_FILE = "def predict(sample, metadata):\n    return sample\n";

function yaml(...lines: string[]): string {
  return lines.join("\n") + "\n";
}

async function load(config: string, files: Record<string, string> = {}) {
  await using project = await makeProject({
    "cortex.yaml": config,
    "predictor.py": PREDICTOR_FILE,
    ...files,
  });
  return { ...(await loadProjectConfig(project.path)), dir: project.path };
}

async function fail(config: string, files: Record<string, string> = {}): Promise<ConfigError> {
  await using project = await makeProject({
    "cortex.yaml": config,
    "predictor.py": PREDICTOR_FILE,
    ...files,
  });
  try {
    await loadProjectConfig(project.path);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new assert.AssertionError({ message: "expected a ConfigError" });
}

Deno.test("Cortex 0.10/0.11: predictor without type resolves to init(model_path, metadata)", async () => {
  const project = await load(
    yaml(
      "- kind: deployment", // 1
      "  name: cars", // 2
      "- kind: api", // 3
      "  name: mpg", // 4
      "  predictor:", // 5
      "    path: predictor.py", // 6
      "    model: model/weights.npz", // 7
      "    python_path: lib", // 8
      "    metadata: {decimals: 1}", // 9
      "  compute:", // 10
      "    min_replicas: 2", // 11
      "    max_replicas: 3", // 12
      "    target_cpu_utilization: 80", // 13
      "    mem: 100M", // 14
    ),
    { "model/weights.npz": "x", "lib/helper.py": "" },
  );
  assert.equal(project.dialect, "0.11");
  const api = project.apis[0]!;
  assert.equal(api.endpoint, "/cars/mpg");
  assert.equal(api.inference, "predictor.py");
  assert.equal(api.pythonInterface, "init_model_path");
  assert.deepEqual(api.model, { kind: "project", path: "model/weights.npz" });
  assert.equal(api.pythonPath, "lib");
  assert.deepEqual(api.metadata, { decimals: 1 });
  assert.equal(api.compute.minReplicas, 2);
  assert.equal(api.compute.maxReplicas, 3);
  assert.equal(api.compute.memBytes, 100_000_000);
  assert.deepEqual(project.ignored.map((f) => [f.path, f.line]), [["compute.target_cpu_utilization", 13]]);
});

Deno.test("Cortex 0.12: predictor type python resolves to PythonPredictor with config and env", async () => {
  const project = await load(yaml(
    "- kind: deployment",
    "  name: colors",
    "- kind: api",
    "  name: namer",
    "  predictor:",
    "    type: python",
    "    path: predictor.py",
    "    config: {model: m.npz}",
    '    env: {MODE: "fast"}',
    "    image: cortexlabs/python-serve:0.12.0", // 10
    "  compute: {cpu: 1, mem: 1Gi}",
    "  autoscaling:",
    "    min_replicas: 1",
    "    max_replicas: 4",
    "    workers_per_replica: 2", // 15
    "  update_strategy: {max_surge: 25%, max_unavailable: 0}", // 16
  ));
  assert.equal(project.dialect, "0.12");
  const api = project.apis[0]!;
  assert.equal(api.pythonInterface, "python_predictor");
  assert.deepEqual(api.metadata, { model: "m.npz" });
  assert.deepEqual(api.env, { MODE: "fast" });
  assert.equal(api.model, undefined);
  assert.equal(api.compute.maxReplicas, 4);
  assert.equal(api.compute.memBytes, 2 ** 30);
  assert.deepEqual(project.ignored.map((f) => [f.path, f.line]), [
    ["predictor.image", 10],
    ["autoscaling.workers_per_replica", 15],
    ["update_strategy.max_surge", 16],
    ["update_strategy.max_unavailable", 16],
  ]);
});

Deno.test("Cortex 0.13: a plain list of APIs, endpoint /<api>, deployment named after the directory", async () => {
  const project = await load(yaml(
    "- name: fare",
    "  predictor:",
    "    type: python",
    "    path: predictor.py",
    "- name: tip",
    "  endpoint: /tips/v1",
    "  predictor: {type: python, path: predictor.py, config: {rate: 0.1}}",
  ));
  assert.equal(project.dialect, "0.13");
  assert.deepEqual(project.apis.map((a) => [a.name, a.endpoint, a.pythonInterface]), [
    ["fare", "/fare", "python_predictor"],
    ["tip", "/tips/v1", "python_predictor"],
  ]);
  assert.match(project.deployment.name, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
  assert.ok(basename(project.dir).toLowerCase().startsWith(project.deployment.name.slice(0, 10)));
});

Deno.test("mixing dialects is an error naming both lines", async () => {
  const error = await fail(yaml(
    "- kind: deployment", // 1
    "  name: mixed", // 2
    "- kind: api", // 3
    "  name: old", // 4
    "  predictor:", // 5
    "    path: predictor.py", // 6
    "- kind: api", // 7
    "  name: new", // 8
    "  predictor:", // 9
    "    type: python", // 10
    "    path: predictor.py", // 11
  ));
  assert.equal(error.issues.length, 1, error.message);
  const issue = error.issues[0]!;
  assert.equal(issue.line, 9);
  assert.equal(issue.resource, 'api "new"');
  assert.match(
    issue.problem,
    /written in Cortex 0\.12 syntax \(predictor: with type, line 9\), but line 5 is Cortex 0\.10\/0\.11 syntax/,
  );
});

Deno.test("mixing: a python.inference api beside a Cortex 0.13 list item, and python_root with predictor", async () => {
  const listed = await fail(yaml(
    "- kind: deployment",
    "  name: mixed",
    "- kind: api",
    "  name: a",
    "  python: {inference: predictor.py}", // 5
    "- name: b", // 6
    "  predictor: {type: python, path: predictor.py}",
  ));
  assert.deepEqual(listed.issues.map((i) => i.line), [6]);
  assert.match(listed.issues[0]!.problem, /Cortex 0\.13 syntax .*but line 5 is python\.inference syntax/);

  const rooted = await fail(
    yaml(
      "- kind: deployment",
      "  name: mixed",
      "  python_root: lib", // 3
      "- kind: api",
      "  name: a",
      "  predictor: {path: predictor.py}", // 6
    ),
    { "lib/x.py": "" },
  );
  assert.deepEqual(rooted.issues.map((i) => i.line), [6]);
  assert.match(
    rooted.issues[0]!.problem,
    /but line 3 is python\.inference syntax \(deployment python_root\)/,
  );
});

Deno.test("Cortex 0.13: a kind: deployment in the list is refused with both lines", async () => {
  const error = await fail(yaml(
    "- name: fare", // 1
    "  predictor: {type: python, path: predictor.py}",
    "- kind: deployment", // 3
    "  name: d",
  ));
  assert.deepEqual(error.issues.map((i) => [i.line, i.path]), [[3, "kind"]]);
  assert.match(error.issues[0]!.problem, /Cortex 0\.13 .* line 1/);
});

Deno.test("model is refused for type: python, metadata points to config", async () => {
  const error = await fail(yaml(
    "- kind: deployment",
    "  name: d",
    "- kind: api",
    "  name: a",
    "  predictor:",
    "    type: python",
    "    path: predictor.py",
    "    model: s3://bucket/model.pkl", // 8
    "    metadata: {a: 1}", // 9
  ));
  assert.deepEqual(error.issues.map((i) => [i.line, i.path]), [[8, "predictor.model"], [
    9,
    "predictor.metadata",
  ]]);
  assert.match(error.issues[0]!.problem, /is refused for type: python/);
  assert.match(error.issues[0]!.fix, /config/);
  assert.match(error.issues[1]!.fix, /rename metadata to config/);
});

Deno.test("Cortex 0.12: out-of-scope types, replica counts under compute, and config without type", async () => {
  const error = await fail(yaml(
    "- name: a",
    "  predictor: {type: tensorflow, path: predictor.py}", // 2
    "  compute: {min_replicas: 2}", // 3
    "- kind: api",
    "  name: b",
  ));
  const lines = error.issues.map((i) => [i.line, i.path]);
  assert.deepEqual(lines.slice(0, 2), [[2, "predictor.type"], [3, "compute.min_replicas"]]);
  assert.match(error.issues[0]!.problem, /out of scope/);
  assert.match(error.issues[1]!.fix, /autoscaling\.min_replicas/);

  const untyped = await fail(yaml(
    "- kind: deployment",
    "  name: d",
    "- kind: api",
    "  name: a",
    "  predictor: {path: predictor.py, config: {x: 1}}", // 5
  ));
  assert.equal(untyped.issues[0]!.path, "predictor.config");
  assert.match(untyped.issues[0]!.fix, /type: python/);
});

Deno.test("predictor.model: absolute path, file:// URL and s3:// resolve; other schemes and missing files fail", async () => {
  await using outside = await makeProject({ "weights.bin": "w" });
  const absolute = join(outside.path, "weights.bin");
  const config = (model: string) =>
    yaml(
      "- kind: deployment",
      "  name: d",
      "- kind: api",
      "  name: a",
      "  predictor:",
      "    path: predictor.py",
      `    model: ${model}`,
    );
  assert.deepEqual((await load(config(absolute))).apis[0]!.model, { kind: "local", path: absolute });
  assert.deepEqual((await load(config(pathToFileURL(absolute).href))).apis[0]!.model, {
    kind: "local",
    path: absolute,
  });
  assert.deepEqual((await load(config("s3://bucket/dir/model.pkl"))).apis[0]!.model, {
    kind: "s3",
    url: "s3://bucket/dir/model.pkl",
  });
  const gs = await fail(config("gs://bucket/model.pkl"));
  assert.match(gs.issues[0]!.problem, /gs:\/\/ URLs are not supported/);
  const missing = await fail(config("model/none.npz"));
  assert.deepEqual([missing.issues[0]!.line, missing.issues[0]!.path], [7, "predictor.model"]);
  assert.match(missing.issues[0]!.problem, /does not exist in the project/);
  const gone = await fail(config(join(outside.path, "none.bin")));
  assert.match(gone.issues[0]!.problem, /does not exist on this machine/);
});

Deno.test("an api-level metadata in a predictor dialect points under predictor:", async () => {
  const classic = await fail(yaml(
    "- kind: deployment",
    "  name: d",
    "- kind: api",
    "  name: a",
    "  predictor: {path: predictor.py}",
    "  metadata: {x: 1}", // 6
  ));
  assert.deepEqual(classic.issues.map((i) => [i.line, i.path, i.fix]), [[
    6,
    "metadata",
    "move it to predictor.metadata",
  ]]);
  const list = await fail(
    yaml("- name: a", "  predictor: {type: python, path: predictor.py}", "  metadata: {x: 1}"),
  );
  assert.deepEqual(list.issues.map((i) => [i.line, i.path, i.fix]), [[
    3,
    "metadata",
    "move it to predictor.config",
  ]]);
});
