/**
 * The fault matrix: one misbehaving inference file per failure mode
 * (tests/fixtures/faults/), served by a real server with real Python workers.
 * For each: the failing request gets the documented status, the next request
 * succeeds after recovery, the server never exits, and no worker outlives it.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  assertNoWorkersLeft,
  assertServerRunning,
  makeProject,
  post,
  processesMatching,
  singleApiConfig,
  startServer,
} from "./_helpers.ts";
import { fixture } from "./_faults.ts";

interface PredictFault {
  readonly fixture: string;
  readonly status: number;
  /** Matches the error message of the failing request. */
  readonly error?: RegExp;
  /** A log record the failure must produce. */
  readonly logged?: (record: Record<string, unknown>) => boolean;
  readonly args?: readonly string[];
  readonly config?: string;
  /** The replica restarts (a crash), so the server logs a restart. */
  readonly restarts: boolean;
  /**
   * Wait for the restarted worker before the next request (its short
   * --queue-timeout, the predict timeout, would not cover the restart).
   */
  readonly waitRestart?: boolean;
}

const PREDICT_FAULTS: readonly PredictFault[] = [
  {
    fixture: "raise",
    status: 500,
    error: /^ValueError: the sample asked for it$/,
    restarts: false,
  },
  {
    fixture: "exit",
    status: 502,
    error: /stopped during the request \(worker exited with code 3\); it is restarting/,
    restarts: true,
  },
  {
    fixture: "segfault",
    status: 502,
    error: /stopped during the request \(worker killed by signal SIGSEGV\)/,
    restarts: true,
  },
  {
    fixture: "grandchild",
    status: 502,
    error: /stopped during the request \(worker exited with code 4\)/,
    restarts: true,
  },
  {
    fixture: "hang",
    status: 504,
    error: /did not finish within --predict-timeout/,
    args: ["--predict-timeout=300ms", "--cancel-grace=300ms"],
    logged: (r) => r.msg === "predict did not stop within --cancel-grace: restarting the worker",
    restarts: true,
    waitRestart: true,
  },
  {
    fixture: "memory",
    status: 502,
    error: /over compute\.mem 100Mi, and was killed \(out of memory\)/,
    config: singleApiConfig("  compute:\n    mem: 100Mi\n"),
    args: ["--enforce-mem"],
    logged: (r) => r.msg === "worker over its memory cap: killing it",
    restarts: true,
  },
  {
    fixture: "stdout_fd",
    status: 200,
    logged: (r) => String(r.msg).includes("garbage on fd 1") && r.stream === "python",
    restarts: false,
  },
  {
    fixture: "stdout_sys",
    status: 200,
    logged: (r) => String(r.msg).includes("garbage on sys.stdout") && r.stream === "python",
    restarts: false,
  },
  {
    fixture: "protocol_garbage",
    status: 502,
    error: /worker broke the protocol: .*frame of unknown kind: first byte 0x67/i,
    restarts: true,
  },
  {
    fixture: "protocol_wrong_id",
    status: 502,
    error: /worker broke the protocol: worker sent "result" for request 999999, expected \d+/i,
    restarts: true,
  },
  {
    fixture: "protocol_close",
    status: 502,
    error: /worker broke the protocol: it closed its control channel but kept running/i,
    restarts: true,
  },
  {
    fixture: "protocol_oversize",
    status: 502,
    error: /worker broke the protocol: frame of 4294967295 bytes is over the maximum/i,
    restarts: true,
  },
];

for (const fault of PREDICT_FAULTS) {
  Deno.test(`fault ${fault.fixture}: the request gets ${fault.status}, the next one succeeds`, async () => {
    let stateDir = "";
    {
      await using project = await makeProject({
        "inference.py": await fixture(fault.fixture),
        "control_channel.py": await fixture("control_channel"),
        ...(fault.config === undefined ? {} : { "cortex.yaml": fault.config }),
      });
      await using server = await startServer(project.path, { args: fault.args ?? [] });
      stateDir = server.stateDir;
      const api = `${server.url}/test/api`;
      const [worker] = await processesMatching(join(stateDir, "worker.py"));
      assert.ok(worker !== undefined, "no worker process found");

      const failed = await post(api, { fail: true });
      const body = await failed.json();
      assert.equal(failed.status, fault.status, JSON.stringify(body));
      if (fault.error) {
        assert.match(body.error, fault.error);
        assert.equal(body.api, "api");
        assert.equal(body.request_id, failed.headers.get("x-request-id"));
      } else {
        assert.equal(body, "ok");
      }
      if (fault.logged) await server.waitFor(fault.logged, 5000);
      if (fault.waitRestart) {
        let ready = 0;
        await server.waitFor((r) => r.msg === "worker ready" && ++ready === 2, 10_000);
      }

      const started = Date.now();
      const next = await post(api, { fail: false });
      assert.equal(next.status, 200);
      assert.ok(Date.now() - started < 5000, `recovery took ${Date.now() - started} ms`);
      assert.equal(await next.json(), "ok");

      const workers = await processesMatching(join(stateDir, "worker.py"));
      assert.equal(workers.length, 1, `one worker expected, found ${workers}`);
      assert.equal(workers[0] === worker, !fault.restarts, "the worker restarted iff it crashed");
      if (fault.restarts) {
        const restart = await server.waitFor((r) => r.msg === "worker stopped; restarting");
        assert.match(String(restart.reason), /./);
      }
      await assertServerRunning(server);
      await assertGrandchildGone(stateDir);
    }
    await assertNoWorkersLeft(stateDir);
  });
}

/** Asserts the `sleep` the grandchild fixture started died with its worker. */
async function assertGrandchildGone(stateDir: string): Promise<void> {
  for await (const entry of Deno.readDir(join(stateDir, "projects"))) {
    const text = await Deno.readTextFile(join(stateDir, "projects", entry.name, "grandchild.pid"))
      .catch(() => "");
    if (!text) continue;
    const stat = await Deno.readTextFile(`/proc/${Number(text)}/stat`).catch(() => "");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    assert.ok(stat === "" || state === "Z", `process ${text} started by predict outlived its worker`);
  }
}

Deno.test("fault: requests queued behind a crash are served by the restarted worker", async () => {
  let stateDir = "";
  {
    await using project = await makeProject({
      "inference.py": `import os, time

def predict(sample, metadata):
    time.sleep(0.05)
    if sample.get("fail"):
        os._exit(9)
    return sample["i"]
`,
    });
    await using server = await startServer(project.path);
    stateDir = server.stateDir;
    const api = `${server.url}/test/api`;
    const crash = post(api, { fail: true, i: -1 });
    const queued = Array.from({ length: 5 }, (_, i) => post(api, { i }));
    const crashed = await crash;
    assert.equal(crashed.status, 502);
    assert.match((await crashed.json()).error, /exited with code 9/);
    const answers = await Promise.all(queued);
    assert.deepEqual(answers.map((r) => r.status), [200, 200, 200, 200, 200]);
    assert.deepEqual(await Promise.all(answers.map((r) => r.json())), [0, 1, 2, 3, 4]);
    await assertServerRunning(server);
  }
  await assertNoWorkersLeft(stateDir);
});
