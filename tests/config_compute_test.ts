/**
 * cortex.yaml: the api keys tracker and compute, every issue at once, and how an issue is written.
 */
import assert from "node:assert/strict";
import { formatIssue } from "../src/config/errors.ts";
import { BASE, fail, issue, load, only, yaml } from "./_config.ts";

// ---------------------------------------------------------------- api: tracker

Deno.test("api.tracker.model_type is required and must be classification or regression", async () => {
  let error = await fail(yaml(...BASE, "  tracker:", "    key: label"));
  only(error, { path: "tracker.model_type", line: 8, column: 5, problem: /is required/ });
  error = await fail(yaml(...BASE, "  tracker:", "    model_type: regresion"));
  only(error, {
    path: "tracker.model_type",
    line: 8,
    column: 17,
    problem: /must be "classification" or "regression", got "regresion"/,
    fix: /write "regression"/,
  });
});

Deno.test("api.tracker must be a map with known keys and a string key", async () => {
  let error = await fail(yaml(...BASE, "  tracker: classification"));
  only(error, { path: "tracker", line: 7, column: 12, problem: /must be a map/ });
  error = await fail(
    yaml(...BASE, "  tracker:", "    model_type: classification", "    key: 3", "    keys: x"),
  );
  issue(error, { path: "tracker.key", line: 9, column: 10, problem: /must be a string, got 3/ });
  issue(error, { path: "tracker.keys", line: 10, column: 5, problem: /did you mean "key"/ });
});

// ---------------------------------------------------------------- api: compute

Deno.test("compute replica counts must be integers of at least 1", async () => {
  const cases: [string, RegExp, RegExp][] = [
    ["two", /must be an integer of at least 1, got "two"/, /write a whole number such as 1/],
    ["0", /got 0/, /whole number/],
    ["-1", /got -1/, /whole number/],
    ["1.5", /got 1\.5/, /whole number/],
    ["1.0", /got 1\.0/, /whole number/],
    ["true", /got true/, /whole number/],
    ['"2"', /got "2"/, /remove the quotes: write 2/],
    ["[1]", /got a list/, /whole number/],
  ];
  for (const key of ["min_replicas", "max_replicas", "init_replicas"]) {
    for (const [value, problem, fix] of cases) {
      const error = await fail(yaml(...BASE, "  compute:", `    ${key}: ${value}`));
      only(error, { path: `compute.${key}`, line: 8, column: 7 + key.length, problem, fix });
    }
  }
});

Deno.test("compute.min_replicas above max_replicas is refused", async () => {
  const error = await fail(yaml(...BASE, "  compute:", "    min_replicas: 3", "    max_replicas: 2"));
  only(error, {
    path: "compute.max_replicas",
    line: 9,
    column: 19,
    problem: /must be at least min_replicas \(3\), got 2/,
  });
});

Deno.test("compute.max_replicas defaults to min_replicas", async () => {
  const resolved = await load(yaml(...BASE, "  compute:", "    min_replicas: 3"));
  const { compute } = resolved.apis[0]!;
  assert.deepEqual([compute.minReplicas, compute.maxReplicas, compute.initReplicas], [3, 3, 3]);
});

Deno.test("compute.init_replicas must lie within [min, max]", async () => {
  let error = await fail(
    yaml(...BASE, "  compute:", "    min_replicas: 2", "    max_replicas: 4", "    init_replicas: 5"),
  );
  only(error, {
    path: "compute.init_replicas",
    line: 10,
    column: 20,
    problem: /must lie between min_replicas \(2\) and max_replicas \(4\), got 5/,
  });
  error = await fail(yaml(...BASE, "  compute:", "    init_replicas: 2"));
  only(error, {
    path: "compute.init_replicas",
    line: 8,
    problem: /between min_replicas \(1\) and max_replicas \(1\)/,
  });
  const resolved = await load(yaml(...BASE, "  compute:", "    max_replicas: 4", "    init_replicas: 3"));
  assert.equal(resolved.apis[0]!.compute.initReplicas, 3);
});

Deno.test("compute.gpu must be an integer of at least 0", async () => {
  const error = await fail(yaml(...BASE, "  compute:", "    gpu: -1"));
  only(error, {
    path: "compute.gpu",
    line: 8,
    column: 10,
    problem: /must be an integer of at least 0, got -1/,
  });
  const resolved = await load(yaml(...BASE, "  compute:", "    gpu: 0"));
  assert.equal(resolved.apis[0]!.compute.gpu, 0);
});

