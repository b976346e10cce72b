import assert from "node:assert/strict";
import * as path from "node:path";
import { isExcluded, stageProject, StagingError } from "../src/project/stage.ts";

interface TempDir extends AsyncDisposable {
  readonly path: string;
}

async function tempDir(): Promise<TempDir> {
  const dir = await Deno.realPath(
    await Deno.makeTempDir({ prefix: "stage-test-" }),
  );
  return {
    path: dir,
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

/** A project dir and a state dir inside one temp dir. */
async function fixture(
  files: Record<string, string>,
): Promise<TempDir & { root: string; stateDir: string }> {
  const tmp = await tempDir();
  const root = path.join(tmp.path, "project");
  await Deno.mkdir(root);
  await writeFiles(root, files);
  return { ...tmp, root, stateDir: path.join(tmp.path, "state") };
}

async function writeFiles(
  root: string,
  files: Record<string, string>,
): Promise<void> {
  for (const [rel, content] of Object.entries(files)) {
    const file = path.join(root, rel);
    await Deno.mkdir(path.dirname(file), { recursive: true });
    await Deno.writeTextFile(file, content);
  }
}

/** Relative paths in a tree, directories with a trailing `/`, sorted. */
async function listTree(dir: string, rel = ""): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of Deno.readDir(path.join(dir, rel))) {
    const child = rel === "" ? entry.name : `${rel}/${entry.name}`;
    assert.ok(!entry.isSymlink, `staged tree holds a symlink: ${child}`);
    if (entry.isDirectory) {
      found.push(`${child}/`, ...await listTree(dir, child));
    } else {
      found.push(child);
    }
  }
  return found.sort();
}

function mode(info: Deno.FileInfo): number {
  return (info.mode ?? 0) & 0o777;
}

Deno.test("isExcluded: the staging rules of docs/configuration.md", () => {
  const cases: [string, boolean, boolean][] = [
    ["cortex.yaml", false, true],
    ["cortex.yaml", true, false],
    [".env", false, true],
    [".git", true, true],
    [".venv", true, true],
    ["a.pyc", false, true],
    ["a.pyo", false, true],
    ["a.pyd", false, true],
    ["__pycache__", true, true],
    ["__pycache__", false, false],
    ["inference.py", false, false],
    ["cortex.yml", false, false],
    ["model.pyc.bin", false, false],
    ["src", true, false],
  ];
  for (const [name, isDirectory, expected] of cases) {
    assert.equal(
      isExcluded(name, isDirectory),
      expected,
      `${name} ${isDirectory}`,
    );
  }
});

Deno.test("stageProject: leaves out cortex.yaml, dot entries, bytecode and __pycache__", async () => {
  await using fx = await fixture({
    "cortex.yaml": "- kind: deployment\n",
    "sub/cortex.yaml": "nested",
    "sub/data.txt": "data",
    ".env": "SECRET=1",
    ".git/config": "[core]",
    ".venv/bin/python": "",
    "src/.hidden.py": "",
    "src/inference.py": "def predict(sample, metadata): pass\n",
    "src/helper.pyc": "",
    "src/helper.pyo": "",
    "src/ext.pyd": "",
    "src/__pycache__/inference.cpython-311.pyc": "",
    "__pycache__/x.pyc": "",
    "model.bin": "weights",
  });
  await Deno.mkdir(path.join(fx.root, "empty"));
  const staged = await stageProject(fx.root, { stateDir: fx.stateDir });
  assert.deepEqual(await listTree(staged.dir), [
    "empty/",
    "model.bin",
    "src/",
    "src/inference.py",
    "sub/",
    "sub/data.txt",
  ]);
  assert.equal(staged.files, 3);
  assert.equal(staged.bytes, "data".length + 36 + "weights".length);
  assert.deepEqual(staged.skipped, []);
  assert.equal(staged.reused, false);
  assert.match(staged.key, /^[0-9a-f]{64}$/);
  assert.equal(path.basename(staged.dir), staged.key);
  assert.equal(
    await Deno.readTextFile(path.join(staged.dir, "model.bin")),
    "weights",
  );
});

Deno.test("stageProject: symlinks inside are materialised, outside and broken ones are reported", async () => {
  await using fx = await fixture({
    "data/labels.txt": "setosa",
    "src/inference.py": "",
  });
  const link = (target: string, name: string) => Deno.symlink(target, path.join(fx.root, name));
  await link("data/labels.txt", "labels.txt");
  await link("../data", "src/data");
  await link("/etc", "etc");
  await link("/etc/hostname", "hostname");
  await link("missing.txt", "broken.txt");
  await link("loop-b", "loop-a");
  await link("loop-a", "loop-b");
  await link("/etc", ".hidden-outside");

  const staged = await stageProject(fx.root, { stateDir: fx.stateDir });
  assert.deepEqual(await listTree(staged.dir), [
    "data/",
    "data/labels.txt",
    "labels.txt",
    "src/",
    "src/data/",
    "src/data/labels.txt",
    "src/inference.py",
  ]);
  assert.equal(
    await Deno.readTextFile(path.join(staged.dir, "src/data/labels.txt")),
    "setosa",
  );
  assert.deepEqual(staged.skipped, [
    { path: "broken.txt", reason: "broken-symlink" },
    { path: "etc", reason: "symlink-outside-project" },
    { path: "hostname", reason: "symlink-outside-project" },
    { path: "loop-a", reason: "broken-symlink" },
    { path: "loop-b", reason: "broken-symlink" },
  ]);
});

