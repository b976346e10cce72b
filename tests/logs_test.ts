/**
 * Logs of a real server: JSON lines that parse one by one, the request log,
 * worker output tagged with api and replica, lifecycle events, the cap on a
 * huge `print`, and plain text without colour when stderr is not a terminal.
 */
import assert from "node:assert/strict";
import { CLI, type LogRecord, makeProject, post, PYTHON, startServer } from "./_helpers.ts";

const BIG = 100_000;
const INFERENCE = `import os, sys
print("x" * ${BIG})
print("hello from the global scope")

def predict(sample, metadata):
    if sample.get("crash"):
        os._exit(3)
    print("predicting", sample)
    return 1
`;

function records(lines: readonly string[]): LogRecord[] {
  return lines.map((line, i) => {
    try {
      return JSON.parse(line) as LogRecord;
    } catch {
      throw new Error(`log line ${i + 1} is not JSON: ${line.slice(0, 200)}`);
    }
  });
}

Deno.test("JSON logs: every line parses; request, worker and lifecycle events", async (t) => {
  await using project = await makeProject({ "inference.py": INFERENCE });
  await using server = await startServer(project.path);

  const res = await post(`${server.url}/test/api`, { n: 1 }, { "x-request-id": "log-test-1" });
  assert.equal(res.status, 200);
  await res.body?.cancel();
  const request = await server.waitFor((r) => r.msg === "request" && r.request_id === "log-test-1");

  await t.step("the request log has time, request id, api, status, latency and queue wait", () => {
    assert.match(String(request.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.equal(request.level, "info");
    assert.equal(request.api, "api");
    assert.equal(request.method, "POST");
    assert.equal(request.path, "/test/api");
    assert.equal(request.status, 200);
    assert.equal(typeof request.latency_ms, "number");
    assert.equal(typeof request.queue_ms, "number");
    assert.ok((request.queue_ms as number) <= (request.latency_ms as number));
  });

  await t.step("worker output arrives line by line, tagged with api and replica", async () => {
    const line = await server.waitFor((r) => r.msg === "predicting {'n': 1}");
    assert.deepEqual([line.api, line.replica, line.stream], ["api", 0, "python"]);
    const hello = await server.waitFor((r) => r.msg === "hello from the global scope");
    assert.equal(hello.api, "api");
  });

  await t.step("a 100 kB print is cut to one capped line", async () => {
    const big = await server.waitFor((r) => String(r.msg).startsWith("xxxx"));
    const msg = String(big.msg);
    assert.ok(msg.length < 8300, `log line of ${msg.length} characters`);
    assert.match(msg, /^x+\.\.\. \(\d+ more characters\)$/);
    const kept = msg.indexOf(".");
    assert.equal(Number(/\((\d+) more/.exec(msg)![1]) + kept, BIG);
    assert.ok(server.lines.every((line) => line.length < 9000), "some log line is over 9000 characters");
  });

  await t.step("restart and shutdown events; exit 0", async () => {
    const crashed = await post(`${server.url}/test/api`, { crash: true });
    assert.equal(crashed.status, 502);
    await crashed.body?.cancel();
    const restarting = await server.waitFor((r) => r.msg === "worker stopped; restarting");
    assert.equal(restarting.level, "warn");
    assert.equal(restarting.api, "api");
    let ready = 0;
    await server.waitFor((r) => r.msg === "worker ready" && ++ready === 2, 10_000);
    server.kill("SIGTERM");
    assert.equal((await server.status).code, 0);
    const all = records(server.lines);
    const messages = all.map((r) => r.msg);
    for (
      const event of [
        "python",
        "project staged",
        "listening",
        "worker ready",
        "api ready",
        "shutting down",
        "stopped",
      ]
    ) {
      assert.ok(messages.includes(event), `no "${event}" event in:\n${messages.join("\n")}`);
    }
    assert.ok(messages.indexOf("listening") < messages.indexOf("shutting down"));
    assert.ok(
      all.every((r) =>
        typeof r.time === "string" && typeof r.level === "string" && typeof r.msg === "string"
      ),
    );
  });
});

Deno.test("--debug keeps a 100 kB print whole", async () => {
  await using project = await makeProject({ "inference.py": INFERENCE });
  await using server = await startServer(project.path, { args: ["--debug"] });
  const big = await server.waitFor((r) => String(r.msg).startsWith("xxxx"));
  assert.equal(String(big.msg), "x".repeat(BIG));
});

Deno.test("text logs: one readable line per event, no colour when stderr is not a terminal", async () => {
  await using project = await makeProject({
    "inference.py": "def predict(sample, metadata):\n    return 1\n",
  });
  const state = await Deno.makeTempDir({ prefix: "cortex-serve-state-" });
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      ...CLI,
      "serve",
      project.path,
      "--port=0",
      `--state-dir=${state}`,
      `--python=${PYTHON}`,
    ],
    env: {},
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  try {
    const decoder = new TextDecoderStream();
    const reader = child.stderr.pipeThrough(decoder).getReader();
    let text = "";
    // Deadline: a server that never logs "api ready" is killed, ending the read.
    const deadline = setTimeout(() => child.kill("SIGKILL"), 20_000);
    while (!/ INFO {2}api ready /.test(text)) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
    clearTimeout(deadline);
    child.kill("SIGTERM");
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
    lines.push(...text.trimEnd().split("\n"));
  } finally {
    await child.status;
    await Deno.remove(state, { recursive: true });
  }
  assert.ok(lines.length > 3, lines.join("\n"));
  for (const line of lines) {
    assert.match(line, /^\d{4}-\d\d-\d\dT[\d:.]+Z (DEBUG|INFO |WARN |ERROR) \S/, line);
    assert.ok(!line.includes("\x1b["), `colour code in ${JSON.stringify(line)}`);
  }
  assert.ok(
    lines.some((line) => / INFO {2}listening url=http:\/\/127\.0\.0\.1:\d+ deployment=test$/.test(line)),
    lines.join("\n"),
  );
  assert.ok(lines.some((line) => / INFO {2}stopped drained=true$/.test(line)), lines.join("\n"));
});
