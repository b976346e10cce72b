/**
 * requirements.txt end to end: a real pip installs a wheel built here into a
 * cached virtual environment, offline through pip's own PIP_* settings.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  assertNoWorkersLeft,
  type LogRecord,
  makeProject,
  post,
  PYTHON,
  type ServerProcess,
  startServer,
  tempDir,
} from "./_helpers.ts";
import { buildWheel, serveOnce } from "./_serve_once.ts";
import { runCli } from "./_cli.ts";

const INFERENCE = `import os, subprocess, sys
import numpy  # from the interpreter's site-packages, not requirements.txt
import tinypkg

def predict(sample, metadata):
    return {
        "version": tinypkg.VERSION,
        "module": tinypkg.__file__,
        "prefix": sys.prefix,
        "path0": os.environ["PATH"].split(os.pathsep)[0],
        "script": subprocess.check_output(["tinypkg-hello"], text=True).strip(),
    }
`;

const isPip = (line: string) => line.includes(`"stream":"pip"`);

async function runOk(command: string, args: string[], env: Record<string, string> = {}): Promise<void> {
  const run = await new Deno.Command(command, { args, env, stdin: "null", stdout: "piped", stderr: "piped" })
    .output();
  assert.ok(run.success, new TextDecoder().decode(run.stderr));
}

async function venvEntries(stateDir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(join(stateDir, "venvs"))) names.push(entry.name);
  return names.sort();
}

Deno.test("requirements.txt: installed from a local wheel, then reused from the cache", async () => {
  await using wheels = await tempDir();
  await buildWheel(wheels.path, "tinypkg", "1.2.3");
  await using project = await makeProject({
    "inference.py": INFERENCE,
    "requirements.txt": "tinypkg==1.2.3\n",
  });
  await using state = await tempDir("cortex-serve-state-");
  const options = {
    args: [`--state-dir=${state.path}`],
    env: { PIP_NO_INDEX: "1", PIP_FIND_LINKS: wheels.path },
  };

  let built: LogRecord;
  {
    await using server = await startServer(project.path, options);
    const res = await post(`${server.url}/test/api`, {});
    assert.equal(res.status, 200);
    const body = await res.json();
    const venvs = join(state.path, "venvs");
    assert.equal(body.version, "1.2.3");
    assert.ok(body.module.startsWith(venvs + "/"), body.module);
    assert.ok(body.prefix.startsWith(venvs + "/"), body.prefix);
    assert.equal(body.path0, join(body.prefix, "bin"));
    assert.equal(body.script, "hello from 1.2.3", "console script after the venv was moved into place");
    built = await server.waitFor((r) => r.msg === "python environment built");
    assert.ok(server.lines.some((l) => isPip(l) && l.includes("Successfully installed tinypkg-1.2.3")));
    assert.ok(server.lines.some((l) => l.includes("installing requirements.txt")));
  }
  const entries = await venvEntries(state.path);
  assert.equal(entries.length, 2, entries.join(", "));
  assert.match(entries[0] ?? "", /^[0-9a-f]{16}$/);
  assert.equal(entries[1], `${entries[0]}.lock`);

  {
    await using server = await startServer(project.path, options);
    const reused = await server.waitFor((r) => r.msg === "python environment reused");
    assert.equal(server.lines.filter(isPip).length, 0, "pip ran again");
    assert.ok(Number(reused.seconds) < Number(built.seconds), `${reused.seconds} s vs ${built.seconds} s`);
    const res = await post(`${server.url}/test/api`, {});
    assert.equal((await res.json()).version, "1.2.3");
  }
  assert.deepEqual(await venvEntries(state.path), entries);
});

Deno.test("requirements.txt: two servers starting together build the environment once", async () => {
  await using wheels = await tempDir();
  await buildWheel(wheels.path, "tinypkg", "2.0.0");
  await using project = await makeProject({
    "inference.py": INFERENCE,
    "requirements.txt": "tinypkg==2.0.0\n",
  });
  await using state = await tempDir("cortex-serve-state-");
  const options = {
    args: [`--state-dir=${state.path}`],
    env: { PIP_NO_INDEX: "1", PIP_FIND_LINKS: wheels.path },
  };
  {
    await using stack = new AsyncDisposableStack();
    const started = await Promise.allSettled([
      startServer(project.path, options),
      startServer(project.path, options),
    ]);
    const servers = started.flatMap((s) => s.status === "fulfilled" ? [stack.use(s.value)] : []);
    for (const s of started) if (s.status === "rejected") throw s.reason;
    const [a, b] = servers as [ServerProcess, ServerProcess];
    for (const server of [a, b]) {
      const res = await post(`${server.url}/test/api`, {});
      assert.equal((await res.json()).version, "2.0.0");
    }
    const lines = [...a.lines, ...b.lines];
    assert.equal(lines.filter((l) => isPip(l) && l.includes("Successfully installed")).length, 1);
    assert.equal(lines.filter((l) => l.includes(`"msg":"python environment built"`)).length, 1);
    assert.equal(lines.filter((l) => l.includes(`"msg":"python environment reused"`)).length, 1);
  }
  assert.equal((await venvEntries(state.path)).length, 2);
  await assertNoWorkersLeft(state.path);
});

Deno.test("requirements.txt: an unsatisfiable requirement stops startup with the package name", async () => {
  await using wheels = await tempDir();
  await using project = await makeProject({
    "inference.py": "def predict(sample, metadata):\n    return 1\n",
    "requirements.txt": "no-such-cortex-package==9.9.9\n",
  });
  await using state = await tempDir("cortex-serve-state-");
  const result = await serveOnce(project.path, {
    args: [`--state-dir=${state.path}`],
    env: { PIP_NO_INDEX: "1", PIP_FIND_LINKS: wheels.path },
  });
  assert.equal(result.code, 1, result.output);
  assert.match(result.error, /^error: Installing requirements\.txt failed \(pip exited with code 1\):/);
  assert.match(result.error, /No matching distribution found for no-such-cortex-package==9\.9\.9/);
  assert.match(
    result.error,
    /fix requirements\.txt or pip's settings .* and start again; pip's last lines:\n/,
  );
  assert.ok(!result.output.includes(`"msg":"listening"`));
  // Nothing half-built is left to be reused: only the lock file.
  const entries = await venvEntries(state.path);
  assert.deepEqual(entries.map((name) => name.replace(/^[0-9a-f]{16}/, "KEY")), ["KEY.lock"]);
});

Deno.test("requirements.txt: with --python inside a virtual environment, its packages stay visible", async () => {
  await using wheels = await tempDir();
  await buildWheel(wheels.path, "tinypkg", "1.2.3");
  await buildWheel(wheels.path, "outerpkg", "0.1.0");
  const pipEnv = { PIP_NO_INDEX: "1", PIP_FIND_LINKS: wheels.path };
  await using outer = await tempDir("cortex-serve-outer-venv-");
  const python = join(outer.path, "bin", "python");
  await runOk(PYTHON, ["-m", "venv", "--system-site-packages", "--without-pip", outer.path]);
  await runOk(python, ["-m", "pip", "install", "--quiet", "outerpkg"], pipEnv);
  await using project = await makeProject({
    "inference.py": "import outerpkg, tinypkg\n\ndef predict(sample, metadata):\n" +
      "    return [outerpkg.VERSION, tinypkg.VERSION]\n",
    "requirements.txt": "tinypkg==1.2.3\n",
  });
  await using server = await startServer(project.path, { args: [`--python=${python}`], env: pipEnv });
  const res = await post(`${server.url}/test/api`, {});
  assert.deepEqual(await res.json(), ["0.1.0", "1.2.3"]);
});

Deno.test("validate builds the requirements.txt environment serve then reuses", async () => {
  await using wheels = await tempDir("cortex-serve-wheels-");
  await buildWheel(wheels.path, "tinypkg", "3.1.4");
  await using project = await makeProject({
    "inference.py": "import tinypkg\n\ndef predict(sample, metadata):\n    return tinypkg.VERSION\n",
    "requirements.txt": "tinypkg==3.1.4\n",
  });
  await using state = await tempDir("cortex-serve-state-");
  const env = { PIP_NO_INDEX: "1", PIP_FIND_LINKS: wheels.path };

  const checked = await runCli(
    ["validate", project.path, `--python=${PYTHON}`, `--state-dir=${state.path}`],
    {
      env,
    },
  );
  assert.equal(checked.code, 0, checked.stderr);
  assert.match(checked.stdout, /^ok: deployment test/);

  await using server = await startServer(project.path, { args: [`--state-dir=${state.path}`], env });
  const res = await post(`${server.url}/test/api`, {});
  assert.equal(await res.json(), "3.1.4");
  assert.ok(
    !server.lines.some((line) => line.includes("installing requirements")),
    "serve rebuilt the environment validate had built",
  );
});
