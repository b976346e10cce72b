/**
 * SIGHUP reload through a real server: new version swapped in without a
 * failed request, broken versions leave the running one serving.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  assertNoWorkersLeft,
  makeProject,
  post,
  processesMatching,
  singleApiConfig,
  startServer,
} from "./_helpers.ts";
import { Emitter, waitUntil } from "../src/supervision/events.ts";

const versioned = (version: string) =>
  `import time

def predict(sample, metadata):
    time.sleep(0.005)
    return "${version}"
`;

/** Sends requests from `clients` loops until `stop` is called; collects status and body. */
function steadyTraffic(url: string, clients: number) {
  let running = true;
  const results: { status: number; body: unknown }[] = [];
  const answered = new Emitter<void>();
  const loops = Array.from({ length: clients }, async () => {
    while (running) {
      const res = await post(url, {});
      results.push({ status: res.status, body: await res.json() });
      answered.emit();
    }
  });
  return {
    results,
    /** Resolves once `count` answers had body `body`; rejects after 10 s. */
    until(body: string, count: number) {
      return waitUntil(
        [answered],
        () => results.filter((r) => r.body === body).length >= count || undefined,
        {
          timeoutMs: 10_000,
        },
      );
    },
    async stop() {
      running = false;
      await Promise.all(loops);
      return results;
    },
  };
}

Deno.test("SIGHUP swaps in a new version without a failed request; the old worker stops", async () => {
  let stateDir = "";
  {
    await using project = await makeProject({ "inference.py": versioned("v1") });
    await using server = await startServer(project.path);
    stateDir = server.stateDir;
    const api = `${server.url}/test/api`;
    const [oldWorker] = await processesMatching(join(stateDir, "worker.py"));

    const traffic = steadyTraffic(api, 4);
    await traffic.until("v1", 10);
    await Deno.writeTextFile(join(project.path, "inference.py"), versioned("v2"));
    server.kill("SIGHUP");
    await server.waitFor((r) => String(r.msg).startsWith("reloaded"), 15_000);
    await server.waitFor((r) => r.msg === "previous version stopped", 15_000);
    await traffic.until("v2", 10);
    const results = await traffic.stop();

    const failed = results.filter((r) => r.status !== 200);
    assert.deepEqual(failed, [], "every request during the reload succeeded");
    assert.equal(results.at(0)?.body, "v1");
    assert.equal(results.at(-1)?.body, "v2");
    const bodies = results.map((r) => r.body);
    assert.ok(
      bodies.lastIndexOf("v1") < bodies.indexOf("v2") + 4,
      `versions did not interleave for long: ${bodies.join(" ")}`,
    );

    const workers = await processesMatching(join(stateDir, "worker.py"));
    assert.equal(workers.length, 1);
    assert.notEqual(workers[0], oldWorker);

    // GET / keeps counting across the reload: it saw every request sent.
    const index = await (await fetch(`${server.url}/`)).json();
    assert.equal(index.apis[0].requests, results.length);
    assert.equal(index.apis[0].status_2xx, results.length);
  }
  await assertNoWorkersLeft(stateDir);
});

Deno.test("a reload whose new version fails leaves the running one serving and logs why", async () => {
  let stateDir = "";
  {
    await using project = await makeProject({ "inference.py": versioned("v1") });
    await using server = await startServer(project.path, { args: ["--init-timeout=2s"] });
    stateDir = server.stateDir;
    const api = `${server.url}/test/api`;

    // 1. The new code does not import.
    await Deno.writeTextFile(join(project.path, "inference.py"), "def predict(sample, metadata)\n");
    server.kill("SIGHUP");
    const syntax = await server.waitFor((r) => String(r.msg).startsWith("reload failed"));
    assert.match(String(syntax.error), /api api: import failed: SyntaxError/);
    assert.equal(await (await post(api, {})).json(), "v1");

    // 2. The new cortex.yaml is invalid.
    await Deno.writeTextFile(join(project.path, "inference.py"), versioned("v2"));
    await Deno.writeTextFile(join(project.path, "cortex.yaml"), singleApiConfig("  colour: blue\n"));
    server.kill("SIGHUP");
    let failed = 0;
    await server.waitFor((r) => String(r.msg).startsWith("reload failed") && ++failed === 2);
    assert.match(server.lines.filter((l) => l.includes("reload failed"))[1]!, /colour/);
    const still = await post(api, {});
    assert.equal(still.status, 200);
    assert.equal(await still.json(), "v1");
    const health = await fetch(`${server.url}/healthz`);
    assert.equal(health.status, 200);
    await health.body?.cancel();

    // 3. Fixed: the next reload goes through.
    await Deno.writeTextFile(join(project.path, "cortex.yaml"), singleApiConfig());
    server.kill("SIGHUP");
    await server.waitFor((r) => String(r.msg).startsWith("reloaded"), 15_000);
    assert.equal(await (await post(api, {})).json(), "v2");
    await server.waitFor((r) => r.msg === "previous version stopped", 15_000);
    assert.equal((await processesMatching(join(stateDir, "worker.py"))).length, 1);
  }
  await assertNoWorkersLeft(stateDir);
});
