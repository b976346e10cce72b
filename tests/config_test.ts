import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { loadProjectConfig, MAX_CONFIG_BYTES } from "../src/config/load.ts";
import { ConfigError, type ConfigIssue, formatIssue } from "../src/config/errors.ts";
import type { ResolvedProject } from "../src/config/types.ts";

// ---------------------------------------------------------------- helpers

const INFERENCE = "def predict(sample, metadata):\n    return sample\n";

/** Lines of YAML, one argument per line, so that line numbers are visible. */
function yaml(...lines: string[]): string {
  return lines.join("\n") + "\n";
}

/** A valid config; lines 1–6. Tests append keys of the api at two spaces. */
const BASE = [
  "- kind: deployment", // 1
  "  name: iris", // 2
  "- kind: api", // 3
  "  name: classifier", // 4
  "  python:", // 5
  "    inference: src/inference.py", // 6
];

interface TempProject extends AsyncDisposable {
  readonly dir: string;
}

/** A project in a temp dir; `files` maps relative paths to contents. */
async function project(files: Record<string, string>): Promise<TempProject> {
  const dir = await Deno.makeTempDir({ prefix: "cortex_config_test_" });
  for (const [name, content] of Object.entries(files)) {
    await Deno.mkdir(dirname(join(dir, name)), { recursive: true });
    await Deno.writeTextFile(join(dir, name), content);
  }
  return {
    dir,
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

/** Loads `config` as cortex.yaml, next to `src/inference.py` and `extra` files. */
async function load(
  config: string,
  extra: Record<string, string> = {},
): Promise<ResolvedProject> {
  await using p = await project({ "cortex.yaml": config, "src/inference.py": INFERENCE, ...extra });
  return await loadProjectConfig(p.dir);
}

/** Loads `config`, expecting a ConfigError with `code`. */
async function fail(
  config: string,
  extra: Record<string, string> = {},
  code: ConfigError["code"] = "CONFIG_INVALID",
): Promise<ConfigError> {
  await using p = await project({ "cortex.yaml": config, "src/inference.py": INFERENCE, ...extra });
  return await expectError(() => loadProjectConfig(p.dir), code);
}

async function expectError(
  run: () => Promise<unknown>,
  code: ConfigError["code"],
): Promise<ConfigError> {
  try {
    await run();
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    assert.equal(e.code, code, e.message);
    assert.equal(e.message, e.issues.map(formatIssue).join("\n"));
    return e;
  }
  throw new assert.AssertionError({ message: `expected a ConfigError ${code}` });
}

interface Expected {
  readonly path: string;
  readonly line?: number | undefined;
  readonly column?: number;
  readonly resource?: string;
  readonly problem?: RegExp;
  readonly fix?: RegExp;
}

/** Asserts that `error` has exactly one issue at `expected.path` and returns it. */
function issue(error: ConfigError, expected: Expected): ConfigIssue {
  const found = error.issues.filter((i) => i.path === expected.path);
  assert.equal(found.length, 1, `one issue at "${expected.path}" in:\n${error.message}`);
  const got = found[0]!;
  const line = formatIssue(got);
  if ("line" in expected) assert.equal(got.line, expected.line, line);
  if (expected.column !== undefined) assert.equal(got.column, expected.column, line);
  if (expected.resource !== undefined) assert.equal(got.resource, expected.resource, line);
  if (expected.problem !== undefined) assert.match(got.problem, expected.problem, line);
  if (expected.fix !== undefined) assert.match(got.fix, expected.fix, line);
  assert.ok(got.fix.length > 0, `a fix in: ${line}`);
  assert.ok(line.includes(expected.path), `the key path in: ${line}`);
  if (got.line !== undefined) {
    assert.ok(line.startsWith(`cortex.yaml:${got.line}:${got.column}: `), line);
  }
  return got;
}

/** Asserts that the only issue is the one described. */
function only(error: ConfigError, expected: Expected): ConfigIssue {
  assert.equal(error.issues.length, 1, error.message);
  return issue(error, expected);
}

// ---------------------------------------------------------------- valid configs

Deno.test("a valid multi-API config resolves with defaults", async () => {
  await using p = await project({
    "cortex.yaml": yaml(
      "# iris",
      "- kind: deployment",
      "  name: iris",
      "  python_root: ./src/",
      "- kind: api",
      "  name: classifier",
      "  python:",
      "    inference: ./src//inference.py",
      "- kind: api",
      "  name: regressor",
      "  endpoint: /predict/v1/",
      "  python:",
      "    inference: regress.py",
      "    env:",
      "      MODEL: small",
      '      THREADS: "4"',
      "  metadata:",
      "    labels: [setosa, versicolor]",
      "    nested: {threshold: 0.5, enabled: true, none: null}",
      "  tracker:",
      "    model_type: regression",
      "    key: value",
      "  compute:",
      "    min_replicas: 2",
      "    max_replicas: 4",
      "    cpu: 500m",
      "    mem: 1.5Gi",
      "    gpu: 1",
    ),
    "src/inference.py": INFERENCE,
    "regress.py": INFERENCE,
  });
  const resolved = await loadProjectConfig(p.dir);
  const common = { pythonInterface: "init_metadata", model: undefined, pythonPath: undefined } as const;
  assert.deepEqual(resolved, {
    dialect: "python",
    ignored: [],
    root: p.dir,
    configPath: join(p.dir, "cortex.yaml"),
    deployment: { name: "iris", pythonRoot: "src" },
    apis: [
      {
        ...common,
        name: "classifier",
        endpoint: "/iris/classifier",
        inference: "src/inference.py",
        env: {},
        metadata: {},
        tracker: undefined,
        compute: {
          minReplicas: 1,
          maxReplicas: 1,
          initReplicas: 1,
          cpu: undefined,
          memBytes: undefined,
          mem: undefined,
          gpu: 0,
        },
      },
      {
        ...common,
        name: "regressor",
        endpoint: "/predict/v1",
        inference: "regress.py",
        env: { MODEL: "small", THREADS: "4" },
        metadata: {
          labels: ["setosa", "versicolor"],
          nested: { threshold: 0.5, enabled: true, none: null },
        },
        tracker: { key: "value", modelType: "regression" },
        compute: {
          minReplicas: 2,
          maxReplicas: 4,
          initReplicas: 2,
          cpu: 0.5,
          memBytes: 1.5 * 2 ** 30,
          mem: "1.5Gi",
          gpu: 1,
        },
      },
    ],
  });
});

Deno.test("empty optional keys count as omitted, as in Cortex", async () => {
  const resolved = await load(yaml(...BASE, "  metadata:", "  compute:", "  tracker:", "  endpoint:"));
  const api = resolved.apis[0]!;
  assert.deepEqual(api.metadata, {});
  assert.equal(api.tracker, undefined);
  assert.equal(api.endpoint, "/iris/classifier");
  assert.equal(api.compute.minReplicas, 1);
});

Deno.test("a numeric mem keeps its text and a numeric cpu is cores", async () => {
  const resolved = await load(yaml(...BASE, "  compute:", "    mem: 1073741824", "    cpu: 2"));
  const { compute } = resolved.apis[0]!;
  assert.equal(compute.memBytes, 2 ** 30);
  assert.equal(compute.mem, "1073741824");
  assert.equal(compute.cpu, 2);
});

Deno.test("YAML anchors and merge keys can share settings between APIs", async () => {
  const resolved = await load(yaml(
    ...BASE,
    "  compute: &small",
    "    min_replicas: 2",
    "    mem: 1Gi",
    "- kind: api",
    "  name: second",
    "  python: {inference: src/inference.py}",
    "  compute:",
    "    <<: *small",
    "    min_replicas: 3",
  ));
  assert.equal(resolved.apis[0]!.compute.minReplicas, 2);
  assert.equal(resolved.apis[1]!.compute.minReplicas, 3);
  assert.equal(resolved.apis[1]!.compute.memBytes, 2 ** 30);
});

Deno.test("a __proto__ key in metadata stays plain data", async () => {
  const resolved = await load(yaml(...BASE, "  metadata:", "    __proto__: {polluted: true}"));
  const metadata = resolved.apis[0]!.metadata;
  assert.deepEqual(Object.keys(metadata), ["__proto__"]);
  assert.equal(({} as Record<string, unknown>)["polluted"], undefined);
  assert.equal(Object.getPrototypeOf(metadata), Object.prototype);
});

Deno.test("a symbolic link that stays inside the project is accepted", async () => {
  await using p = await project({
    "cortex.yaml": yaml(...BASE.slice(0, 5), "    inference: link.py"),
    "src/inference.py": INFERENCE,
  });
  await Deno.symlink("src/inference.py", join(p.dir, "link.py"));
  const resolved = await loadProjectConfig(p.dir);
  assert.equal(resolved.apis[0]!.inference, "link.py");
});

// ---------------------------------------------------------------- the file

Deno.test("a missing cortex.yaml is CONFIG_NOT_FOUND with a fix", async () => {
  await using p = await project({ "src/inference.py": INFERENCE });
  const error = await expectError(() => loadProjectConfig(p.dir), "CONFIG_NOT_FOUND");
  const only = error.issues[0]!;
  assert.equal(error.issues.length, 1);
  assert.equal(only.file, "cortex.yaml");
  assert.match(only.problem, /No config file at ".*cortex\.yaml"/);
  assert.match(error.message, /\(fix: create cortex\.yaml in the project directory/);
});

Deno.test("a missing project directory is CONFIG_NOT_FOUND", async () => {
  await using p = await project({});
  const error = await expectError(
    () => loadProjectConfig(join(p.dir, "nope")),
    "CONFIG_NOT_FOUND",
  );
  assert.match(error.message, /Project directory ".*nope" does not exist/);
});

Deno.test("cortex.yaml being a directory is CONFIG_NOT_FOUND", async () => {
  await using p = await project({ "cortex.yaml/x": "" });
  const error = await expectError(() => loadProjectConfig(p.dir), "CONFIG_NOT_FOUND");
  assert.match(error.message, /is not a regular file/);
});

Deno.test("another config file can be given, and issues name it", async () => {
  await using p = await project({
    "conf/dev.yaml": yaml(...BASE, "  endpiont: /x"),
    "src/inference.py": INFERENCE,
  });
  const error = await expectError(
    () => loadProjectConfig(p.dir, { configFile: "conf/dev.yaml" }),
    "CONFIG_INVALID",
  );
  assert.equal(error.issues[0]!.file, "conf/dev.yaml");
  assert.ok(error.message.startsWith("conf/dev.yaml:7:3: "), error.message);
});

Deno.test("a config over 1 MiB is CONFIG_TOO_LARGE", async () => {
  const big = yaml(...BASE, "  metadata:", `    blob: "${"x".repeat(MAX_CONFIG_BYTES)}"`);
  const error = await fail(big, {}, "CONFIG_TOO_LARGE");
  assert.match(error.message, /over the limit of 1048576 bytes \(1 MiB\): \d+ bytes/);
});

Deno.test("a config of exactly 1 MiB is read", async () => {
  const head = [...BASE, "  metadata:", "    blob: "].join("\n");
  const config = head + "x".repeat(MAX_CONFIG_BYTES - head.length - 1) + "\n";
  assert.equal(new TextEncoder().encode(config).length, MAX_CONFIG_BYTES);
  const resolved = await load(config);
  assert.equal(String(resolved.apis[0]!.metadata["blob"]).length, MAX_CONFIG_BYTES - head.length - 1);
});

Deno.test("invalid UTF-8 is CONFIG_SYNTAX", async () => {
  await using p = await project({ "src/inference.py": INFERENCE });
  await Deno.writeFile(join(p.dir, "cortex.yaml"), new Uint8Array([0x2d, 0x20, 0xff, 0x0a]));
  const error = await expectError(() => loadProjectConfig(p.dir), "CONFIG_SYNTAX");
  assert.match(error.message, /not valid UTF-8/);
});

// ---------------------------------------------------------------- YAML syntax

Deno.test("a YAML syntax error is CONFIG_SYNTAX with line and column", async () => {
  const error = await fail(yaml(...BASE, "  metadata: {a: [1, 2}"), {}, "CONFIG_SYNTAX");
  const first = error.issues[0]!;
  assert.equal(first.line, 7);
  assert.ok(first.column !== undefined);
  assert.match(first.problem, /^Invalid YAML: /);
  assert.ok(error.message.startsWith(`cortex.yaml:7:${first.column}: Invalid YAML: `), error.message);
});

Deno.test("tabs used as indentation are CONFIG_SYNTAX naming the line", async () => {
  const error = await fail(yaml(...BASE, "  compute:", "\tgpu: 1"), {}, "CONFIG_SYNTAX");
  assert.ok(error.issues.some((i) => i.line === 8 && /tabs/.test(i.fix)), error.message);
});

Deno.test("a repeated key is CONFIG_SYNTAX naming the second one", async () => {
  const error = await fail(yaml(...BASE, "  name: other"), {}, "CONFIG_SYNTAX");
  const first = error.issues[0]!;
  assert.equal(first.line, 7);
  assert.equal(first.column, 3);
  assert.match(first.problem, /unique/);
  assert.match(first.fix, /remove one of the repeated keys/);
});

Deno.test("several YAML documents are CONFIG_SYNTAX", async () => {
  const error = await fail(yaml(...BASE, "---", "- kind: api"), {}, "CONFIG_SYNTAX");
  assert.equal(error.issues[0]!.line, 7);
  assert.match(error.issues[0]!.fix, /'---'/);
});

Deno.test("a billion-laughs alias bomb is refused quickly", async () => {
  const bomb = yaml(
    ...BASE,
    "  metadata:",
    '    a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
    "    b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]",
    "    c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]",
    "    d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]",
    "    e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]",
    "    f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]",
    "    g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]",
    "    h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]",
    "    i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]",
  );
  const started = performance.now();
  const error = await fail(bomb, {}, "CONFIG_SYNTAX");
  assert.ok(performance.now() - started < 5000, "refused without expanding");
  assert.equal(error.issues.length, 1);
  const bombIssue = error.issues[0]!;
  assert.match(bombIssue.problem, /YAML aliases expand too much/);
  assert.equal(bombIssue.line, 9);
  assert.match(error.message, /^cortex\.yaml:9:\d+: YAML aliases expand too much/);
});

Deno.test("an alias inside its own anchor is refused", async () => {
  const error = await fail(yaml(...BASE, "  metadata: &m", "    self: *m"), {}, "CONFIG_SYNTAX");
  assert.equal(error.issues[0]!.line, 8);
  assert.match(error.issues[0]!.problem, /Alias "\*m" refers to a value that contains it/);
});

Deno.test("an alias without an anchor is CONFIG_SYNTAX at the alias", async () => {
  const error = await fail(yaml(...BASE, "  compute: *nope"), {}, "CONFIG_SYNTAX");
  const first = error.issues[0]!;
  assert.equal(first.line, 7);
  assert.equal(first.column, 12);
  assert.match(first.problem, /Unknown alias "\*nope"/);
});

Deno.test("a merge key with a non-map value is refused", async () => {
  const error = await fail(yaml(...BASE, "  compute:", "    <<: 3"), {}, "CONFIG_SYNTAX");
  assert.equal(error.issues[0]!.line, 8);
  assert.match(error.issues[0]!.problem, /merge key "<<" needs a map/);
});

// ---------------------------------------------------------------- top level

Deno.test("an empty file is an issue with a fix", async () => {
  const error = await fail("# nothing yet\n");
  const only = error.issues[0]!;
  assert.equal(error.issues.length, 1);
  assert.equal(only.line, undefined);
  assert.equal(formatIssue(only).split(": ")[0], "cortex.yaml");
  assert.match(only.problem, /The file is empty/);
});

Deno.test("a top-level map is refused, with a hint to add '- '", async () => {
  const error = await fail(yaml("kind: deployment", "name: iris"));
  const found = only(error, {
    path: "",
    line: 1,
    column: 1,
    problem: /must be a list of resources, got a map/,
  });
  assert.match(found.fix, /start each resource with "- "/);
});

Deno.test("more than 1000 resources are refused", async () => {
  const lines = ["- kind: deployment", "  name: iris"];
  for (let i = 0; i < 1000; i++) lines.push("- kind: api", `  name: a${i}`);
  const error = await fail(yaml(...lines));
  only(error, { path: "", line: 1, problem: /Too many resources: 1001, at most 1000/ });
});

Deno.test("a resource that is not a map is refused", async () => {
  const error = await fail(yaml(...BASE, "- just text"));
  only(error, { path: "", line: 7, column: 3, resource: "resource #3", problem: /got "just text"/ });
});

Deno.test("a resource without kind is refused", async () => {
  const error = await fail(yaml(...BASE, "- name: orphan"));
  only(error, { path: "kind", line: 7, column: 3, resource: "resource #3", problem: /is required/ });
});

Deno.test("an unknown kind names the allowed kinds and suggests one", async () => {
  const error = await fail(yaml(...BASE, "- kind: API", "  name: x", "- kind: model"));
  const upper = error.issues.find((i) => i.line === 7)!;
  assert.match(upper.problem, /must be one of deployment, api, got "API"/);
  assert.match(upper.fix, /write "kind: api"/);
  const model = error.issues.find((i) => i.line === 9)!;
  assert.equal(model.resource, "resource #4");
  assert.equal(model.column, 9);
  assert.match(model.fix, /"kind: deployment" or "kind: api"/);
});

Deno.test("a config without a deployment is refused", async () => {
  const error = await fail(yaml(...BASE.slice(2)));
  only(error, { path: "", line: undefined, problem: /No deployment resource/ });
});

Deno.test("a second deployment is refused naming the first", async () => {
  const error = await fail(yaml(...BASE, "- kind: deployment", "  name: other"));
  only(error, {
    path: "kind",
    line: 7,
    column: 3,
    resource: 'deployment "other"',
    problem: /only one deployment is allowed, the first is at line 1/,
  });
});

Deno.test("a config without an api is refused", async () => {
  const error = await fail(yaml(...BASE.slice(0, 2)));
  only(error, { path: "", line: 1, problem: /No api resource/ });
});

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
