/**
 * Overload through a real server on 127.0.0.1, bounded in clients, requests
 * and time: clients that retry a 503 at once, far more than the queue holds,
 * must not starve the replica. Predictions served stay near what clients
 * that fit the queue get, every refusal is a 503 with `Retry-After`, and the
 * log summarises the refusals instead of one line each.
 */
import assert from "node:assert/strict";
import { assertServerRunning, makeProject, post, startServer } from "./_helpers.ts";

/** A predict of about 2 ms that does not use the CPU: capacity ~400/s whatever the machine's load. */
const SLEEPY = "import time\n\ndef predict(sample, metadata):\n    time.sleep(0.002)\n    return sample\n";

const QUEUE = 8;
const SECONDS = 2;
/** Bound on the requests one phase may send. */
const MAX_REQUESTS = 40_000;

interface Phase {
  readonly ok: number;
  readonly refused: number;
  /** Statuses other than 200 and 503, and 503s without Retry-After. */
  readonly wrong: string[];
  readonly seconds: number;
}

/** `clients` loops posting one sample each, retrying at once on any answer, for SECONDS. */
async function flood(url: string, clients: number): Promise<Phase> {
  let ok = 0;
  let refused = 0;
  let sent = 0;
  const wrong: string[] = [];
  const started = performance.now();
  const until = started + SECONDS * 1000;
  await Promise.all(Array.from({ length: clients }, async () => {
    while (performance.now() < until && sent++ < MAX_REQUESTS) {
      const res = await post(url, { x: 1 });
      await res.body?.cancel();
      if (res.status === 200) ok++;
      else if (res.status === 503 && res.headers.get("retry-after") === "1") refused++;
      else wrong.push(`${res.status} retry-after=${res.headers.get("retry-after")}`);
    }
  }));
  return { ok, refused, wrong, seconds: (performance.now() - started) / 1000 };
}

Deno.test("overload: clients retrying at once past the queue do not starve the replica", async () => {
  await using project = await makeProject({ "inference.py": SLEEPY });
  await using server = await startServer(project.path, { args: [`--queue=${QUEUE}`] });
  const api = `${server.url}/test/api`;

  const fits = await flood(api, QUEUE); // one running, the rest queued: no refusal
  const over = await flood(api, QUEUE * 12);
  const capacity = fits.ok / fits.seconds;
  const served = over.ok / over.seconds;
  const summary = JSON.stringify({ fits, over, capacity, served });

  assert.equal(fits.refused, 0, summary);
  assert.deepEqual([...fits.wrong, ...over.wrong], [], summary);
  assert.ok(over.refused > 0, `the flood was not refused: ${summary}`);
  assert.ok(served >= 0.6 * capacity, `predictions fell under overload: ${summary}`);

  // Refusals are counted per second at warn, not logged one line each.
  const rejected = await server.waitFor((r) => r.msg === "requests rejected" && r.reason === "queue full");
  assert.equal(rejected.level, "warn");
  assert.equal(rejected.api, "api");
  assert.ok(typeof rejected.count === "number" && rejected.count > 0);
  const lines = server.lines.filter((line) =>
    line.includes('"msg":"request"') && line.includes('"status":503')
  );
  assert.deepEqual(lines, [], "a refusal was logged on its own line");
  await assertServerRunning(server);
  const restarted = server.lines.filter((line) => line.includes("worker stopped"));
  assert.deepEqual(restarted, [], "the worker restarted");
});

Deno.test("overload: with --log-level debug each refusal has its own line", async () => {
  await using project = await makeProject({ "inference.py": SLEEPY });
  await using server = await startServer(project.path, { args: ["--queue=1", "--log-level=debug"] });
  const api = `${server.url}/test/api`;
  const answers = await Promise.all(Array.from({ length: 8 }, () => post(api, { x: 1 })));
  await Promise.all(answers.map((r) => r.body?.cancel()));
  assert.ok(answers.some((r) => r.status === 503), answers.map((r) => r.status).join(","));
  const line = await server.waitFor((r) => r.msg === "request" && r.status === 503);
  assert.equal(line.api, "api");
});
