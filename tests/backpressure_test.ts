/**
 * Backpressure through a real server: queue wait counts against the
 * request's deadline, and a client that leaves while queued costs nothing.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { delay, makeProject, post, startServer } from "./_helpers.ts";

/**
 * predict records each sample's `id` in a file next to the staged project,
 * then sleeps; with `mask` it blocks the cancellation signal first, like code
 * stuck in C that a cancel cannot stop.
 */
const RECORDING = `import os, signal, time
LOG = os.path.join(os.environ["CORTEX_PROJECT_DIR"], "..", "ran.log")

def predict(sample, metadata):
    with open(LOG, "a") as f:
        f.write(sample["id"] + "\\n")
    if sample.get("mask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
    time.sleep(sample.get("sleep", 0))
    return sample["id"]
`;

async function ran(stateDir: string): Promise<string[]> {
  const ids: string[] = [];
  for await (const entry of Deno.readDir(join(stateDir, "projects"))) {
    const text = await Deno.readTextFile(join(stateDir, "projects", entry.name, "ran.log")).catch(() => "");
    ids.push(...text.split("\n").filter(Boolean));
  }
  return ids;
}

Deno.test("queue wait counts against --predict-timeout: a request that never got a replica gets 504", async () => {
  await using project = await makeProject({ "inference.py": RECORDING });
  await using server = await startServer(project.path, { args: ["--predict-timeout=1s"] });
  const api = `${server.url}/test/api`;
  const started = performance.now();
  const running = post(api, { id: "slow", sleep: 3, mask: true });
  await delay(100);
  const queued = await post(api, { id: "queued" });
  const waited = performance.now() - started;
  assert.equal(queued.status, 504);
  assert.match((await queued.json()).error, /waited 1 s \(--predict-timeout\) without a free replica/);
  assert.ok(waited >= 900 && waited < 2500, `answered after ${waited} ms`);
  const slow = await running;
  assert.equal(slow.status, 504);
  assert.match((await slow.json()).error, /did not finish within --predict-timeout/);
  assert.deepEqual(await ran(server.stateDir), ["slow"], "the queued request never reached predict");
});

Deno.test("a client that disconnects while queued is dropped and its prediction is not run", async () => {
  await using project = await makeProject({ "inference.py": RECORDING });
  await using server = await startServer(project.path, { args: ["--log-level=debug"] });
  const api = `${server.url}/test/api`;
  const first = post(api, { id: "first", sleep: 1 });
  await delay(100);
  const gone = new AbortController();
  const abandoned = fetch(api, {
    method: "POST",
    body: JSON.stringify({ id: "abandoned" }),
    signal: gone.signal,
  })
    .catch((error: unknown) => error);
  await delay(200);
  gone.abort();
  assert.ok((await abandoned) instanceof Error);
  await server.waitFor((r) => r.msg === "client went away while queued");
  const index = await (await fetch(`${server.url}/`)).json();
  assert.equal(index.apis[0].queue, 0, "the abandoned request left the queue at once");

  assert.equal(await (await first).json(), "first");
  assert.equal(await (await post(api, { id: "after" })).json(), "after");
  assert.deepEqual(await ran(server.stateDir), ["first", "after"]);
});
