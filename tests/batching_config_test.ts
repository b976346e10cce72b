/** `server_side_batching:` in cortex.yaml: resolution and every refusal, with its line and column. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadProjectConfig } from "../src/config/load.ts";
import { ConfigError, formatIssue } from "../src/config/errors.ts";
import { parseBatchInterval } from "../src/config/_validate_batching.ts";
import type { ResolvedApi } from "../src/config/types.ts";

const BASE = [
  "- kind: deployment", // 1
  "  name: iris", // 2
  "- kind: api", // 3
  "  name: classifier", // 4
  "  python:", // 5
  "    inference: src/inference.py", // 6
];

async function withProject<T>(lines: string[], run: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "cortex_batching_config_" });
  try {
    await Deno.mkdir(join(dir, "src"));
    await Deno.writeTextFile(
      join(dir, "src/inference.py"),
      "def predict(samples, metadata):\n    return samples\n",
    );
    await Deno.writeTextFile(join(dir, "cortex.yaml"), [...BASE, ...lines].join("\n") + "\n");
    return await run(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function load(...lines: string[]): Promise<ResolvedApi> {
  return withProject(lines, async (dir) => (await loadProjectConfig(dir)).apis[0]!);
}

/** The formatted issues of a config that must fail. */
function fail(...lines: string[]): Promise<string[]> {
  return withProject(lines, async (dir) => {
    try {
      await loadProjectConfig(dir);
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      assert.equal(error.code, "CONFIG_INVALID");
      return error.issues.map(formatIssue);
    }
    throw new assert.AssertionError({ message: "expected a ConfigError" });
  });
}

Deno.test("server_side_batching resolves into batching settings", async () => {
  const api = await load("  server_side_batching:", "    max_batch_size: 16", "    batch_interval: 5ms");
  assert.deepEqual(api.batching, { maxBatchSize: 16, batchIntervalMs: 5 });
  const other = await load("  server_side_batching: {max_batch_size: 1024, batch_interval: 0.1s}");
  assert.deepEqual(other.batching, { maxBatchSize: 1024, batchIntervalMs: 100 });
});

Deno.test("without server_side_batching an api is not batched", async () => {
  assert.equal((await load()).batching, undefined);
  assert.equal((await load("  server_side_batching:")).batching, undefined);
});

Deno.test("batch_interval takes Go-style durations as Cortex did", () => {
  assert.equal(parseBatchInterval("5ms"), 5);
  assert.equal(parseBatchInterval("0.1s"), 100);
  assert.equal(parseBatchInterval("1s500ms"), 1500);
  assert.equal(parseBatchInterval("250us"), 0.25);
  assert.equal(parseBatchInterval("250µs"), 0.25);
  assert.equal(parseBatchInterval(".5s"), 500);
  assert.equal(parseBatchInterval("0.1m"), 6000);
  for (const bad of ["", "5", "ms", "5 ms", "5sec", "-5ms", "5ms junk", "1h"]) {
    assert.throws(() => parseBatchInterval(bad), RangeError, bad);
  }
});

Deno.test("max_batch_size must be a whole number from 2 to 1024", async () => {
  const cases: [string, RegExp][] = [
    ["1", /must be a whole number from 2 to 1024, got 1 \(fix: write at least 2, or remove/],
    ["1025", /got 1025 \(fix: write a whole number from 2 to 1024/],
    ["2.5", /got 2\.5/],
    ['"8"', /got "8" \(fix: remove the quotes: write 8\)/],
    ["true", /got true/],
    ["[8]", /got a list/],
  ];
  for (const [value, problem] of cases) {
    const issues = await fail(
      "  server_side_batching:",
      `    max_batch_size: ${value}`,
      "    batch_interval: 5ms",
    );
    assert.equal(issues.length, 1, issues.join("\n"));
    assert.match(
      issues[0]!,
      /^cortex\.yaml:8:21: api "classifier": server_side_batching\.max_batch_size: /,
      issues[0],
    );
    assert.match(issues[0]!, problem);
  }
});

Deno.test("batch_interval must be a duration above 0 and at most 10 s", async () => {
  const cases: [string, RegExp][] = [
    ["0ms", /must be above 0 and at most 10s, got "0ms"/],
    ["11s", /must be above 0 and at most 10s, got "11s"/],
    ["10001ms", /at most 10s/],
    ["0.005", /must be a duration with its unit, got 0\.005 \(fix: write the unit, such as "0\.005s"/],
    ["5 apples", /must be a duration such as "5ms" or "0\.1s", got "5 apples"/],
    ["[5ms]", /got a list/],
  ];
  for (const [value, problem] of cases) {
    const issues = await fail(
      "  server_side_batching:",
      "    max_batch_size: 8",
      `    batch_interval: ${value}`,
    );
    assert.equal(issues.length, 1, issues.join("\n"));
    assert.match(
      issues[0]!,
      /^cortex\.yaml:9:21: api "classifier": server_side_batching\.batch_interval: /,
      issues[0],
    );
    assert.match(issues[0]!, problem);
  }
  assert.deepEqual(
    (await load("  server_side_batching: {max_batch_size: 2, batch_interval: 10s}")).batching,
    {
      maxBatchSize: 2,
      batchIntervalMs: 10_000,
    },
  );
});

Deno.test("server_side_batching: both keys are required, unknown keys refused, a map expected", async () => {
  const missing = await fail("  server_side_batching:", "    max_batch_size: 8");
  assert.deepEqual(missing.length, 1, missing.join("\n"));
  assert.match(
    missing[0]!,
    /^cortex\.yaml:8:5: .*server_side_batching\.batch_interval: is required \(fix: add/,
  );

  const typo = await fail("  server_side_batching:", "    max_batch_size: 8", "    batch_intervall: 5ms");
  assert.equal(typo.length, 2, typo.join("\n"));
  assert.match(typo[0]!, /^cortex\.yaml:8:5: .*batch_interval: is required/);
  assert.match(
    typo[1]!,
    /^cortex\.yaml:9:5: .*server_side_batching\.batch_intervall: unknown key, did you mean "batch_interval"/,
  );

  const scalar = await fail("  server_side_batching: 8");
  assert.equal(scalar.length, 1, scalar.join("\n"));
  assert.match(
    scalar[0]!,
    /^cortex\.yaml:7:25: api "classifier": server_side_batching: must be a map, got 8/,
  );
});

Deno.test("predictor.server_side_batching resolves in the predictor dialects, with line and column errors", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cortex_batching_config_" });
  try {
    await Deno.writeTextFile(join(dir, "predictor.py"), "class PythonPredictor:\n    pass\n");
    const write = (batching: string) =>
      Deno.writeTextFile(
        join(dir, "cortex.yaml"),
        [
          "- name: fare", // 1
          "  predictor:", // 2
          "    type: python", // 3
          "    path: predictor.py", // 4
          "    server_side_batching:", // 5
          batching, // 6
          "      batch_interval: 0.1s", // 7
        ].join("\n") + "\n",
      );
    await write("      max_batch_size: 16");
    const project = await loadProjectConfig(dir);
    assert.equal(project.dialect, "0.13");
    assert.deepEqual(project.apis[0]!.batching, { maxBatchSize: 16, batchIntervalMs: 100 });

    await write("      max_batch_size: 2000");
    const error = await loadProjectConfig(dir).then(() => undefined, (e: unknown) => e);
    assert.ok(error instanceof ConfigError, String(error));
    assert.match(
      error.message,
      /^cortex\.yaml:6:23: api "fare": predictor\.server_side_batching\.max_batch_size: must be a whole number from 2 to 1024, got 2000 /m,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
