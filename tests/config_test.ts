/**
 * cortex.yaml: valid configs, the file, YAML syntax and the top level. The
 * deployment and the api keys: config_api_test.ts; tracker and compute:
 * config_compute_test.ts.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadProjectConfig, MAX_CONFIG_BYTES } from "../src/config/load.ts";
import { formatIssue } from "../src/config/errors.ts";
import { BASE, expectError, fail, INFERENCE, load, only, project, yaml } from "./_config.ts";

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
        batching: undefined,
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
        batching: undefined,
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
