import assert from "node:assert/strict";
import * as path from "node:path";
import { defaultStateDir, ensureStateDir } from "../src/project/state_dir.ts";

const ALL = {
  CORTEX_SERVE_STATE_DIR: "/srv/explicit",
  STATE_DIRECTORY: "/var/lib/cortex-serve:/var/lib/other",
  XDG_STATE_HOME: "/home/ada/.state",
  HOME: "/home/ada",
};

async function tempDir(): Promise<AsyncDisposable & { path: string }> {
  const dir = await Deno.makeTempDir({ prefix: "state-dir-test-" });
  return {
    path: dir,
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

Deno.test("defaultStateDir: CORTEX_SERVE_STATE_DIR wins", () => {
  assert.equal(defaultStateDir(ALL), "/srv/explicit");
});

Deno.test("defaultStateDir: CORTEX_SERVE_STATE_DIR is made absolute", () => {
  assert.equal(
    defaultStateDir({ CORTEX_SERVE_STATE_DIR: "rel/state" }),
    path.resolve("rel/state"),
  );
});

Deno.test("defaultStateDir: STATE_DIRECTORY next, first entry", () => {
  const { CORTEX_SERVE_STATE_DIR: _, ...env } = ALL;
  assert.equal(defaultStateDir(env), "/var/lib/cortex-serve");
});

Deno.test("defaultStateDir: XDG_STATE_HOME next", () => {
  assert.equal(
    defaultStateDir({ XDG_STATE_HOME: "/x/state", HOME: "/home/ada" }),
    "/x/state/cortex-serve",
  );
});

Deno.test("defaultStateDir: HOME last", () => {
  assert.equal(
    defaultStateDir({ HOME: "/home/ada" }),
    "/home/ada/.local/state/cortex-serve",
  );
});

Deno.test("defaultStateDir: empty values and a relative XDG_STATE_HOME are ignored", () => {
  assert.equal(
    defaultStateDir({
      CORTEX_SERVE_STATE_DIR: "",
      STATE_DIRECTORY: "",
      XDG_STATE_HOME: "relative/state",
      HOME: "/home/ada",
    }),
    "/home/ada/.local/state/cortex-serve",
  );
});

Deno.test("defaultStateDir: throws a clear error when nothing is set", () => {
  assert.throws(
    () => defaultStateDir({}),
    /Cannot determine a state directory: .*--state-dir/,
  );
});

Deno.test("defaultStateDir: reads the process environment by default", () => {
  const previous = Deno.env.get("CORTEX_SERVE_STATE_DIR");
  Deno.env.set("CORTEX_SERVE_STATE_DIR", "/from/env");
  try {
    assert.equal(defaultStateDir(), "/from/env");
  } finally {
    if (previous === undefined) Deno.env.delete("CORTEX_SERVE_STATE_DIR");
    else Deno.env.set("CORTEX_SERVE_STATE_DIR", previous);
  }
});

Deno.test("ensureStateDir: creates missing parents owner-only, returns the absolute path", async () => {
  await using tmp = await tempDir();
  const target = path.join(tmp.path, "a", "b", "state");
  const relative = path.relative(Deno.cwd(), target);
  assert.equal(await ensureStateDir(relative), target);
  for (const dir of ["a", "a/b", "a/b/state"]) {
    const info = await Deno.stat(path.join(tmp.path, dir));
    assert.ok(info.isDirectory);
    assert.equal((info.mode ?? 0) & 0o777, 0o700, dir);
  }
  assert.equal(await ensureStateDir(target), target, "idempotent");
});

Deno.test("ensureStateDir: a file in the way is a clear error", async () => {
  await using tmp = await tempDir();
  const file = path.join(tmp.path, "state");
  await Deno.writeTextFile(file, "");
  await assert.rejects(
    () => ensureStateDir(file),
    /exists but is not a directory/,
  );
});
