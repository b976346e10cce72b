/**
 * Load and restart policy through a real server on 127.0.0.1, bounded in
 * connections and time: a worker that crashes every 50th request costs only
 * those requests, and the restart delay backs off for a crash loop but not
 * after a worker did useful work.
 */
import assert from "node:assert/strict";
import {
  assertNoWorkersLeft,
  assertServerRunning,
  makeProject,
  post,
  type ServerProcess,
  startServer,
} from "./_helpers.ts";
import { waitHealthy } from "./_faults.ts";

const CRASH_EVERY_50 = `import os

COUNT = 0

def predict(sample, metadata):
    global COUNT
    COUNT += 1
    if COUNT % 50 == 0:
        os._exit(1)
    return COUNT
`;

const CONNECTIONS = 32;
const SECONDS = 5;

Deno.test(`load: ${CONNECTIONS} connections for ${SECONDS} s against a worker crashing every 50th request`, async () => {
  let stateDir = "";
  {
    await using project = await makeProject({ "inference.py": CRASH_EVERY_50 });
    await using server = await startServer(project.path);
    stateDir = server.stateDir;
    const api = `${server.url}/test/api`;
    const statuses = new Map<number, number>();
    const until = Date.now() + SECONDS * 1000;
    await Promise.all(Array.from({ length: CONNECTIONS }, async () => {
      while (Date.now() < until) {
        const res = await post(api, { x: 1 });
        await res.body?.cancel();
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      }
    }));
    const seen = Object.fromEntries(statuses);
    for (const status of statuses.keys()) {
      assert.ok([200, 502, 503].includes(status), `unexpected status ${status}: ${JSON.stringify(seen)}`);
    }
    assert.ok((statuses.get(200) ?? 0) > 200, `too few successes: ${JSON.stringify(seen)}`);
    assert.ok((statuses.get(502) ?? 0) >= 2, `the worker should have crashed: ${JSON.stringify(seen)}`);

    await waitHealthy(server.url);
    const after = await post(api, {});
    assert.equal(after.status, 200);
    await after.body?.cancel();
    await assertServerRunning(server);
  }
  await assertNoWorkersLeft(stateDir);
});

/** The `restart_in_ms` of the `n`-th "worker stopped; restarting" record (1-based). */
async function restartDelay(server: ServerProcess, n: number): Promise<unknown> {
  let seen = 0;
  const record = await server.waitFor((r) => r.msg === "worker stopped; restarting" && ++seen === n, 10_000);
  return record.restart_in_ms;
}

Deno.test("restart delay doubles while a worker dies before answering anything, resets after it answered", async () => {
  let stateDir = "";
  {
    await using project = await makeProject({
      "inference.py":
        "import os\n\ndef predict(sample, metadata):\n    if sample['fail']:\n        os._exit(1)\n    return 'ok'\n",
    });
    await using server = await startServer(project.path);
    stateDir = server.stateDir;
    const api = `${server.url}/test/api`;
    const expected = [500, 1000, 2000];
    for (const [i, ms] of expected.entries()) {
      const res = await post(api, { fail: true });
      assert.equal(res.status, 502);
      await res.body?.cancel();
      assert.equal(await restartDelay(server, i + 1), ms);
    }
    const ok = await post(api, { fail: false });
    assert.equal(ok.status, 200, "a queued request waits for the restart");
    await ok.body?.cancel();
    const crash = await post(api, { fail: true });
    assert.equal(crash.status, 502);
    await crash.body?.cancel();
    assert.equal(await restartDelay(server, 4), 500, "back to the shortest delay after a healthy period");
  }
  await assertNoWorkersLeft(stateDir);
});