Deno.test("stageProject: a symlink to an enclosing directory is a clear error", async () => {
  await using fx = await fixture({ "src/inference.py": "" });
  await Deno.symlink("..", path.join(fx.root, "src", "up"));
  await assert.rejects(
    () => stageProject(fx.root, { stateDir: fx.stateDir }),
    (error: unknown) => {
      assert.ok(error instanceof StagingError);
      assert.equal(error.code, "STAGING_FAILED");
      assert.equal(error.path, "src/up");
      assert.match(error.message, /Symlink cycle .*"src\/up"/);
      return true;
    },
  );
});

Deno.test("stageProject: FIFOs and sockets are skipped without being opened", async () => {
  await using fx = await fixture({ "inference.py": "" });
  const fifo = path.join(fx.root, "pipe");
  const made = await new Deno.Command("mkfifo", { args: [fifo] }).output();
  assert.ok(made.success, new TextDecoder().decode(made.stderr));
  await Deno.symlink("pipe", path.join(fx.root, "pipe-link"));
  using _socket = Deno.listen({
    transport: "unix",
    path: path.join(fx.root, "sock"),
  });

  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error("stageProject hung")), 5_000);
  });
  try {
    const staged = await Promise.race([
      stageProject(fx.root, { stateDir: fx.stateDir }),
      timeout,
    ]);
    assert.deepEqual(await listTree(staged.dir), ["inference.py"]);
    assert.deepEqual(staged.skipped, [
      { path: "pipe", reason: "special-file" },
      { path: "pipe-link", reason: "special-file" },
      { path: "sock", reason: "special-file" },
    ]);
  } finally {
    clearTimeout(timer);
  }
});

Deno.test("stageProject: an unchanged project reuses the staged tree without copying", async () => {
  await using fx = await fixture({
    "src/inference.py": "x = 1\n",
    "m.bin": "w",
  });
  const first = await stageProject(fx.root, { stateDir: fx.stateDir });
  const staged = path.join(first.dir, "src", "inference.py");
  const before = await Deno.stat(staged);

  const second = await stageProject(fx.root, { stateDir: fx.stateDir });
  assert.equal(second.reused, true);
  assert.equal(second.key, first.key);
  assert.equal(second.dir, first.dir);
  assert.equal(second.files, 2);
  const after = await Deno.stat(staged);
  assert.equal(after.ino, before.ino);
  assert.equal(after.mtime?.getTime(), before.mtime?.getTime());
});

Deno.test("stageProject: a changed file, mode or directory gives a new key", async () => {
  await using fx = await fixture({ "src/inference.py": "x = 1\n" });
  const stage = () => stageProject(fx.root, { stateDir: fx.stateDir, keep: 10 });
  const keys = [(await stage()).key];

  await Deno.writeTextFile(path.join(fx.root, "src/inference.py"), "x = 2\n");
  const changed = await stage();
  assert.equal(changed.reused, false);
  keys.push(changed.key);
  assert.equal(
    await Deno.readTextFile(path.join(changed.dir, "src/inference.py")),
    "x = 2\n",
  );

  await Deno.chmod(path.join(fx.root, "src/inference.py"), 0o755);
  keys.push((await stage()).key);

  await Deno.mkdir(path.join(fx.root, "outputs"));
  keys.push((await stage()).key);

  assert.equal(new Set(keys).size, keys.length, keys.join("\n"));
});

Deno.test("stageProject: staged directories are 0o700, files keep only the exec bit", async () => {
  await using fx = await fixture({
    "src/inference.py": "",
    "run.sh": "#!/bin/sh\n",
  });
  await Deno.chmod(path.join(fx.root, "run.sh"), 0o755);
  await Deno.chmod(path.join(fx.root, "src/inference.py"), 0o644);
  const staged = await stageProject(fx.root, { stateDir: fx.stateDir });

  assert.equal(mode(await Deno.stat(staged.dir)), 0o700);
  assert.equal(mode(await Deno.stat(path.dirname(staged.dir))), 0o700);
  assert.equal(mode(await Deno.stat(path.join(staged.dir, "src"))), 0o700);
  assert.equal(mode(await Deno.stat(path.join(staged.dir, "run.sh"))), 0o700);
  assert.equal(
    mode(await Deno.stat(path.join(staged.dir, "src/inference.py"))),
    0o600,
  );
});

