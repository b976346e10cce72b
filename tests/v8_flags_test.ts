/**
 * Every way this repository starts cortex-serve passes the V8 flags it is
 * deployed with (`DEPLOYED_V8_FLAGS`): the compile task builds them into the
 * binary, so a flag added in one place and not the others would make the
 * benchmark or the example measure a server nobody runs.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { DEPLOYED_V8_FLAGS, ROOT } from "./_helpers.ts";

/** Files that start the server, and how many times each passes the flags. */
const STARTERS: readonly (readonly [string, number])[] = [
  ["scripts/compile", 1],
  ["scripts/serve-example", 1],
  ["scripts/bench/bench.ts", 1],
  ["deno.json", 1],
  ["docs/development.md", 1],
];

Deno.test("every way of starting the server passes the deployed V8 flags, and no other", () => {
  const wanted = `--v8-flags=${DEPLOYED_V8_FLAGS.join(",")}`;
  for (const [file, times] of STARTERS) {
    const text = readFileSync(join(ROOT, file), "utf8");
    const found = text.match(/--v8-flags=[^\s"'`$\\]*/g) ?? [];
    assert.deepEqual(found, Array(times).fill(wanted), `${file}: the flags it passes`);
  }
});
