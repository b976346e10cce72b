/**
 * The command line end to end, as a subprocess: `validate` on good and
 * broken projects, `predict` and `get` against a real server, `--help` on
 * every subcommand and unknown flags.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { existsSync } from "node:fs";
import { makeProject, PYTHON, ROOT, startServer } from "./_helpers.ts";
import { runCli } from "./_cli.ts";
import { formatNotes } from "../src/cli/get.ts";
import type { ListedApi } from "../src/cli/client.ts";

const IRIS = join(ROOT, "examples", "iris-classifier");

const TWO_APIS = `- kind: deployment
  name: shop
- kind: api
  name: classifier
  python:
    inference: classify.py
- kind: api
  name: clamp
  python:
    inference: clamp.py
`;

Deno.test("validate: a good project passes with exit 0", async () => {
  const result = await runCli(["validate", IRIS, `--python=${PYTHON}`]);
  assert.equal(result.code, 0, result.stderr);
  assert.match(
    result.stdout,
    /^ok: deployment iris: classifier \(\/iris\/classifier\); \d+ files would be staged; Python 3\./,
  );
});

Deno.test("validate: helper modules import and nothing is written into the project", async () => {
  await using project = await makeProject({
    "inference.py": "import helper\n\ndef predict(sample, metadata):\n    return helper.VALUE\n",
    "helper.py": "VALUE = 1\n",
  });
  await Deno.symlink("/etc/hostname", join(project.path, "outside"));
  const result = await runCli(["validate", project.path, `--python=${PYTHON}`]);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /^ok: deployment test: api \(\/test\/api\); 2 files would be staged; /);
  assert.match(result.stderr, /^warning: outside: not staged \(symlink outside project\)$/m);
  assert.equal(
    existsSync(join(project.path, "__pycache__")),
    false,
    "validate wrote bytecode into the project",
  );
});

Deno.test("validate: config problems are all listed with file:line:column, exit 1", async () => {
  await using project = await makeProject({
    "cortex.yaml": `- kind: deployment
  name: test
- kind: api
  name: api
  python:
    inference: inference.py
  colour: blue
  compute:
    min_replicas: two
`,
    "inference.py": "def predict(sample, metadata):\n    return 1\n",
  });
  const result = await runCli(["validate", project.path, `--python=${PYTHON}`]);
  assert.equal(result.code, 1);
  assert.match(result.stderr, /^cortex\.yaml:7:3: .*colour/m);
  assert.match(result.stderr, /^cortex\.yaml:9:19: .*compute\.min_replicas/m);
  assert.match(result.stderr, /^note: the Python checks of each api run once the problems above are fixed$/m);
  assert.match(result.stderr, /^error: 2 problems in /m);
  assert.equal(result.stdout, "");
});

Deno.test("validate: import, signature and init failures of every api, with file:line", async () => {
  await using project = await makeProject({
    "cortex.yaml": TWO_APIS,
    "classify.py":
      "import os\nimport no_such_module_for_cortex\n\ndef predict(sample, metadata):\n    return 1\n",
    "clamp.py": "def init(metadata):\n    x = 1\n    raise RuntimeError('model file missing')\n\n" +
      "def predict(sample, metadata):\n    return 1\n",
  });
  const result = await runCli(["validate", project.path, `--python=${PYTHON}`]);
  assert.equal(result.code, 1);
  assert.match(
    result.stderr,
    /^classify\.py:2: api "classifier": import failed: ModuleNotFoundError: No module named 'no_such_module_for_cortex'$/m,
  );
  assert.match(result.stderr, /^clamp\.py:3: api "clamp": init failed: RuntimeError: model file missing$/m);
  assert.match(result.stderr, /^error: 2 problems in /m);

  await Deno.writeTextFile(join(project.path, "classify.py"), "def predict(sample):\n    return 1\n");
  await Deno.writeTextFile(join(project.path, "clamp.py"), "def predict(sample, metadata):\n    return 1\n");
  const signature = await runCli(["validate", project.path, `--python=${PYTHON}`]);
  assert.equal(signature.code, 1);
  assert.match(signature.stderr, /^classify\.py: api "classifier": signature failed: .*predict/m);
  assert.match(signature.stderr, /^error: 1 problem in /m);
});

Deno.test("validate: a missing interpreter is a problem that says what to do", async () => {
  await using project = await makeProject({
    "inference.py": "def predict(sample, metadata):\n    return 1\n",
  });
  const result = await runCli(["validate", project.path, "--python=/nonexistent/python3"]);
  assert.equal(result.code, 1);
  assert.match(result.stderr, /Python interpreter not found: \/nonexistent\/python3/);
});

Deno.test("predict and get against a running server", async (t) => {
  await using project = await makeProject({
    "cortex.yaml": TWO_APIS,
    "classify.py": "def predict(sample, metadata):\n" +
      "    if sample.get('fail'):\n        raise ValueError('bad sample: ' + sample['fail'])\n" +
      "    return {'label': 'cat', 'scores': [0.9, 0.1]}\n",
    "clamp.py": "def predict(sample, metadata):\n    return max(0, min(1, sample['x']))\n",
    "sample.json": '{"x": 1}',
    "fail.json": '{"fail": "no whiskers"}',
  });
  await using server = await startServer(project.path);
  const url = `--url=${server.url}`;

  await t.step("predict pretty-prints the JSON answer", async () => {
    const result = await runCli(["predict", "classifier", "sample.json", url], { cwd: project.path });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, `{\n  "label": "cat",\n  "scores": [\n    0.9,\n    0.1\n  ]\n}\n`);
  });

  await t.step("predict accepts a unique prefix and reads stdin for -", async () => {
    const result = await runCli(["predict", "clam", "-", url], { stdin: '{"x": 7}' });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, "1\n");
  });

  await t.step("predict: an ambiguous or unknown name is an error", async () => {
    const ambiguous = await runCli(["predict", "cl", join(project.path, "sample.json"), url]);
    assert.equal(ambiguous.code, 1);
    assert.match(ambiguous.stderr, /^error: Api name "cl" is ambiguous: .*classifier, clamp/);
    const unknown = await runCli(["predict", "dog", join(project.path, "sample.json"), url]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /^error: No api named "dog": the apis are classifier, clamp/);
  });

  await t.step("predict: a 500 prints error: <message> and exits 1", async () => {
    const result = await runCli(["predict", "classifier", join(project.path, "fail.json"), url]);
    assert.equal(result.code, 1);
    assert.equal(result.stdout, "");
    assert.equal(result.stderr, "error: ValueError: bad sample: no whiskers\n");
  });

  await t.step("predict: a missing sample file and an unreachable server", async () => {
    const missing = await runCli(["predict", "classifier", "nope.json", url]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^error: Cannot read the sample file nope\.json: no such file/);
    const down = await runCli([
      "predict",
      "classifier",
      join(project.path, "sample.json"),
      "--url=http://127.0.0.1:9",
    ]);
    assert.equal(down.code, 1);
    assert.match(down.stderr, /^error: Cannot reach cortex-serve at http:\/\/127\.0\.0\.1:9\/: .*pass --url/);
  });

  await t.step("get prints the status table with request counts", async () => {
    const result = await runCli(["get", url]);
    assert.equal(result.code, 0, result.stderr);
    const [header, ...rows] = result.stdout.trimEnd().split("\n");
    assert.deepEqual(header!.split(/ {2,}/), [
      "api",
      "status",
      "replicas",
      "requests",
      "2XX",
      "4XX",
      "5XX",
      "avg latency",
      "url",
    ]);
    const cells = Object.fromEntries(rows.map((row) => {
      const c = row.split(/ {2,}/);
      return [c[0], c];
    }));
    // classifier: 1 ok + 1 failed (the ambiguous/unknown/unreachable calls never reached it).
    assert.deepEqual(cells.classifier!.slice(0, 7), ["classifier", "ready", "1/1", "2", "1", "0", "1"]);
    assert.match(cells.classifier![7]!, /^\d+(\.\d+)? m?s$/);
    assert.equal(cells.classifier![8], `${server.url}/shop/classifier`);
    assert.deepEqual(cells.clamp!.slice(0, 7), ["clamp", "ready", "1/1", "1", "1", "0", "0"]);
  });

  await t.step("get API shows one api, by prefix", async () => {
    const result = await runCli(["get", "clam", url], { env: {} });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.trimEnd().split("\n").length, 2);
    assert.match(result.stdout, /\nclamp +ready/);
  });

  await t.step("--url defaults to $CORTEX_SERVE_URL", async () => {
    const result = await runCli(["get"], { env: { CORTEX_SERVE_URL: server.url } });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /\nclassifier +ready/);
  });
});

Deno.test("get: an API that cannot start shows its error under the table", async () => {
  await using project = await makeProject({
    "inference.py":
      "def init(metadata):\n    raise OSError('no model')\n\ndef predict(sample, metadata):\n    return 1\n",
  });
  await using server = await startServer(project.path, { waitReady: false });
  await server.waitFor((r) => r.msg === "init failed");
  const result = await runCli(["get", `--url=${server.url}`]);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /\napi +(init_failed|starting|restarting) +0\/1 +0 /);
  assert.match(result.stdout, /\n\napi: init failed: OSError: no model\n/);
});

Deno.test("--help on every subcommand, with examples", async () => {
  for (const command of ["serve", "validate", "predict", "get"]) {
    const result = await runCli([command, "--help"]);
    assert.equal(result.code, 0, `${command}: ${result.stderr}`);
    assert.match(result.stdout, new RegExp(`^Usage: cortex-serve ${command}`), command);
    assert.match(result.stdout, /\nExamples:\n {2}cortex-serve /, command);
  }
  const top = await runCli(["--help"]);
  assert.equal(top.code, 0);
  for (const command of ["serve", "validate", "predict", "get"]) {
    assert.match(top.stdout, new RegExp(`\n {2}${command} `));
  }
});

Deno.test("unknown flags and wrong arguments are usage errors (exit 2)", async () => {
  for (const command of ["serve", "validate", "predict", "get"]) {
    const result = await runCli([command, "--colour"]);
    assert.equal(result.code, 2, `${command}: ${result.stdout}${result.stderr}`);
    assert.match(
      result.stderr,
      new RegExp(`^error: Unknown option '--colour'.*\\(see cortex-serve ${command} --help\\)`),
    );
  }
  const missing = await runCli(["predict", "classifier"]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /^error: predict takes an api name and a sample file/);
  const badUrl = await runCli(["get", "--url=localhost:8888"]);
  assert.equal(badUrl.code, 2);
  assert.match(badUrl.stderr, /^error: --url: "localhost:8888" must start with http:\/\/ or https:\/\//);
  const unknown = await runCli(["deploy"]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /^error: Unknown command "deploy"/);
});

Deno.test("--version names the program, Deno and protocol versions", async () => {
  const result = await runCli(["--version"]);
  assert.equal(result.code, 0);
  assert.match(result.stdout, /^cortex-serve \d+\.\d+\.\d+ \(deno \d+\.\d+\.\d+, worker protocol \d+\)\n$/);
});

Deno.test("get and predict send $CORTEX_API_KEY to a server that requires keys", async () => {
  const key = "cli-test-key-0123456789abcdef";
  await using project = await makeProject({
    "inference.py": "def predict(sample, metadata):\n    return sample\n",
    "keys.txt": `# operators\n${key}\n`,
    "sample.json": '{"a": 1}',
  });
  await using server = await startServer(project.path, {
    args: [`--api-key-file=${join(project.path, "keys.txt")}`],
  });
  const url = `--url=${server.url}`;
  const refused = await runCli(["get", url]);
  assert.equal(refused.code, 1);
  assert.match(
    refused.stderr,
    /^error: Missing or invalid API key.*: set CORTEX_API_KEY to a key the server accepts$/m,
  );
  const listed = await runCli(["get", url], { env: { CORTEX_API_KEY: key } });
  assert.equal(listed.code, 0, listed.stderr);
  assert.match(listed.stdout, /\napi +ready +1\/1 /);
  const predicted = await runCli(["predict", "api", join(project.path, "sample.json"), url], {
    env: { CORTEX_API_KEY: key },
  });
  assert.equal(predicted.code, 0, predicted.stderr);
  assert.equal(predicted.stdout, '{\n  "a": 1\n}\n');
  const metrics = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${key}` } });
  assert.equal(metrics.status, 200);
  assert.match(await metrics.text(), /^cortex_serve_requests_total\{api="api",status="200"\} 1$/m);
  const anonymous = await fetch(`${server.url}/metrics`);
  assert.equal(anonymous.status, 401);
  await anonymous.body?.cancel();
});

Deno.test("the docs/operations.md walk-through: validate, predict and get on the iris example", async () => {
  const validated = await runCli(["validate", "examples/iris-classifier", `--python=${PYTHON}`]);
  assert.equal(validated.code, 0, validated.stderr);
  await using server = await startServer(IRIS);
  const env = { CORTEX_SERVE_URL: server.url };
  const predicted = await runCli(["predict", "classifier", "examples/iris-classifier/sample.json"], { env });
  assert.equal(predicted.code, 0, predicted.stderr);
  assert.equal(predicted.stdout, '"iris-setosa"\n');
  const status = await runCli(["get"], { env });
  assert.equal(status.code, 0, status.stderr);
  assert.match(
    status.stdout,
    /\nclassifier +ready +1\/1 +1 +1 +0 +0 +\S+ m?s +http:\/\/127\.0\.0\.1:\d+\/iris\/classifier\n$/,
  );
  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  assert.match(metrics, /^cortex_serve_predictions_total\{api="classifier",class="iris-setosa"\} 1$/m);
});

Deno.test("get: batching settings, then errors, under the table", () => {
  const api = (name: string, extra: Partial<ListedApi>): ListedApi => ({
    name,
    endpoint: `/d/${name}`,
    status: "ready",
    replicas: { ready: 1, total: 1 },
    last_error: null,
    requests: 0,
    status_2xx: 0,
    status_4xx: 0,
    status_5xx: 0,
    avg_latency_ms: 0,
    ...extra,
  });
  assert.equal(formatNotes([api("a", {}), api("b", { batching: null })]), "");
  assert.equal(
    formatNotes([
      api("a", { jobs: { in_queue: 0, in_progress: 0 } }),
      api("b", { jobs: { in_queue: 7, in_progress: 1 } }),
    ]),
    "b: jobs: 7 queued, 1 running",
  );
  assert.equal(
    formatNotes([
      api("a", { batching: { max_batch_size: 8, batch_interval_ms: 20 } }),
      api("b", { last_error: "init failed: OSError: no model" }),
      api("c", { last_error: "restarting: Worker exited with code 3" }),
    ]),
    "a: server-side batching, up to 8 requests per predict call, waiting at most 20 ms for a batch to fill\n\n" +
      "b: init failed: OSError: no model\n\nc: restarting: Worker exited with code 3",
  );
});