Deno.test("stageProject: concurrent calls on one project agree on one tree", async () => {
  const files: Record<string, string> = {};
  for (let i = 0; i < 50; i++) files[`src/module_${i}.py`] = `x = ${i}\n`;
  await using fx = await fixture(files);
  const results = await Promise.all(
    Array.from(
      { length: 4 },
      () => stageProject(fx.root, { stateDir: fx.stateDir }),
    ),
  );
  const first = results[0];
  assert.ok(first !== undefined);
  for (const result of results) {
    assert.equal(result.dir, first.dir);
    assert.equal(result.key, first.key);
  }
  const listing = await listTree(first.dir);
  assert.equal(listing.length, 51);
  const projectDir = path.dirname(first.dir);
  const leftovers = (await Array.fromAsync(Deno.readDir(projectDir)))
    .map((entry) => entry.name)
    .filter((name) => name.includes(".tmp-") || name.includes(".old-"));
  assert.deepEqual(leftovers, []);
});

Deno.test("stageProject: keeps only the newest `keep` trees", async () => {
  await using fx = await fixture({ "v.txt": "0" });
  const dirs: string[] = [];
  for (let version = 0; version < 5; version++) {
    await Deno.writeTextFile(path.join(fx.root, "v.txt"), String(version));
    const staged = await stageProject(fx.root, {
      stateDir: fx.stateDir,
      keep: 2,
    });
    dirs.push(staged.dir);
    // Distinct mtimes, so "newest" is well defined.
    const past = new Date(Date.now() - (10 - version) * 1000);
    await Deno.utime(staged.dir, past, past);
  }
  const projectDir = path.dirname(dirs[0] ?? "");
  const remaining = (await Array.fromAsync(Deno.readDir(projectDir)))
    .filter((entry) => entry.isDirectory)
    .map((entry) => path.join(projectDir, entry.name))
    .sort();
  assert.deepEqual(remaining, dirs.slice(3).sort());

  // Reusing an old version keeps it (it is touched) and never removes it.
  await Deno.writeTextFile(path.join(fx.root, "v.txt"), "3");
  const reused = await stageProject(fx.root, {
    stateDir: fx.stateDir,
    keep: 1,
  });
  assert.equal(reused.reused, true);
  assert.equal(reused.dir, dirs[3]);
  const left = (await Array.fromAsync(Deno.readDir(projectDir)))
    .filter((entry) => entry.isDirectory).map((entry) => entry.name);
  assert.deepEqual(left, [reused.key]);
});

Deno.test("stageProject: the stat cache trusts unchanged size, mtime and inode", async () => {
  await using fx = await fixture({ "model.bin": "AAAA", "fresh.txt": "new" });
  const model = path.join(fx.root, "model.bin");
  const past = new Date(Date.now() - 60_000);
  await Deno.utime(model, past, past);
  const first = await stageProject(fx.root, { stateDir: fx.stateDir });

  const cacheFile = path.join(path.dirname(first.dir), "stat-cache.json");
  const cache = JSON.parse(await Deno.readTextFile(cacheFile));
  assert.deepEqual(
    Object.keys(cache.entries),
    ["model.bin"],
    "fresh files are not cached",
  );
  assert.equal(mode(await Deno.stat(cacheFile)), 0o600);

  // Same size, same inode, mtime put back: the cached hash is used.
  await Deno.writeTextFile(model, "BBBB");
  await Deno.utime(model, past, past);
  const second = await stageProject(fx.root, { stateDir: fx.stateDir });
  assert.equal(second.key, first.key);
  assert.equal(second.reused, true);

  // A different mtime makes it hash the file again.
  await Deno.utime(model, new Date(), new Date());
  const third = await stageProject(fx.root, { stateDir: fx.stateDir });
  assert.notEqual(third.key, first.key);
  assert.equal(
    await Deno.readTextFile(path.join(third.dir, "model.bin")),
    "BBBB",
  );
});

Deno.test("stageProject: a missing or non-directory root is PROJECT_NOT_FOUND", async () => {
  await using fx = await fixture({ "file.txt": "" });
  for (
    const root of [path.join(fx.root, "nope"), path.join(fx.root, "file.txt")]
  ) {
    await assert.rejects(
      () => stageProject(root, { stateDir: fx.stateDir }),
      (error: unknown) => {
        assert.ok(error instanceof StagingError);
        assert.equal(error.code, "PROJECT_NOT_FOUND");
        assert.equal(error.path, root);
        assert.ok(error.message.includes(`"${root}"`), error.message);
        assert.match(error.message, /directory that holds cortex\.yaml/);
        return true;
      },
    );
  }
});

Deno.test("stageProject: keep must be a positive integer", async () => {
  await using fx = await fixture({ "a.txt": "" });
  await assert.rejects(
    () => stageProject(fx.root, { stateDir: fx.stateDir, keep: 0 }),
    RangeError,
  );
});
