/**
 * The later Cortex dialects through a real server and real workers: every
 * example answers its expected.json, the worker adapts the interface
 * (module functions with or without model_path, PythonPredictor, the
 * three-argument hooks), `env` and `model` reach the user's code (s3://
 * models: tests/s3_model_test.ts), bad combinations fail with the line, `compute.mem` is a request unless
 * `--enforce-mem`, and `--no-requirements` skips pip.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadProjectConfig } from "../src/config/load.ts";
import { checkInterpreter } from "../src/python/interpreter.ts";
import { makeProject, post, PYTHON, ROOT, startServer, tempDir } from "./_helpers.ts";
import { runCli } from "./_cli.ts";

const EXAMPLES = join(ROOT, "examples");

for (const entry of Deno.readDirSync(EXAMPLES)) {
  const dir = join(EXAMPLES, entry.name);
  let expected: string;
  try {
    expected = Deno.readTextFileSync(join(dir, "expected.json"));
  } catch {
    continue;
  }
  Deno.test(`example ${entry.name}: serves sample.json and answers expected.json`, async () => {
    const project = await loadProjectConfig(dir);
    await using server = await startServer(dir);
    const config = await server.waitFor((r) => r.msg === "config");
    assert.equal(config.dialect, project.dialect);
    const sample = await Deno.readTextFile(join(dir, "sample.json"));
    const response = await post(`${server.url}${project.apis[0]!.endpoint}`, sample);
    const body = await response.json();
    assert.equal(response.status, 200, JSON.stringify(body));
    assert.deepEqual(body, JSON.parse(expected));
    if (entry.name.startsWith("color-namer")) {
      // predictor.env set COLOR_NAMER_VERBOSE=1, which makes predict log its answer.
      await server.waitFor((r) => String(r.msg).includes("-> orange") && r.stream === "python");
    }
  });
}

Deno.test("validate names the dialect of each example", async () => {
  const result = await runCli(["validate", join(EXAMPLES, "taxi-fare-0.13"), `--python=${PYTHON}`]);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /; dialect: Cortex 0\.13–0\.16 \(a list of APIs without kind/);
  assert.match(
    result.stderr,
    /^note: cortex\.yaml:14:5: api "taxi-fare": update_strategy\.max_surge: accepted/m,
  );
});

const PREDICTOR_012 = (body: string) =>
  `- name: api\n  predictor:\n    type: python\n    path: predictor.py\n${body}`;

Deno.test("Cortex 0.12: env reaches os.environ and config reaches PythonPredictor(config)", async () => {
  await using project = await makeProject({
    "cortex.yaml": PREDICTOR_012('    config: {suffix: "!"}\n    env:\n      GREETING: hello\n'),
    "predictor.py": `import os

GREETING_AT_IMPORT = os.environ.get("GREETING")


class PythonPredictor:
    def __init__(self, config):
        self.suffix = config["suffix"]

    def predict(self, payload):
        return [GREETING_AT_IMPORT, os.environ["GREETING"] + self.suffix, payload]
`,
  });
  await using server = await startServer(project.path);
  const response = await post(`${server.url}/api`, { n: 1 });
  assert.deepEqual(await response.json(), ["hello", "hello!", { n: 1 }]);
});

Deno.test("Cortex 0.11: the model path reaches init(model_path, metadata); three-argument hooks get signature None", async () => {
  await using project = await makeProject({
    "cortex.yaml": `- kind: deployment
  name: d
- kind: api
  name: api
  predictor:
    path: src/predictor.py
    model: models/weights.txt
    python_path: lib
    metadata: {scale: 3}
`,
    "models/weights.txt": "7\n",
    "lib/helper.py": "def double(x):\n    return 2 * x\n",
    "src/predictor.py": `import helper

state = {}


def init(model_path, metadata):
    with open(model_path) as f:
        state["weight"] = int(f.read())
    state["path"] = model_path


def pre_inference(sample, signature, metadata):
    return {"x": sample["x"], "signature": signature}


def predict(sample, metadata):
    return {"y": helper.double(sample["x"] * state["weight"] * metadata["scale"]), "signature": sample["signature"]}


def post_inference(prediction, signature, metadata):
    prediction["path"] = state["path"]
    return prediction
`,
  });
  await using server = await startServer(project.path);
  const response = await post(`${server.url}/d/api`, { x: 1 });
  const body = await response.json();
  assert.equal(response.status, 200, JSON.stringify(body));
  assert.equal(body.y, 42);
  assert.equal(body.signature, null);
  assert.match(body.path, /\/models\/weights\.txt$/);
  assert.ok(!body.path.startsWith(project.path), "the model path points into the staged copy");
});

/** Runs `validate` on a project made of `files`; returns its result. */
async function validateFiles(files: Record<string, string>, env: Record<string, string> = {}) {
  await using project = await makeProject(files);
  await using state = await tempDir();
  return await runCli(["validate", project.path, `--python=${PYTHON}`, `--state-dir=${state.path}`], { env });
}