Deno.test("compute.cpu must be a CPU quantity above 0", async () => {
  const cases: [string, RegExp][] = [
    ["lots", /invalid CPU quantity "lots": expected a number/],
    ["1Gi", /CPU is counted in cores/],
    ["0", /must be more than 0, got 0/],
    ["0m", /must be more than 0, got "0m"/],
    ["true", /must be a quantity, got true/],
  ];
  for (const [value, problem] of cases) {
    const error = await fail(yaml(...BASE, "  compute:", `    cpu: ${value}`));
    only(error, { path: "compute.cpu", line: 8, column: 10, problem });
  }
});

Deno.test("compute.mem must be a memory quantity above 0", async () => {
  const cases: [string, RegExp][] = [
    ["1GB", /invalid memory quantity "1GB": unknown unit "GB"/],
    ["512m", /"m" means a fraction of a byte/],
    ["0Mi", /must be more than 0, got "0Mi"/],
    ["-1Gi", /must not be negative/],
    ["{a: 1}", /must be a quantity, got a map/],
  ];
  for (const [value, problem] of cases) {
    const error = await fail(yaml(...BASE, "  compute:", `    mem: ${value}`));
    only(error, { path: "compute.mem", line: 8, column: 10, problem });
  }
});

Deno.test("compute must be a map with known keys", async () => {
  let error = await fail(yaml(...BASE, "  compute: 2"));
  only(error, { path: "compute", line: 7, column: 12, problem: /must be a map, got 2/ });
  error = await fail(yaml(...BASE, "  compute:", "    memory: 1Gi", "    target_cpu_utilization: 80"));
  issue(error, { path: "compute.memory", line: 8, column: 5, problem: /^unknown key$/ });
  issue(error, { path: "compute.target_cpu_utilization", line: 9, column: 5, problem: /unknown key/ });
  error = await fail(yaml(...BASE, "  compute:", "    min_replica: 1"));
  only(error, { path: "compute.min_replica", problem: /did you mean "min_replicas"/ });
});

// ---------------------------------------------------------------- all at once

Deno.test("every issue is reported at once, in source order", async () => {
  const error = await fail(yaml(
    "- kind: deployment", // 1
    "  name: Iris", // 2
    "- kind: api", // 3
    "  name: classifier", // 4
    "  python:", // 5
    "    inference: missing.py", // 6
    "  compute:", // 7
    "    min_replicas: two", // 8
    "    mem: lots", // 9
    "- kind: api", // 10
    "  name: classifier", // 11
    "  python: {inference: src/inference.py, env: {N: 1}}", // 12
    "  onnx: {}", // 13
    "- kind: thing", // 14
  ));
  assert.deepEqual(
    error.issues.map((i) => [i.line, i.resource, i.path]),
    [
      [2, 'deployment "Iris"', "name"],
      [6, 'api "classifier"', "python.inference"],
      [8, 'api "classifier"', "compute.min_replicas"],
      [9, 'api "classifier"', "compute.mem"],
      [11, 'api "classifier"', "name"],
      [12, 'api "classifier"', "python.env.N"],
      [13, 'api "classifier"', "onnx"],
      [14, "resource #4", "kind"],
    ],
  );
  assert.equal(error.message.split("\n").length, 8);
});

Deno.test("formatIssue() writes one line: file:line:column: resource: path: problem (fix: ...)", () => {
  const text = formatIssue({
    file: "cortex.yaml",
    resource: 'api "classifier"',
    path: "compute.min_replicas",
    line: 14,
    column: 7,
    problem: 'must be an integer of at least 1, got "two"',
    fix: "write a whole number such as 1",
  });
  assert.equal(
    text,
    'cortex.yaml:14:7: api "classifier": compute.min_replicas: must be an integer of at least 1, got "two" (fix: write a whole number such as 1)',
  );
  assert.equal(
    formatIssue({
      file: "cortex.yaml",
      resource: undefined,
      path: "",
      line: undefined,
      column: undefined,
      problem: "No deployment resource",
      fix: "add one\nwith a name",
    }),
    "cortex.yaml: No deployment resource (fix: add one with a name)",
  );
});
