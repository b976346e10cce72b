/**
 * A prediction's objects must die young. At one request at a time, what a
 * scavenge finds alive is one request's objects and what lives anyway, a
 * few KB; a scavenge that promotes far more means something long-lived
 * points at every request's objects, and each pause then grows with them.
 * That happened twice: a `ReplicaRun` made as an object literal with a
 * getter (each such literal gets a hidden class of its own, allocated in
 * the old generation, whose getter closure reached the whole request), and
 * a listener on each request's `signal` (the runtime's, through its
 * cancel watch). Each made every scavenge promote 60-200 KB and pause
 * 0.4 ms on average, up to 4 ms: the c=1 tail (docs/performance.md, "Where
 * the tail comes from").
 *
 * The server runs with `--trace-gc-nvp` (one JSON record per GC on its
 * stdout) as deployed (`--max-semi-space-size=2`) and a real worker; the
 * test sends 4,000 predictions one after another and reads how much each
 * scavenge promoted.
 */
import assert from "node:assert/strict";
import { makeProject, startServer } from "./_helpers.ts";

/**
 * Bound on the median bytes a scavenge promotes. Measured 2026-12-04 (Deno
 * 2.9.6, c=1, no-op predict): 8-9 KB; with either fault above 77-214 KB.
 */
const MAX_PROMOTED = 48 * 1024;
const REQUESTS = 4000;

interface Scavenge {
  readonly promoted: number;
  readonly pause: number;
}

/** The scavenges among `lines` of `--trace-gc-nvp` output (other lines are skipped). */
function scavenges(lines: readonly string[]): Scavenge[] {
  const found: Scavenge[] = [];
  for (const line of lines) {
    const at = line.indexOf("GC: {");
    if (at < 0) continue;
    let record: { gc?: string; promoted?: number; pause?: number };
    try {
      record = JSON.parse(line.slice(at + 4));
    } catch {
      continue;
    }
    if (record.gc === "s") found.push({ promoted: record.promoted ?? 0, pause: record.pause ?? 0 });
  }
  return found;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

Deno.test("a prediction's objects die young: a scavenge at c=1 promotes a few KB", async () => {
  await using project = await makeProject({
    "inference.py": "def predict(sample, metadata):\n    return sample\n",
  });
  await using server = await startServer(project.path, {
    v8Flags: ["--max-semi-space-size=2", "--trace-gc-nvp"],
  });
  const url = `${server.url}/test/api`;
  const body = JSON.stringify({ sepal_length: 5.2, sepal_width: 3.6, petal_length: 1.4, petal_width: 0.3 });
  const headers = { "content-type": "application/json" };
  // Warm-up: compiled code and the caches of the first requests.
  for (let i = 0; i < 500; i++) await (await fetch(url, { method: "POST", body, headers })).arrayBuffer();
  const before = server.lines.length;
  for (let i = 0; i < REQUESTS; i++) {
    const res = await fetch(url, { method: "POST", body, headers });
    await res.arrayBuffer();
    assert.equal(res.status, 200);
  }
  const seen = scavenges(server.lines.slice(before));
  assert.ok(seen.length >= 8, `only ${seen.length} scavenges in ${REQUESTS} requests: is --trace-gc-nvp on?`);
  const promoted = median(seen.map((s) => s.promoted));
  assert.ok(
    promoted <= MAX_PROMOTED,
    `a scavenge promoted ${(promoted / 1024).toFixed(1)} KiB (median of ${seen.length}; bound ` +
      `${MAX_PROMOTED / 1024} KiB) and paused ${median(seen.map((s) => s.pause)).toFixed(2)} ms: something ` +
      "long-lived holds every request's objects (see this file's header)",
  );
});
