/** The connection flags, the default connection cap and the open-file limit as read from /proc. */
import assert from "node:assert/strict";
import {
  DEFAULT_HEADER_TIMEOUT_MS,
  DEFAULT_KEEPALIVE_TIMEOUT_MS,
  defaultMaxConnections,
  parseConnectionFlags,
} from "../src/cli/connection_options.ts";
import { parseOpenFileLimit, raiseOpenFileLimit, readOpenFileLimit } from "../src/cli/fd_limit.ts";
import { parseServeArgs, SERVE_HELP } from "../src/cli/serve_options.ts";
import { UsageError } from "../src/cli/units.ts";
import { PYTHON } from "./_helpers.ts";

Deno.test("connection flags: defaults, durations and counts", () => {
  assert.deepEqual(parseConnectionFlags({}), {
    headerTimeoutMs: DEFAULT_HEADER_TIMEOUT_MS,
    keepAliveTimeoutMs: DEFAULT_KEEPALIVE_TIMEOUT_MS,
    maxConnections: undefined,
  });
  const options = parseServeArgs([
    "--header-timeout=500ms",
    "--keepalive-timeout=2m",
    "--max-connections=64",
  ]);
  assert.notEqual(options, "help");
  if (options === "help") return;
  assert.deepEqual(options.connections, {
    headerTimeoutMs: 500,
    keepAliveTimeoutMs: 120_000,
    maxConnections: 64,
  });
  for (const flag of ["--header-timeout=0", "--keepalive-timeout=soon", "--max-connections=0"]) {
    assert.throws(() => parseServeArgs([flag]), (error) => {
      assert.ok(error instanceof UsageError);
      assert.match(error.message, new RegExp(`^${flag.split("=")[0]}: `));
      return true;
    });
  }
  for (const flag of ["--header-timeout", "--keepalive-timeout", "--max-connections"]) {
    assert.ok(SERVE_HELP.includes(flag), flag);
  }
});

Deno.test("connection cap: the open-file limit less a reserve, within 16 and 4096", () => {
  assert.equal(defaultMaxConnections(256), 192);
  assert.equal(defaultMaxConnections(1024), 768);
  assert.equal(defaultMaxConnections(4096), 3072);
  assert.equal(defaultMaxConnections(8192), 4096);
  assert.equal(defaultMaxConnections(65536), 4096);
  assert.equal(defaultMaxConnections(64), 16);
});

Deno.test("open-file limit: parsed from /proc/<pid>/limits", async () => {
  const text = "Limit                     Soft Limit           Hard Limit           Units     \n" +
    "Max processes             63704                63704                processes \n" +
    "Max open files            1024                 524288               files     \n";
  assert.deepEqual(parseOpenFileLimit(text), { soft: 1024, hard: 524288 });
  assert.equal(parseOpenFileLimit("Max processes 1 1 processes\n"), undefined);
  const here = await readOpenFileLimit();
  assert.ok(here !== undefined && here.soft >= 1 && here.soft <= here.hard, JSON.stringify(here));
  assert.equal(await readOpenFileLimit("/nonexistent/limits"), undefined);
});

Deno.test("open-file limit: a soft limit under the hard one is raised to it", async () => {
  const before = await readOpenFileLimit();
  assert.ok(before !== undefined);
  const lowered = await new Deno.Command("prlimit", {
    args: [`--pid=${Deno.pid}`, `--nofile=512:${before.hard}`],
  }).output();
  assert.equal(lowered.code, 0, new TextDecoder().decode(lowered.stderr));
  assert.equal((await readOpenFileLimit())?.soft, 512);
  assert.deepEqual(await raiseOpenFileLimit(PYTHON), { soft: before.hard, hard: before.hard });
  assert.deepEqual(await readOpenFileLimit(), { soft: before.hard, hard: before.hard });
});
