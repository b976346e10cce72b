/**
 * Idle memory of the server process: `cortex-serve serve` on the iris example,
 * as deployed (`DEPLOYED_V8_FLAGS`), after one prediction, against a bare
 * `Deno.serve` (scripts/bench/floor.ts) started by the same Deno. Both are read
 * from /proc/<pid>/status of the real processes (the Python workers are other
 * processes and not counted). See docs/performance.md, "Memory".
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DEPLOYED_V8_FLAGS, PYTHON, ROOT, tempDir } from "./_helpers.ts";

/**
 * Bound on the server's idle RSS as a multiple of the floor's. Measured on
 * 2026-12-04 (Deno 2.9.6, `deno run main.ts`): server 64-70 MiB, floor 35-39
 * MiB, 1.7-1.9x; 2.1x leaves about 10 % for noise: a server holding about 10
 * MiB more at idle goes past it.
 */
const MAX_RATIO = 2.1;
const DENO = Deno.execPath();
const SAMPLE = JSON.stringify({ sepal_length: 5.2, sepal_width: 3.6, petal_length: 1.4, petal_width: 0.3 });

/** Resident set of `pid` in KiB (VmRSS). */
async function rssKiB(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const match = status.match(/^VmRSS:\s+(\d+) kB$/m);
  assert.ok(match !== null, `no VmRSS in /proc/${pid}/status`);
  return Number(match[1]);
}

/** The settled RSS: the smallest of a few samples over ~1.5 s (a GC may be pending at the first). */
async function idleRssKiB(pid: number): Promise<number> {
  let least = Infinity;
  for (let i = 0; i < 6; i++) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    least = Math.min(least, await rssKiB(pid));
  }
  return least;
}

/** Posts `body` to `url` until it answers 200 (the server may not listen yet); gives up after 60 s. */
async function untilOk(url: string, body: string, child: Deno.ChildProcess): Promise<void> {
  const deadline = Date.now() + 60_000;
  const exited = child.status.then(() => true);
  while (Date.now() < deadline) {
    try {
      const res = await fetch(url, { method: "POST", body, headers: { "content-type": "application/json" } });
      await res.body?.cancel();
      if (res.status === 200) return;
    } catch {
      // Not listening yet.
    }
    const done = await Promise.race([exited, new Promise((r) => setTimeout(() => r(false), 100))]);
    assert.equal(done, false, `${url}: the process exited before answering`);
  }
  throw new Error(`${url} did not answer 200 within 60 s`);
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Spawns `args` under Deno, output discarded; `stop` sends SIGTERM and waits. */
function spawn(args: string[]): { child: Deno.ChildProcess; stop: () => Promise<void> } {
  const child = new Deno.Command(DENO, { args, stdin: "null", stdout: "null", stderr: "null" }).spawn();
  return {
    child,
    stop: async () => {
      try {
        child.kill("SIGTERM");
      } catch {
        // Already gone.
      }
      await child.status;
    },
  };
}

Deno.test("the idle server holds at most 2.1x the RSS of a bare Deno.serve", async () => {
  await using state = await tempDir("cortex-serve-memory-");
  const floorPort = freePort();
  const floor = spawn(["run", "--allow-net", join(ROOT, "scripts", "bench", "floor.ts"), String(floorPort)]);
  let floorKiB: number;
  try {
    await untilOk(`http://127.0.0.1:${floorPort}/`, SAMPLE, floor.child);
    floorKiB = await idleRssKiB(floor.child.pid);
  } finally {
    await floor.stop();
  }

  const port = freePort();
  const server = spawn([
    "run",
    "--allow-all",
    "--frozen",
    `--v8-flags=${DEPLOYED_V8_FLAGS.join(",")}`,
    `--config=${join(ROOT, "deno.json")}`,
    join(ROOT, "main.ts"),
    "serve",
    join(ROOT, "examples", "iris-classifier"),
    `--port=${port}`,
    `--state-dir=${state.path}`,
    `--python=${PYTHON}`,
  ]);
  let serverKiB: number;
  try {
    await untilOk(`http://127.0.0.1:${port}/iris/classifier`, SAMPLE, server.child);
    serverKiB = await idleRssKiB(server.child.pid);
  } finally {
    await server.stop();
  }
  const ratio = serverKiB / floorKiB;
  assert.ok(
    ratio <= MAX_RATIO,
    `server idle RSS ${(serverKiB / 1024).toFixed(1)} MiB is ${ratio.toFixed(2)}x the floor's ` +
      `${(floorKiB / 1024).toFixed(1)} MiB (bound ${MAX_RATIO}x): see docs/performance.md, "Memory"`,
  );
});
