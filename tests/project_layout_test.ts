/**
 * How a Cortex project finds its files: helper modules next to the inference
 * file, `python_root`, `--project-mount` for `/mnt/project`-style paths, and
 * `dependencies.sh`.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { makeProject, post, startServer, tempDir } from "./_helpers.ts";
import { serveOnce } from "./_serve_once.ts";

Deno.test("helper modules next to the inference file and under python_root import as in Cortex", async () => {
  await using project = await makeProject({
    "cortex.yaml": `- kind: deployment
  name: test
  python_root: lib
- kind: api
  name: api
  python:
    inference: src/inference.py
`,
    "src/inference.py": "import my_model\nimport shared_utils\n\n" +
      "def predict(sample, metadata):\n    return [my_model.NAME, shared_utils.NAME]\n",
    "src/my_model.py": "NAME = 'my_model'\n",
    "lib/shared_utils.py": "NAME = 'shared_utils'\n",
  });
  await using server = await startServer(project.path);
  const res = await post(`${server.url}/test/api`, {});
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), ["my_model", "shared_utils"]);
});

/** Inference code that reads `<mount>/config.json` literally, as Cortex code reads /mnt/project. */
function readsMount(mount: string): string {
  return `import json\n\nwith open(${JSON.stringify(join(mount, "config.json"))}) as f:\n` +
    "    CONFIG = json.load(f)\n\ndef predict(sample, metadata):\n    return CONFIG\n";
}

Deno.test("--project-mount: code reading /mnt/project-style paths works; the link is ours to replace", async () => {
  await using scratch = await tempDir();
  const mount = join(scratch.path, "mnt", "project");
  await using project = await makeProject({
    "inference.py": readsMount(mount),
    "config.json": JSON.stringify({ threshold: 0.5 }),
  });
  await using state = await tempDir("cortex-serve-state-");
  const args = [`--state-dir=${state.path}`, `--project-mount=${mount}`];
  for (let start = 0; start < 2; start++) {
    await using server = await startServer(project.path, { args });
    const res = await post(`${server.url}/test/api`, {});
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { threshold: 0.5 });
    assert.ok((await Deno.lstat(mount)).isSymlink);
    assert.ok((await Deno.readLink(mount)).startsWith(state.path + "/"));
    await server.waitFor((r) => r.msg === "project mounted" && r.path === mount);
  }
  // Removed on shutdown.
  await assert.rejects(Deno.lstat(mount), Deno.errors.NotFound);
});

Deno.test("--project-mount: anything at PATH that is not ours is refused and left alone", async () => {
  await using scratch = await tempDir();
  await using project = await makeProject({
    "inference.py": "def predict(sample, metadata):\n    return 1\n",
  });
  await using state = await tempDir("cortex-serve-state-");

  const dir = join(scratch.path, "taken");
  await Deno.mkdir(dir);
  await Deno.writeTextFile(join(dir, "keep.txt"), "mine");
  const refused = await serveOnce(project.path, {
    args: [`--state-dir=${state.path}`, `--project-mount=${dir}`],
  });
  assert.equal(refused.code, 1, refused.output);
  assert.equal(
    refused.error,
    `error: The --project-mount path "${dir}" already exists and was not made by cortex-serve (a directory): ` +
      "remove it or choose another path",
  );
  assert.equal(await Deno.readTextFile(join(dir, "keep.txt")), "mine");

  const link = join(scratch.path, "elsewhere");
  await Deno.symlink(scratch.path, link);
  const foreign = await serveOnce(project.path, {
    args: [`--state-dir=${state.path}`, `--project-mount=${link}`],
  });
  assert.equal(foreign.code, 1, foreign.output);
  assert.match(foreign.error, /\(a link to ".*", outside the state directory ".*"\)/);
  assert.equal(await Deno.readLink(link), scratch.path);
});

const DEPENDENCIES_SH = 'echo "installing system packages"\ntouch "$CORTEX_TEST_MARKER"\n';

Deno.test("dependencies.sh: reported but not run by default; run with --run-dependencies-sh", async () => {
  await using scratch = await tempDir();
  const marker = join(scratch.path, "ran");
  await using project = await makeProject({
    "inference.py": "def predict(sample, metadata):\n    return 1\n",
    "dependencies.sh": DEPENDENCIES_SH,
  });
  const env = { CORTEX_TEST_MARKER: marker };
  {
    await using server = await startServer(project.path, { env });
    const warning = await server.waitFor((r) => String(r.msg).includes("has a dependencies.sh"));
    assert.equal(warning.level, "warn");
    assert.match(String(warning.msg), /--run-dependencies-sh/);
  }
  await assert.rejects(Deno.lstat(marker), Deno.errors.NotFound);
  {
    await using server = await startServer(project.path, { env, args: ["--run-dependencies-sh"] });
    const line = await server.waitFor((r) => r.stream === "dependencies.sh");
    assert.equal(line.msg, "installing system packages");
    assert.equal((await post(`${server.url}/test/api`, {})).status, 200);
  }
  assert.ok((await Deno.lstat(marker)).isFile);
});

Deno.test("dependencies.sh: a failing script stops startup with its last lines", async () => {
  await using project = await makeProject({
    "inference.py": "def predict(sample, metadata):\n    return 1\n",
    "dependencies.sh": 'echo "E: Unable to locate package libfoo-dev" >&2\nfalse\necho "not reached"\n',
  });
  await using state = await tempDir("cortex-serve-state-");
  const result = await serveOnce(project.path, {
    args: [`--state-dir=${state.path}`, "--run-dependencies-sh"],
  });
  assert.equal(result.code, 1, result.output);
  assert.match(result.error, /^error: The project's dependencies\.sh failed \(exit code 1\): /);
  assert.match(result.error, /its last lines:\n {2}E: Unable to locate package libfoo-dev$/);
  assert.ok(!result.output.includes("not reached"));
});
