/**
 * The switch to durable jobs in cortex.yaml (`async: true` on an api, in
 * every dialect) and the `serve` flags of jobs: resolution and refusals.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadProjectConfig } from "../src/config/load.ts";
import { ConfigError, formatIssue } from "../src/config/errors.ts";
import { parseServeArgs, type ServeOptions } from "../src/cli/serve_options.ts";
import { UsageError } from "../src/cli/units.ts";
import { makeProject, tempDir } from "./_helpers.ts";
import { serveOnce } from "./_serve_once.ts";

const PYTHON_DIALECT = (extra: string) =>
  `- kind: deployment
  name: d
- kind: api
  name: api
  python:
    inference: inference.py
${extra}`;

const PREDICTOR_012 = (extra: string) =>
  `- kind: deployment
  name: d
- kind: api
  name: api
  predictor:
    type: python
    path: inference.py
${extra}`;

async function load(yaml: string) {
  await using dir = await tempDir();
  await Deno.writeTextFile(
    join(dir.path, "inference.py"),
    "def predict(sample, metadata):\n    return sample\n",
  );
  await Deno.writeTextFile(join(dir.path, "cortex.yaml"), yaml);
  return await loadProjectConfig(dir.path);
}

Deno.test("async: true marks an api's predictions as jobs, in the python and predictor dialects", async () => {
  assert.equal((await load(PYTHON_DIALECT("  async: true\n"))).apis[0]!.async, true);
  assert.equal((await load(PREDICTOR_012("  async: true\n"))).apis[0]!.async, true);
  assert.equal((await load(PYTHON_DIALECT("  async: false\n"))).apis[0]!.async, undefined);
  assert.equal((await load(PYTHON_DIALECT(""))).apis[0]!.async, undefined);
});

Deno.test("async must be true or false, with the line and a fix", async () => {
  for (
    const [value, fix] of [
      ['"true"', /remove the quotes: write async: true/],
      ["yes please", /write async: true to answer POST with 202/],
    ] as const
  ) {
    try {
      await load(PYTHON_DIALECT(`  async: ${value}\n`));
      assert.fail("expected a ConfigError");
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      const issue = error.issues.map(formatIssue).join("\n");
      assert.match(issue, /:7:10: .*async: must be true or false/);
      assert.match(issue, fix);
    }
  }
});

Deno.test("serve: --jobs, --job-ttl, --job-lease, --job-attempts, --job-queue", () => {
  const parse = (...args: string[]) => (parseServeArgs(args) as ServeOptions).jobs;
  assert.deepEqual(parse(), {
    store: { kind: "sqlite" },
    ttlMs: 7 * 86_400_000,
    leaseMs: 30_000,
    maxAttempts: 3,
    maxQueued: 100_000,
  });
  assert.deepEqual(parse("--jobs=off").store, { kind: "off" });
  assert.deepEqual(parse("--jobs", "redis://10.0.0.5:6379/2").store, {
    kind: "redis",
    url: "redis://10.0.0.5:6379/2",
  });
  assert.equal(parse("--job-ttl=12h").ttlMs, 12 * 3_600_000);
  assert.equal(parse("--job-lease=5s", "--job-attempts=1").leaseMs, 5000);
  assert.equal(parse("--job-queue=10").maxQueued, 10);
  assert.throws(
    () => parse("--jobs=postgres://x"),
    (e: Error) =>
      e instanceof UsageError && /--jobs: "postgres:\/\/x" is not sqlite, off or a redis/.test(e.message),
  );
  assert.throws(() => parse("--job-attempts=0"), UsageError);
});

Deno.test("serve refuses to start on a job store it cannot use, in one line", async () => {
  await using project = await makeProject({
    "inference.py": "def predict(sample, metadata):\n    return sample\n",
  });
  await using state = await tempDir();
  const unreachable = await serveOnce(project.path, { args: ["--jobs=redis://127.0.0.1:1/0"] });
  assert.equal(unreachable.code, 1, unreachable.output);
  assert.match(
    unreachable.error,
    /^error: Cannot reach the job store redis:\/\/127\.0\.0\.1:1\/0: .*; start Redis there/,
  );
  await Deno.mkdir(join(state.path, "jobs"));
  await Deno.writeTextFile(join(state.path, "jobs", "jobs.sqlite"), "not a database");
  const garbage = await serveOnce(project.path, { args: [`--state-dir=${state.path}`] });
  assert.equal(garbage.code, 1, garbage.output);
  assert.match(
    garbage.error,
    /^error: Cannot open the job store ".*jobs\.sqlite": file is not a database; remove the file/,
  );
});
