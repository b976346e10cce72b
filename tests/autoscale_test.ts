/**
 * Replica scaling through a real server: least-busy (rotating) dispatch over
 * ready replicas, and request-based autoscaling between min_replicas and
 * max_replicas with a short window and cool-down.
 */
import assert from "node:assert/strict";
import { assertNoWorkersLeft, makeProject, post, singleApiConfig, startServer } from "./_helpers.ts";

/** Busy for `ms` of CPU, then answers with the worker's pid. */
const CPU_BOUND = `import os, time


def predict(sample, metadata):
    end = time.perf_counter() + sample.get("ms", 30) / 1000
    while time.perf_counter() < end:
        pass
    return os.getpid()
`;

async function pidOf(url: string, body: unknown): Promise<number> {
  const res = await post(url, body);
  assert.equal(res.status, 200);
  return await res.json();
}

Deno.test("requests rotate over ready replicas", async () => {
  await using project = await makeProject({
    "inference.py": CPU_BOUND,
    "cortex.yaml": singleApiConfig("  compute:\n    min_replicas: 2\n"),
  });
  await using server = await startServer(project.path, { replicas: 2 });
  const url = `${server.url}/test/api`;
  const pids: number[] = [];
  for (let i = 0; i < 6; i++) pids.push(await pidOf(url, { ms: 0 }));
  // One client at a time: each request finds both replicas ready and the
  // next one in turn takes it.
  assert.equal(new Set(pids).size, 2);
  for (let i = 1; i < pids.length; i++) assert.notEqual(pids[i], pids[i - 1]);
});

Deno.test("a deep queue adds a replica up to max_replicas; an idle one is retired after the cool-down", async () => {
  let stateDir = "";
  {
    await using project = await makeProject({
      "inference.py": CPU_BOUND,
      "cortex.yaml": singleApiConfig("  compute:\n    min_replicas: 1\n    max_replicas: 2\n"),
    });
    await using server = await startServer(project.path, {
      args: ["--scale-window=300ms", "--scale-cooldown=1s"],
    });
    stateDir = server.stateDir;
    const url = `${server.url}/test/api`;
    const index = async () => (await (await fetch(`${server.url}/`)).json()).apis[0];
    assert.equal((await index()).replicas.total, 1);

    // Four clients against one replica keep three requests waiting.
    const pids = new Set<number>();
    const bothServed = Promise.withResolvers<void>();
    let loading = true;
    const client = async () => {
      while (loading) {
        pids.add(await pidOf(url, { ms: 30 }));
        if (pids.size === 2) bothServed.resolve();
      }
    };
    const clients = Array.from({ length: 4 }, client);
    try {
      const up = await server.waitFor((r) => r.msg === "scaled up", 10_000);
      assert.equal(up.api, "api");
      assert.equal(up.replicas, 2);
      assert.match(String(up.reason), /^average concurrency \d+\.\d over 0\.3 s$/);
      // The new replica takes work once it is ready.
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        bothServed.promise,
        new Promise((_, reject) => timer = setTimeout(() => reject(new Error("one replica only")), 10_000)),
      ]).finally(() => clearTimeout(timer));
      assert.equal(pids.size, 2);
      assert.equal((await index()).replicas.total, 2);
    } finally {
      loading = false;
      await Promise.all(clients);
    }

    const down = await server.waitFor((r) => r.msg === "scaled down", 10_000);
    assert.equal(down.replicas, 1);
    // The last requests may still fall inside the cool-down window.
    assert.match(String(down.reason), /^peak concurrency [01] over 1 s$/);
    const after = await index();
    assert.equal(after.replicas.total, 1);
    assert.equal(after.status, "ready");
    assert.equal(await pidOf(url, { ms: 0 }) > 0, true);

    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.match(metrics, /cortex_serve_scale_events_total\{api="api",direction="up"\} 1\n/);
    assert.match(metrics, /cortex_serve_scale_events_total\{api="api",direction="down"\} 1\n/);
  }
  await assertNoWorkersLeft(stateDir);
});