Deno.test("PythonPredictor named by python.inference fails with the class's line", async () => {
  const result = await validateFiles({
    "inference.py": "import os\n\n\nclass PythonPredictor:\n    def __init__(self, config):\n        pass\n",
  });
  assert.equal(result.code, 1);
  assert.match(
    result.stderr,
    /signature failed: inference\.py defines no predict function: .*\(inference\.py:4 defines class PythonPredictor, the Cortex 0\.12 interface/,
  );
  assert.match(result.stderr, /^note: cortex\.yaml is read as Cortex python\.inference/m);
});

Deno.test("two PythonPredictor classes fail naming both lines", async () => {
  const klass = "class PythonPredictor:\n    def __init__(self, config):\n        pass\n\n" +
    "    def predict(self, payload):\n        return 1\n";
  const result = await validateFiles({
    "cortex.yaml": PREDICTOR_012(""),
    "predictor.py": `${klass}\n\n${klass}`,
  });
  assert.equal(result.code, 1);
  assert.match(result.stderr, /predictor\.py defines class PythonPredictor 2 times, at lines 1, 9: keep one/);
});

Deno.test("type: python with module functions only points to the class interface", async () => {
  const result = await validateFiles({
    "cortex.yaml": PREDICTOR_012(""),
    "predictor.py": "def predict(sample, metadata):\n    return 1\n",
  });
  assert.equal(result.code, 1);
  assert.match(
    result.stderr,
    /defines no class PythonPredictor: add `class PythonPredictor:`.*module-level predict\(\)/,
  );
});

Deno.test("compute.mem is a request: a worker above it keeps serving, and a startup warning names the shortfall", async () => {
  await using project = await makeProject({
    "cortex.yaml": `- kind: deployment
  name: d
- kind: api
  name: small
  python: {inference: inference.py}
  compute: {mem: 1Mi}
- kind: api
  name: huge
  python: {inference: inference.py}
  compute: {mem: 4Pi, min_replicas: 1}
`,
    "inference.py":
      "BUFFER = bytearray(8 * 1024 * 1024)\n\n\ndef predict(sample, metadata):\n    return len(BUFFER)\n",
  });
  await using server = await startServer(project.path);
  const warning = await server.waitFor((r) => String(r.msg).startsWith("min_replicas × compute.mem is over"));
  assert.match(String(warning.requests), /small: 1 × 1Mi, huge: 1 × 4Pi/);
  for (let i = 0; i < 3; i++) {
    const response = await post(`${server.url}/d/small`, {});
    assert.equal(response.status, 200);
    assert.equal(await response.json(), 8 * 1024 * 1024);
  }
  assert.ok(!server.lines.some((line) => line.includes("worker over its memory cap")), "a worker was killed");
});

Deno.test("--no-requirements skips requirements.txt and says so", async () => {
  await using project = await makeProject({
    "requirements.txt": "cortex-serve-no-such-package==0.0.1\n",
    "inference.py": "def predict(sample, metadata):\n    return 'ok'\n",
  });
  await using server = await startServer(project.path, { args: ["--no-requirements"] });
  await server.waitFor((r) => String(r.msg).startsWith("requirements.txt skipped (--no-requirements)"));
  const response = await post(`${server.url}/test/api`, {});
  assert.equal(await response.json(), "ok");
  assert.ok(!server.lines.some((line) => line.includes("python environment built")), "pip ran");
});

Deno.test("the interpreter check warns, without failing, when a Cortex pre-installed package is missing", async () => {
  assert.deepEqual((await checkInterpreter(PYTHON)).warnings, []);
  await using dir = await tempDir();
  // A sitecustomize that hides boto3 from this interpreter.
  await Deno.writeTextFile(
    join(dir.path, "sitecustomize.py"),
    `import sys


class _HideBoto3:
    def find_spec(self, name, path=None, target=None):
        if name == "boto3":
            raise ModuleNotFoundError("No module named 'boto3'")
        return None


sys.meta_path.insert(0, _HideBoto3())
`,
  );
  const wrapper = join(dir.path, "python");
  await Deno.writeTextFile(wrapper, `#!/bin/sh\nPYTHONPATH=${dir.path} exec ${PYTHON} "$@"\n`);
  await Deno.chmod(wrapper, 0o755);
  const checked = await checkInterpreter(wrapper);
  assert.equal(checked.warnings.length, 1);
  assert.match(
    checked.warnings[0]!,
    /lacks boto3, which Cortex had pre-installed: .*apt-get install python3-boto3/,
  );
});
