/**
 * Shutdown through a real server: SIGTERM drains accepted work and exits 0,
 * stragglers are killed after --drain-timeout, and a server killed with
 * SIGKILL leaves no worker behind (busy, idle, or stuck in C with the GIL).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  assertNoWorkersLeft,
  CLI,
  delay,
  makeProject,
  post,
  processesMatching,
  PYTHON,
  singleApiConfig,
  startServer,
  tempDir,
} from "./_helpers.ts";
import { eventually } from "./_jobs.ts";
import { scrape, valueOf } from "./_prometheus.ts";

const SLOW = `import time

def predict(sample, metadata):
    time.sleep(0.03)
    return sample["i"]
`;

Deno.test("SIGTERM under load: every accepted request is answered, then exit 0", async () => {
  let stateDir = "";
  {
    await using project = await makeProject({ "inference.py": SLOW });
    await using server = await startServer(project.path);
    stateDir = server.stateDir;
    const api = `${server.url}/test/api`;
    const requests = Array.from({ length: 40 }, (_, i) => post(api, { i }));
    await server.waitFor((r) => r.msg === "request" && r.status === 200);
    server.kill("SIGTERM");
    const answers = await Promise.all(requests);
    assert.deepEqual(answers.map((r) => r.status), Array(40).fill(200), "drained, not refused");
    assert.deepEqual(await Promise.all(answers.map((r) => r.json())), [...Array(40).keys()]);
    const status = await server.status;
    assert.equal(status.code, 0);
    const stopped = await server.waitFor((r) => r.msg === "stopped");
    assert.equal(stopped.drained, true);
  }
  await assertNoWorkersLeft(stateDir);
});

Deno.test("SIGTERM past --drain-timeout: the stuck request is answered, the worker killed, exit 0", async () => {
  let stateDir = "";
  {
    await using project = await makeProject({
      "inference.py": `import signal, time

def init(metadata):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

def predict(sample, metadata):
    print("predicting", sample["i"])
    time.sleep(3600)
`,
    });
    await using server = await startServer(project.path, { args: ["--drain-timeout=500ms"] });
    stateDir = server.stateDir;
    const api = `${server.url}/test/api`;
    // One at a time: sent together, either may reach the replica first.
    const stuck = post(api, { i: 0 });
    await server.waitFor((r) => r.msg === "predicting 0");
    const queued = post(api, { i: 1 });
    await eventually("the second request to wait in the queue", async () => {
      const metrics = await scrape(`${server.url}/metrics`);
      return valueOf(metrics, "cortex_serve_queue_depth", { api: "api" }) === 1;
    }, 10_000);
    server.kill("SIGTERM");
    const [first, second] = await Promise.all([stuck, queued]);
    assert.equal(first.status, 502);
    assert.match(
      (await first.json()).error,
      /The server stopped the worker of api api before the request finished/,
    );
    assert.equal(second.status, 503);
    assert.match((await second.json()).error, /shut down before this request ran/);
    assert.equal((await server.status).code, 0);
    const stopped = await server.waitFor((r) => r.msg === "stopped");
    assert.equal(stopped.drained, false);
  }
  await assertNoWorkersLeft(stateDir);
});

Deno.test("a server killed with SIGKILL leaves no worker: idle, sleeping, or holding the GIL in C", async () => {
  await using project = await makeProject({
    "cortex.yaml": singleApiConfig("  compute:\n    min_replicas: 3\n"),
    "inference.py": `import ctypes, time

def predict(sample, metadata):
    print("entered", sample["mode"])
    if sample["mode"] == "sleep":
        time.sleep(3600)
    # PyDLL keeps the GIL during the call: no Python thread can run.
    ctypes.PyDLL(None).sleep(3600)
`,
  });
  await using server = await startServer(project.path, { replicas: 3 });
  const workers = await processesMatching(join(server.stateDir, "worker.py"));
  assert.equal(workers.length, 3);
  const api = `${server.url}/test/api`;
  const pending = [post(api, { mode: "sleep" }), post(api, { mode: "gil" })]
    .map((request) => request.then(() => "answered", () => "connection lost"));
  await server.waitFor((r) => r.msg === "entered sleep");
  await server.waitFor((r) => r.msg === "entered gil");
  await delay(100);
  server.kill("SIGKILL");
  await server.status;
  assert.deepEqual(await Promise.all(pending), ["connection lost", "connection lost"]);
  await assertNoWorkersLeft(server.stateDir, 3000);
});

Deno.test("SIGTERM during startup stops the setup step it interrupts and exits 0", async () => {
  await using project = await makeProject({
    "inference.py": "def predict(sample, metadata):\n    return 1\n",
    "dependencies.sh": "echo setup-started\nexec sleep 61.2345\n",
  });
  await using state = await tempDir("cortex-serve-state-");
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      ...CLI,
      "serve",
      project.path,
      "--port=0",
      `--state-dir=${state.path}`,
      `--python=${PYTHON}`,
      "--log-format=json",
      "--run-dependencies-sh",
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  const setupStarted = Promise.withResolvers<void>();
  const reading = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of child.stderr) {
      lines.push(...decoder.decode(chunk).split("\n"));
      if (lines.some((l) => l.includes("setup-started"))) setupStarted.resolve();
    }
  })();
  await using _ = {
    [Symbol.asyncDispose]: async () => {
      try {
        child.kill("SIGKILL");
      } catch {
        // Exited already: the usual case.
      }
      await child.status;
    },
  };
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    setupStarted.promise,
    new Promise((_, reject) => timer = setTimeout(() => reject(new Error(lines.join("\n"))), 20_000)),
  ]).finally(() => clearTimeout(timer));
  // No event tells when `exec sleep` replaced the shell: look for it, a bounded number of times.
  for (let i = 0; i < 100 && (await processesMatching("61.2345")).length === 0; i++) await delay(20);
  assert.equal((await processesMatching("61.2345")).length, 1, "dependencies.sh is running");

  child.kill("SIGTERM");
  const status = await child.status;
  await reading;
  assert.equal(status.code, 0, lines.join("\n"));
  assert.ok(lines.some((l) => l.includes("stopped during startup")), lines.join("\n"));
  for (let i = 0; i < 50 && (await processesMatching("61.2345")).length > 0; i++) await delay(50);
  assert.deepEqual(await processesMatching("61.2345"), []);
});
