/** The worker program as the binary carries it: every file of src/python/worker/, written out as is. */
import assert from "node:assert/strict";
import { join, relative } from "node:path";
import { WORKER_FILES, writeWorker } from "../src/python/worker_source.ts";
import { ROOT, tempDir } from "./_helpers.ts";

const SOURCE_DIR = join(ROOT, "src", "python", "worker");

/** Paths of the worker's files (.py, .json) under `dir`, relative to it. */
function pythonFiles(dir: string, under = dir): string[] {
  const found: string[] = [];
  for (const entry of Deno.readDirSync(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory && entry.name !== "__pycache__") found.push(...pythonFiles(path, under));
    else if (entry.isFile && /\.(py|json)$/.test(entry.name)) found.push(relative(under, path));
  }
  return found.sort();
}

Deno.test("the binary carries every file of the worker package, as in the source tree", async () => {
  assert.deepEqual(WORKER_FILES.map((f) => f.path).sort(), pythonFiles(SOURCE_DIR));
  for (const file of WORKER_FILES) {
    const text = await Deno.readTextFile(join(SOURCE_DIR, file.path));
    if (file.path.endsWith(".json")) assert.deepEqual(JSON.parse(file.source), JSON.parse(text), file.path);
    else assert.equal(file.source, text, file.path);
  }
});

Deno.test("writeWorker writes the bootstrap and the package, owner-only, and keeps identical copies", async () => {
  await using dir = await tempDir("cortex-serve-worker-source-");
  const path = await writeWorker(dir.path);
  assert.equal(path, join(dir.path, "worker.py"));
  assert.deepEqual(pythonFiles(dir.path), WORKER_FILES.map((f) => f.path).sort());
  const stats = WORKER_FILES.map((f) => Deno.statSync(join(dir.path, f.path)));
  for (const stat of stats) assert.equal(stat.mode! & 0o077, 0);
  await Deno.writeTextFile(join(dir.path, "_cortex_serve_worker", "serve.py"), "stale");
  await writeWorker(dir.path);
  for (const [i, file] of WORKER_FILES.entries()) {
    assert.equal(await Deno.readTextFile(join(dir.path, file.path)), file.source, file.path);
    if (file.path !== join("_cortex_serve_worker", "serve.py")) {
      assert.deepEqual(Deno.statSync(join(dir.path, file.path)).mtime, stats[i]!.mtime, file.path);
    }
  }
});
