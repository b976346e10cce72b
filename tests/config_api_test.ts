/**
 * cortex.yaml: the deployment resource and the api keys name, python, metadata and endpoint.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadProjectConfig } from "../src/config/load.ts";
import { BASE, expectError, fail, INFERENCE, issue, load, only, project, yaml } from "./_config.ts";

// ---------------------------------------------------------------- deployment

Deno.test("deployment.name is required", async () => {
  const error = await fail(yaml("- kind: deployment", ...BASE.slice(2)));
  only(error, { path: "name", line: 1, column: 3, resource: "resource #1", problem: /is required/ });
});

Deno.test("deployment.name must be a DNS-1123 label", async () => {
  for (const name of ["Iris", "iris_set", "-iris", "iris-", "a".repeat(64), "i.ris"]) {
    const error = await fail(yaml("- kind: deployment", `  name: "${name}"`, ...BASE.slice(2)));
    only(error, { path: "name", line: 2, column: 9, problem: /must be a DNS-1123 label/, fix: /use e\.g\./ });
  }
});

Deno.test("deployment.name may start with a digit, as DNS-1123 allows", async () => {
  const resolved = await load(yaml("- kind: deployment", "  name: 1iris", ...BASE.slice(2)));
  assert.equal(resolved.deployment.name, "1iris");
  assert.equal(resolved.apis[0]!.endpoint, "/1iris/classifier");
});

Deno.test("deployment.name must be a string", async () => {
  const error = await fail(yaml("- kind: deployment", "  name: 12", ...BASE.slice(2)));
  only(error, {
    path: "name",
    line: 2,
    column: 9,
    problem: /must be a string, got 12/,
    fix: /quote the value/,
  });
});

Deno.test("deployment: unknown keys are refused", async () => {
  const error = await fail(yaml(...BASE.slice(0, 2), "  pyhton_root: src", ...BASE.slice(2)));
  only(error, {
    path: "pyhton_root",
    line: 3,
    column: 3,
    resource: 'deployment "iris"',
    problem: /unknown key, did you mean "python_root"\?/,
  });
});

Deno.test("deployment.python_root must be a relative path inside the project", async () => {
  const cases: [string, RegExp][] = [
    ["/usr/lib", /must be relative to the project root, got the absolute path "\/usr\/lib"/],
    ["../lib", /must not contain a "\.\." segment/],
    ["src/../../lib", /must not contain a "\.\." segment/],
    ["src\\\\lib", /must use forward slashes/],
    [".venv/lib", /"\.venv" starts with "\."/],
    ["", /must not be empty/],
  ];
  for (const [value, problem] of cases) {
    const error = await fail(yaml(...BASE.slice(0, 2), `  python_root: "${value}"`, ...BASE.slice(2)));
    only(error, { path: "python_root", line: 3, column: 16, problem });
  }
});

Deno.test("deployment.python_root must exist as a directory", async () => {
  let error = await fail(yaml(...BASE.slice(0, 2), "  python_root: lib", ...BASE.slice(2)));
  only(error, { path: "python_root", line: 3, column: 16, problem: /directory "lib" does not exist/ });
  error = await fail(yaml(...BASE.slice(0, 2), "  python_root: src/inference.py", ...BASE.slice(2)));
  only(error, { path: "python_root", line: 3, problem: /is not a directory/ });
});

Deno.test("deployment.python_root may not leave the project through a symlink", async () => {
  await using outside = await project({ "x.py": "" });
  await using p = await project({
    "cortex.yaml": yaml(...BASE.slice(0, 2), "  python_root: lib", ...BASE.slice(2)),
    "src/inference.py": INFERENCE,
  });
  await Deno.symlink(outside.dir, join(p.dir, "lib"));
  const error = await expectError(() => loadProjectConfig(p.dir), "CONFIG_INVALID");
  only(error, { path: "python_root", line: 3, problem: /leads outside the project through a symbolic link/ });
});

// ---------------------------------------------------------------- api: name, keys

Deno.test("api.name is required", async () => {
  const error = await fail(yaml(...BASE, "- kind: api", "  python: {inference: src/inference.py}"));
  only(error, { path: "name", line: 7, column: 3, resource: "resource #3", problem: /is required/ });
});

Deno.test("api.name must start with a letter and hold lower-case letters, digits, dashes", async () => {
  for (const name of ["1st", "Classifier", "my_api", "api-", "a".repeat(64)]) {
    const error = await fail(yaml(...BASE.slice(0, 3), `  name: "${name}"`, ...BASE.slice(4)));
    const found = only(error, { path: "name", line: 4, column: 9, resource: `api "${name}"` });
    assert.match(
      found.problem,
      name.length > 63 ? /at most 63 characters/ : /must start with a lower-case letter/,
    );
  }
});

Deno.test("api.name suggestions are valid names", async () => {
  const error = await fail(yaml(...BASE.slice(0, 3), "  name: My_Classifier", ...BASE.slice(4)));
  only(error, { path: "name", fix: /use e\.g\. "my-classifier"/ });
});

Deno.test("duplicate api names are refused naming both lines", async () => {
  const error = await fail(
    yaml(...BASE, "- kind: api", "  name: classifier", "  python: {inference: src/inference.py}"),
  );
  only(error, {
    path: "name",
    line: 8,
    column: 9,
    problem: /"classifier" is already the name of the api at line 4/,
  });
});

Deno.test("unknown api keys are refused, with 'did you mean' when close", async () => {
  const error = await fail(yaml(...BASE, "  endpiont: /x", "  replicas: 2"));
  issue(error, { path: "endpiont", line: 7, column: 3, problem: /unknown key, did you mean "endpoint"\?/ });
  const far = issue(error, { path: "replicas", line: 8, column: 3, problem: /^unknown key$/ });
  assert.match(far.fix, /valid keys here are kind, name, python, metadata, endpoint, tracker, compute/);
});

Deno.test("tensorflow and onnx apis are out of scope", async () => {
  const error = await fail(yaml(...BASE, "  tensorflow:", "    model: s3://x", "  onnx: {model: a.onnx}"));
  issue(error, {
    path: "tensorflow",
    line: 7,
    column: 3,
    problem: /out of scope: only Python inference files are supported/,
  });
  issue(error, {
    path: "onnx",
    line: 9,
    column: 3,
    problem: /out of scope: only Python inference files are supported/,
  });
});

Deno.test("predictor: beside python: in one api asks to keep one", async () => {
  const error = await fail(yaml(
    ...BASE,
    "  predictor:",
    "    path: src/inference.py",
  ));
  only(error, { path: "predictor", line: 7, column: 3, fix: /keep one/ });
});

// ---------------------------------------------------------------- api: python

Deno.test("api.python must be a map", async () => {
  const error = await fail(yaml(...BASE.slice(0, 4), "  python: src/inference.py"));
  only(error, { path: "python", line: 5, column: 11, problem: /must be a map, got "src\/inference\.py"/ });
});

Deno.test("api.python.inference is required", async () => {
  const error = await fail(yaml(...BASE.slice(0, 4), "  python:", "    env: {A: b}"));
  only(error, { path: "python.inference", line: 6, column: 5, problem: /is required/ });
});

Deno.test("api.python.inference must be a relative path inside the project", async () => {
  const cases: [string, RegExp][] = [
    ["/srv/inference.py", /must be relative to the project root/],
    ["../inference.py", /must not contain a "\.\." segment/],
    ["C:/inference.py", /must be relative to the project root/],
    [".hidden/inference.py", /"\.hidden" starts with "\."/],
    ["src/inference.txt", /must be a Python file ending in "\.py"/],
  ];
  for (const [value, problem] of cases) {
    const error = await fail(yaml(...BASE.slice(0, 5), `    inference: "${value}"`));
    only(error, { path: "python.inference", line: 6, column: 16, problem });
  }
});

Deno.test("a missing inference file suggests the only .py file of the project", async () => {
  const error = await fail(yaml(...BASE.slice(0, 5), "    inference: inference.py"));
  only(error, {
    path: "python.inference",
    line: 6,
    column: 16,
    problem: /file "inference\.py" does not exist in the project/,
    fix: /did you mean "src\/inference\.py"\?/,
  });
});

Deno.test("a missing inference file with several .py files gives a general fix", async () => {
  const error = await fail(yaml(...BASE.slice(0, 5), "    inference: inference.py"), { "src/helper.py": "" });
  only(error, {
    path: "python.inference",
    line: 6,
    fix: /correct the path; it is relative to the directory/,
  });
});

Deno.test("api.python.inference must be a regular file", async () => {
  const error = await fail(yaml(...BASE.slice(0, 5), "    inference: dir.py"), { "dir.py/x": "" });
  only(error, { path: "python.inference", line: 6, problem: /"dir\.py" is not a regular file/ });
});

Deno.test("api.python.inference may not leave the project through a symlink", async () => {
  await using outside = await project({ "evil.py": INFERENCE });
  await using p = await project({
    "cortex.yaml": yaml(...BASE.slice(0, 5), "    inference: src/evil.py"),
    "src/inference.py": INFERENCE,
  });
  await Deno.symlink(join(outside.dir, "evil.py"), join(p.dir, "src/evil.py"));
  const error = await expectError(() => loadProjectConfig(p.dir), "CONFIG_INVALID");
  only(error, { path: "python.inference", line: 6, column: 16, problem: /leads outside the project/ });
});

Deno.test("api.python.env values must be strings", async () => {
  const error = await fail(
    yaml(...BASE, "    env:", "      THREADS: 4", "      DEBUG: true", "      EMPTY:"),
  );
  issue(error, {
    path: "python.env.THREADS",
    line: 8,
    column: 16,
    problem: /must be a string, got 4/,
    fix: /quote the value: THREADS: "4"/,
  });
  issue(error, {
    path: "python.env.DEBUG",
    line: 9,
    column: 14,
    problem: /got true/,
    fix: /quote the value/,
  });
  issue(error, { path: "python.env.EMPTY", line: 10, problem: /got nothing/, fix: /EMPTY: ""/ });
});

Deno.test("api.python.env must be a map of valid names", async () => {
  let error = await fail(yaml(...BASE, "    env: [A=1]"));
  only(error, { path: "python.env", line: 7, column: 10, problem: /must be a map, got a list/ });
  error = await fail(yaml(...BASE, "    env:", '      "1BAD": x'));
  only(error, {
    path: "python.env.1BAD",
    line: 8,
    column: 7,
    problem: /not a valid environment variable name/,
  });
});

Deno.test("api.python: unknown keys are refused", async () => {
  const error = await fail(yaml(...BASE, "    inferance: x.py"));
  only(error, { path: "python.inferance", line: 7, column: 5, problem: /did you mean "inference"/ });
});

// ---------------------------------------------------------------- api: metadata

Deno.test("api.metadata must be a map", async () => {
  const error = await fail(yaml(...BASE, "  metadata: [a, b]"));
  only(error, { path: "metadata", line: 7, column: 13, problem: /must be a map, got a list/ });
});

// ---------------------------------------------------------------- api: endpoint

Deno.test("api.endpoint must be a clean path", async () => {
  const cases: [string, RegExp][] = [
    ["predict", /must start with "\/"/],
    ["/pre dict", /may hold only letters, digits and the characters/],
    ["/a?b", /may hold only/],
    ["/a//b", /must not contain "\/\/"/],
    ["/a/../b", /must not contain a "\." or "\.\." segment/],
    ["/a/./b", /segment/],
  ];
  for (const [value, problem] of cases) {
    const error = await fail(yaml(...BASE, `  endpoint: "${value}"`));
    only(error, { path: "endpoint", line: 7, column: 13, problem });
  }
});

Deno.test("api.endpoint must be a string", async () => {
  const error = await fail(yaml(...BASE, "  endpoint: 42"));
  only(error, { path: "endpoint", line: 7, column: 13, problem: /must be a string, got 42/ });
});

Deno.test("api.endpoint may not be a reserved route", async () => {
  for (const value of ["/", "/healthz", "/livez/", "/metrics", "/metrics/x", "/_console", "/_console/data"]) {
    const error = await fail(yaml(...BASE, `  endpoint: ${value}`));
    only(error, { path: "endpoint", line: 7, column: 13, problem: /is reserved for the server/ });
  }
  const resolved = await load(yaml(...BASE, "  endpoint: /metricsx"));
  assert.equal(resolved.apis[0]!.endpoint, "/metricsx");
  const near = await load(yaml(...BASE, "  endpoint: /_consoles"));
  assert.equal(near.apis[0]!.endpoint, "/_consoles");
});

Deno.test("a default endpoint under /metrics is refused at the api name", async () => {
  const error = await fail(yaml("- kind: deployment", "  name: metrics", ...BASE.slice(2)));
  only(error, {
    path: "endpoint",
    line: 4,
    column: 9,
    problem: /the default endpoint "\/metrics\/classifier" is reserved/,
  });
});

Deno.test("endpoints must be unique; the issue names both APIs", async () => {
  const error = await fail(yaml(
    ...BASE,
    "  endpoint: /predict/",
    "- kind: api",
    "  name: second",
    "  endpoint: /predict",
    "  python: {inference: src/inference.py}",
  ));
  const found = only(error, { path: "endpoint", line: 10, column: 13, resource: 'api "second"' });
  assert.match(found.problem, /"\/predict" is already used by api "classifier" \(line 7\)/);
});

Deno.test("an explicit endpoint may not take another api's default endpoint", async () => {
  const error = await fail(yaml(
    ...BASE,
    "- kind: api",
    "  name: second",
    "  endpoint: /iris/classifier",
    "  python: {inference: src/inference.py}",
  ));
  only(error, { path: "endpoint", line: 9, problem: /already used by api "classifier" \(line 4\)/ });
});
