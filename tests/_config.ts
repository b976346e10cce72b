/**
 * Helpers of the cortex.yaml tests (config_*_test.ts): a project in a temp
 * dir, loading a config, and asserting the issues a refused one reports.
 */
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { loadProjectConfig } from "../src/config/load.ts";
import { ConfigError, type ConfigIssue, formatIssue } from "../src/config/errors.ts";
import type { ResolvedProject } from "../src/config/types.ts";

export const INFERENCE = "def predict(sample, metadata):\n    return sample\n";

/** Lines of YAML, one argument per line, so that line numbers are visible. */
export function yaml(...lines: string[]): string {
  return lines.join("\n") + "\n";
}

/** A valid config; lines 1–6. Tests append keys of the api at two spaces. */
export const BASE = [
  "- kind: deployment", // 1
  "  name: iris", // 2
  "- kind: api", // 3
  "  name: classifier", // 4
  "  python:", // 5
  "    inference: src/inference.py", // 6
];

export interface TempProject extends AsyncDisposable {
  readonly dir: string;
}

/** A project in a temp dir; `files` maps relative paths to contents. */
export async function project(files: Record<string, string>): Promise<TempProject> {
  const dir = await Deno.makeTempDir({ prefix: "cortex_config_test_" });
  for (const [name, content] of Object.entries(files)) {
    await Deno.mkdir(dirname(join(dir, name)), { recursive: true });
    await Deno.writeTextFile(join(dir, name), content);
  }
  return {
    dir,
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

/** Loads `config` as cortex.yaml, next to `src/inference.py` and `extra` files. */
export async function load(
  config: string,
  extra: Record<string, string> = {},
): Promise<ResolvedProject> {
  await using p = await project({ "cortex.yaml": config, "src/inference.py": INFERENCE, ...extra });
  return await loadProjectConfig(p.dir);
}

/** Loads `config`, expecting a ConfigError with `code`. */
export async function fail(
  config: string,
  extra: Record<string, string> = {},
  code: ConfigError["code"] = "CONFIG_INVALID",
): Promise<ConfigError> {
  await using p = await project({ "cortex.yaml": config, "src/inference.py": INFERENCE, ...extra });
  return await expectError(() => loadProjectConfig(p.dir), code);
}

export async function expectError(
  run: () => Promise<unknown>,
  code: ConfigError["code"],
): Promise<ConfigError> {
  try {
    await run();
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    assert.equal(e.code, code, e.message);
    assert.equal(e.message, e.issues.map(formatIssue).join("\n"));
    return e;
  }
  throw new assert.AssertionError({ message: `expected a ConfigError ${code}` });
}

export interface Expected {
  readonly path: string;
  readonly line?: number | undefined;
  readonly column?: number;
  readonly resource?: string;
  readonly problem?: RegExp;
  readonly fix?: RegExp;
}

/** Asserts that `error` has exactly one issue at `expected.path` and returns it. */
export function issue(error: ConfigError, expected: Expected): ConfigIssue {
  const found = error.issues.filter((i) => i.path === expected.path);
  assert.equal(found.length, 1, `one issue at "${expected.path}" in:\n${error.message}`);
  const got = found[0]!;
  const line = formatIssue(got);
  if ("line" in expected) assert.equal(got.line, expected.line, line);
  if (expected.column !== undefined) assert.equal(got.column, expected.column, line);
  if (expected.resource !== undefined) assert.equal(got.resource, expected.resource, line);
  if (expected.problem !== undefined) assert.match(got.problem, expected.problem, line);
  if (expected.fix !== undefined) assert.match(got.fix, expected.fix, line);
  assert.ok(got.fix.length > 0, `a fix in: ${line}`);
  assert.ok(line.includes(expected.path), `the key path in: ${line}`);
  if (got.line !== undefined) {
    assert.ok(line.startsWith(`cortex.yaml:${got.line}:${got.column}: `), line);
  }
  return got;
}

/** Asserts that the only issue is the one described. */
export function only(error: ConfigError, expected: Expected): ConfigIssue {
  assert.equal(error.issues.length, 1, error.message);
  return issue(error, expected);
}
