/**
 * Pipelining through a real server and real Python workers: a request sent
 * behind a running one, when the worker dies. The worker runs requests one
 * at a time in the order received, so the server knows which one was
 * running: only that one fails; one that never started runs on the next
 * worker, and one that had started (the crash was its own) never runs again.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { makeProject, post, startServer, tempDir } from "./_helpers.ts";

/**
 * Appends its name to a file (one line per call) and says it started in the
 * log, sleeps, then answers or exits, as the sample asks.
 */
const INFERENCE = `import os, time


def predict(sample, metadata):
    with open(sample["log"], "a") as calls:
        calls.write(sample["name"] + "\\n")
    print("started " + sample["name"], flush=True)
    time.sleep(sample.get("sleep", 0))
    if sample.get("exit"):
        os._exit(7)
    return sample["name"]
`;

async function calls(log: string): Promise<string[]> {
  const text = await Deno.readTextFile(log).catch(() => "");
  return text.split("\n").filter((line) => line !== "");
}

Deno.test("pipelining on a real worker: a crash fails the running request only, never the one behind it twice", async () => {
  await using project = await makeProject({ "inference.py": INFERENCE });
  await using scratch = await tempDir();
  await using server = await startServer(project.path, { args: ["--log-level=debug"] });
  const url = `${server.url}/test/api`;
  const log = join(scratch.path, "calls");
  const body = (name: string, extra: Record<string, unknown> = {}) => ({ log, name, ...extra });
  const pipelined = () => server.waitFor(isPipeline, 10_000);
  /** Resolves once the worker started request `name` (its log line). */
  const started = (name: string) => server.waitFor((r) => r.msg === `started ${name}`, 10_000);
  assert.equal((await post(url, body("warm"))).status, 200); // predictions are short: pipelining on

  // The running request crashes its worker: the one behind it never started, and runs on the next worker.
  const waitPipelined = pipelined();
  const aStarted = started("a");
  const crashing = post(url, body("a", { sleep: 0.3, exit: true }));
  await aStarted;
  const behind = post(url, body("b"));
  await waitPipelined;
  assert.equal((await crashing).status, 502);
  const second = await behind;
  assert.equal(second.status, 200);
  assert.equal(await second.json(), "b");
  assert.deepEqual(await calls(log), ["warm", "a", "b"]);

  // The running request is answered, then the one behind it crashes the worker: it was its own crash.
  // Short predictions again bring the running average (a's 300 ms is in it) under the limit.
  for (let i = 0; i < 12; i++) assert.equal((await post(url, body("warm"))).status, 200);
  await Deno.remove(log);
  const cStarted = started("c");
  const answered = post(url, body("c", { sleep: 0.3 }));
  await cStarted;
  const poison = post(url, body("d", { exit: true }));
  assert.equal((await answered).status, 200);
  assert.equal((await poison).status, 502);
  assert.equal((await post(url, body("e"))).status, 200);
  assert.deepEqual(await calls(log), ["c", "d", "e"]);
  // d was sent behind c, not queued until c was answered.
  assert.equal(server.lines.filter((line) => line.startsWith("{") && isPipeline(JSON.parse(line))).length, 2);
});

function isPipeline(record: Record<string, unknown>): boolean {
  return record.msg === "replica state" && record.event === "pipeline";
}
