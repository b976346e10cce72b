/**
 * Interpreter choice and checks with real interpreters: Debian's
 * python3 and a virtual environment built here without msgpack.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { checkInterpreter, chooseInterpreter, InterpreterError } from "../src/python/interpreter.ts";
import { makeProject, post, PYTHON, startServer, type TempDir, tempDir } from "./_helpers.ts";
import { serveOnce } from "./_serve_once.ts";

const INFERENCE = "import sys\ndef predict(sample, metadata):\n    return sys.executable\n";

/** A Python without msgpack: a venv of the test interpreter that does not see its site-packages. */
async function pythonWithoutMsgpack(): Promise<TempDir & { python: string }> {
  const dir = await tempDir("cortex-serve-nomsgpack-");
  const made = await new Deno.Command(PYTHON, {
    args: ["-m", "venv", "--without-pip", join(dir.path, "venv")],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(made.success, new TextDecoder().decode(made.stderr));
  return Object.assign(dir, { python: join(dir.path, "venv", "bin", "python") });
}

const MSGPACK_HINT = /apt-get install python3-msgpack.*pip install msgpack/;

Deno.test("chooseInterpreter: --python, else CORTEX_PYTHON, else python3", () => {
  assert.equal(chooseInterpreter("/opt/py/bin/python", { CORTEX_PYTHON: "/x/python" }), "/opt/py/bin/python");
  assert.equal(chooseInterpreter(undefined, { CORTEX_PYTHON: "/x/python" }), "/x/python");
  assert.equal(chooseInterpreter(undefined, {}), "python3");
});

Deno.test("checkInterpreter: a real interpreter without msgpack gets the install hint", async () => {
  await using bare = await pythonWithoutMsgpack();
  await assert.rejects(checkInterpreter(bare.python), (error: unknown) => {
    assert.ok(error instanceof InterpreterError);
    assert.equal(error.code, "PYTHON_MISSING_MSGPACK");
    assert.match(error.message, /^Python 3\.\d+\.\d+ at .* lacks the msgpack package the worker needs: /);
    assert.match(error.message, MSGPACK_HINT);
    return true;
  });
  const good = await checkInterpreter(PYTHON);
  assert.match(good.version, /^3\.\d+\.\d+$/);
});

Deno.test("checkInterpreter: a missing interpreter says what to install", async () => {
  await assert.rejects(checkInterpreter("/nonexistent/bin/python3"), (error: unknown) => {
    assert.ok(error instanceof InterpreterError);
    assert.equal(error.code, "PYTHON_NOT_FOUND");
    assert.match(error.message, /apt-get install python3.*--python PATH/);
    return true;
  });
});

Deno.test("serve: an interpreter without msgpack stops startup with one install hint", async () => {
  await using bare = await pythonWithoutMsgpack();
  await using project = await makeProject({ "inference.py": INFERENCE });
  await using state = await tempDir("cortex-serve-state-");

  const flag = await serveOnce(project.path, { python: bare.python, args: [`--state-dir=${state.path}`] });
  assert.equal(flag.code, 1, flag.output);
  assert.match(flag.error, /^error: Python 3\.\d+\.\d+ at .* lacks the msgpack package/);
  assert.match(flag.error, MSGPACK_HINT);

  // CORTEX_PYTHON is used when --python is not given.
  const env = await serveOnce(project.path, {
    python: null,
    env: { CORTEX_PYTHON: bare.python },
    args: [`--state-dir=${state.path}`],
  });
  assert.equal(env.code, 1, env.output);
  assert.match(env.error, MSGPACK_HINT);
  assert.ok(env.error.includes(join(bare.path, "venv")), env.error);
});

Deno.test("serve: --python wins over CORTEX_PYTHON", async () => {
  await using bare = await pythonWithoutMsgpack();
  await using project = await makeProject({ "inference.py": INFERENCE });
  await using server = await startServer(project.path, { env: { CORTEX_PYTHON: bare.python } });
  const res = await post(`${server.url}/test/api`, {});
  assert.equal(res.status, 200);
  assert.equal(await res.json(), (await checkInterpreter(PYTHON)).executable);
});
