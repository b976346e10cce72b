/**
 * Streamed answers and cancellation through a real server (README,
 * "Streaming and cancellation"): both formats, time to first item, errors
 * and crashes mid-stream, clients that go away, code stuck in C, timeouts,
 * and a slow reader.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  delay,
  type LogRecord,
  makeProject,
  post,
  ROOT,
  type ServerProcess,
  startServer,
} from "./_helpers.ts";
import { parsePrometheus } from "./_prometheus.ts";
import { runCli } from "./_cli.ts";

const FIXTURE = join(ROOT, "tests", "fixtures", "stream", "inference.py");

async function serveFixture(args: readonly string[] = []) {
  const project = await makeProject({ "inference.py": await Deno.readTextFile(FIXTURE) });
  const server = await startServer(project.path, { args });
  return {
    server,
    async [Symbol.asyncDispose]() {
      await server[Symbol.asyncDispose]();
      await project[Symbol.asyncDispose]();
    },
  };
}

/** Reads a streamed body, noting when each chunk arrived (ms since `started`). */
async function readTimed(
  res: Response,
  started: number,
): Promise<{ text: string; firstMs: number; lastMs: number }> {
  const decoder = new TextDecoder();
  let text = "";
  let firstMs = -1;
  let lastMs = -1;
  for await (const chunk of res.body!) {
    const now = performance.now() - started;
    if (firstMs < 0) firstMs = now;
    lastMs = now;
    text += decoder.decode(chunk, { stream: true });
  }
  return { text, firstMs, lastMs };
}

/** The pid of the replica's worker, asked through a prediction. */
async function workerPid(server: ServerProcess): Promise<number> {
  const res = await post(`${server.url}/test/api`, { mode: "pid" });
  assert.equal(res.status, 200);
  return (await res.json()).pid;
}

const requestLog = (status: number) => (r: LogRecord) => r.msg === "request" && r.status === status;

Deno.test("NDJSON by default: one JSON value per line, the first long before the last", async () => {
  await using s = await serveFixture();
  const started = performance.now();
  const res = await post(`${s.server.url}/test/api`, { n: 8, delay: 0.15 });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "application/x-ndjson");
  const { text, firstMs, lastMs } = await readTimed(res, started);
  const lines = text.trimEnd().split("\n").map((line) => JSON.parse(line));
  assert.deepEqual(lines, Array.from({ length: 8 }, (_, i) => ({ i, token: `t${i}` })));
  // Time to first byte: the first item does not wait for the generator to finish (8 × 150 ms).
  assert.ok(lastMs - firstMs >= 800, `first ${firstMs} ms, last ${lastMs} ms`);
  assert.ok(firstMs < lastMs / 2, `first ${firstMs} ms, last ${lastMs} ms`);
  const logged = await s.server.waitFor((r) => r.msg === "request" && r.stream_items === 8);
  assert.equal(logged.status, 200);
});

Deno.test("SSE with Accept: text/event-stream: data events, then event: done", async () => {
  await using s = await serveFixture();
  const res = await post(`${s.server.url}/test/api`, { n: 3 }, { accept: "text/event-stream" });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "text/event-stream; charset=utf-8");
  assert.equal(res.headers.get("cache-control"), "no-cache");
  assert.equal(
    await res.text(),
    'data: {"i":0,"token":"t0"}\n\ndata: {"i":1,"token":"t1"}\n\ndata: {"i":2,"token":"t2"}\n\n' +
      'event: done\ndata: {"items":3}\n\n',
  );
});

Deno.test("an exception mid-stream ends it with an error event or line and is logged", async () => {
  await using s = await serveFixture();
  const ndjson = await post(`${s.server.url}/test/api`, { n: 5, fail_at: 2 });
  const lines = (await ndjson.text()).trimEnd().split("\n").map((line) => JSON.parse(line));
  assert.equal(lines.length, 3);
  assert.deepEqual(lines[1], { i: 1, token: "t1" });
  assert.equal(lines[2].error, "ValueError: token 2 is unlucky");
  assert.equal(lines[2].api, "api");
  const sse = await post(`${s.server.url}/test/api`, { n: 5, fail_at: 1 }, { accept: "text/event-stream" });
  const text = await sse.text();
  assert.match(
    text,
    /^data: \{"i":0,"token":"t0"\}\n\nevent: error\ndata: \{"error":"ValueError: token 1 is unlucky"/,
  );
  assert.ok(text.endsWith("}\n\n") && !text.includes("event: done"));
  await s.server.waitFor((r) => r.msg === "request failed" && r.error === "ValueError: token 1 is unlucky");
  await s.server.waitFor((r) => r.msg === "request" && r.stream_error === "ValueError: token 2 is unlucky");
  const cli = await runCli(["predict", "api", "-", "--stream", `--url=${s.server.url}`], {
    stdin: JSON.stringify({ n: 5, fail_at: 2 }),
  });
  assert.equal(cli.code, 1);
  assert.equal(cli.stdout, '{"i":0,"token":"t0"}\n{"i":1,"token":"t1"}\n');
  assert.equal(cli.stderr, "error: ValueError: token 2 is unlucky\n");
  // Before the first item nothing was sent yet: a plain 500, as for any raise.
  const before = await post(`${s.server.url}/test/api`, { n: 5, fail_at: 0 });
  assert.equal(before.status, 500);
  assert.equal(before.headers.get("content-type"), "application/json");
  assert.equal((await before.json()).error, "ValueError: token 0 is unlucky");
  // The replica is fine: no restart.
  await workerPid(s.server);
  assert.ok(!s.server.lines.some((line) => line.includes("worker stopped; restarting")));
});

Deno.test("a crash mid-stream ends it with an error line and the replica restarts", async () => {
  await using s = await serveFixture();
  const pid = await workerPid(s.server);
  const res = await post(`${s.server.url}/test/api`, { n: 5, crash_at: 2 });
  const lines = (await res.text()).trimEnd().split("\n").map((line) => JSON.parse(line));
  assert.equal(lines.length, 3);
  assert.match(lines[2].error, /stopped during the request \(worker exited with code 7\); it is restarting/);
  await s.server.waitFor((r) => r.msg === "worker stopped; restarting");
  await s.server.waitFor((r) => r.msg === "worker ready" && r.pid !== pid);
  assert.notEqual(await workerPid(s.server), pid);
});

/** Starts a request, reads `items` lines (0: waits `waitMs` for no answer), then drops the connection. */
async function disconnectAfter(url: string, sample: unknown, items: number, waitMs = 0): Promise<void> {
  const controller = new AbortController();
  const answered = fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(sample),
    signal: controller.signal,
  });
  answered.catch(() => {});
  if (items > 0) {
    const reader = (await answered).body!.getReader();
    let text = "";
    while (text.split("\n").length <= items) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
  }
  await delay(waitMs);
  controller.abort();
}

Deno.test("a client that leaves mid-stream cancels it; the replica serves the next request within 1 s", async () => {
  await using s = await serveFixture();
  const pid = await workerPid(s.server);
  await disconnectAfter(`${s.server.url}/test/api`, { n: 1000, delay: 0.05 }, 2);
  const gone = performance.now();
  await s.server.waitFor((r) => r.msg === "request cancelled" && r.reason === "client closed the connection");
  await s.server.waitFor(requestLog(499));
  await s.server.waitFor((r) => r.msg === "generator closed" || String(r.msg).includes("generator closed"));
  assert.equal(await workerPid(s.server), pid);
  assert.ok(performance.now() - gone < 1000, `${performance.now() - gone} ms`);
  const metrics = parsePrometheus(await (await fetch(`${s.server.url}/metrics`)).text());
  const cancelled = metrics.samples.find((m) =>
    m.name === "cortex_serve_cancelled_total" && m.labels.reason === "client"
  );
  assert.equal(cancelled?.value, 1);
});

Deno.test("a client that leaves during a long predict cancels it: finally runs, no restart", async () => {
  await using s = await serveFixture();
  const pid = await workerPid(s.server);
  await disconnectAfter(`${s.server.url}/test/api`, { mode: "sleep", seconds: 30 }, 0, 300);
  const gone = performance.now();
  await s.server.waitFor((r) => r.msg === "request cancelled");
  await s.server.waitFor((r) => String(r.msg).includes("finally ran"));
  assert.equal(await workerPid(s.server), pid);
  assert.ok(performance.now() - gone < 1000, `${performance.now() - gone} ms`);
  await s.server.waitFor(requestLog(499));
  assert.ok(!s.server.lines.some((line) => line.includes("worker stopped; restarting")));
});

Deno.test("code stuck in C is killed after --cancel-grace and the replica restarts", async () => {
  await using s = await serveFixture(["--cancel-grace=700ms"]);
  const pid = await workerPid(s.server);
  await disconnectAfter(`${s.server.url}/test/api`, { mode: "stuck" }, 0, 300);
  const cancelled = await s.server.waitFor((r) => r.msg === "request cancelled");
  const killed = await s.server.waitFor((r) =>
    r.msg === "predict did not stop within --cancel-grace: restarting the worker"
  );
  const graceMs = Date.parse(String(killed.time)) - Date.parse(String(cancelled.time));
  assert.ok(graceMs >= 600, `killed ${graceMs} ms after the cancel`);
  await s.server.waitFor((r) => r.msg === "worker ready" && r.pid !== pid);
  assert.notEqual(await workerPid(s.server), pid);
});

Deno.test("--predict-timeout in Python code cancels the request: 504, no restart", async () => {
  await using s = await serveFixture(["--predict-timeout=1s"]);
  const pid = await workerPid(s.server);
  const res = await post(`${s.server.url}/test/api`, { mode: "sleep", seconds: 30 });
  assert.equal(res.status, 504);
  assert.match((await res.json()).error, /did not finish within --predict-timeout; it was cancelled/);
  await s.server.waitFor((r) => r.msg === "request cancelled" && r.reason === "--predict-timeout passed");
  await s.server.waitFor((r) => String(r.msg).includes("finally ran"));
  assert.equal(await workerPid(s.server), pid);
  assert.ok(!s.server.lines.some((line) => line.includes("worker stopped; restarting")));
  const metrics = parsePrometheus(await (await fetch(`${s.server.url}/metrics`)).text());
  const timeouts = metrics.samples.find((m) =>
    m.name === "cortex_serve_cancelled_total" && m.labels.reason === "timeout"
  );
  assert.equal(timeouts?.value, 1);
});

Deno.test("a slow reader holds the generator: what is produced ahead stays bounded", async () => {
  await using s = await serveFixture();
  const size = 64 * 1024;
  const total = 400; // 25 MiB in all
  const res = await post(`${s.server.url}/test/api`, { n: total, size, report: true });
  const reader = res.body!.getReader();
  await reader.read();
  await delay(1500); // the client reads nothing meanwhile
  const produced = () =>
    Math.max(
      0,
      ...s.server.lines.map((line) => /produced (\d+)/.exec(line)).map((m) => m ? Number(m[1]) : 0),
    );
  const ahead = produced();
  // The window (8) plus what the sockets hold: far below the whole stream.
  assert.ok(ahead < 160, `produced ${ahead} of ${total} items while the client did not read`);
  let bytes = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    bytes += value.byteLength;
  }
  assert.ok(bytes > (total - 2) * size, `read ${bytes} bytes`);
  await s.server.waitFor((r) => String(r.msg).includes(`produced ${total}`));
});

Deno.test("the text-generator example streams the same words for the same seed; predict --stream prints them", async () => {
  await using server = await startServer(join(ROOT, "examples", "text-generator"));
  const url = `${server.url}/text/generator`;
  const sample = { prompt: "the lighthouse", max_tokens: 12, seed: 7, delay: 0 };
  const first = await (await post(url, sample)).text();
  const second = await (await post(url, sample)).text();
  const tokens = first.trimEnd().split("\n").map((line) => JSON.parse(line));
  assert.equal(tokens.length, 12);
  assert.deepEqual(tokens.map((t) => t.index), [...Array(12).keys()]);
  assert.ok(tokens.every((t) => typeof t.token === "string" && t.token.length > 0));
  assert.equal(second, first);
  const cli = await runCli(["predict", "generator", "examples/text-generator/sample.json", "--stream"], {
    env: { CORTEX_SERVE_URL: server.url },
  });
  assert.equal(cli.code, 0, cli.stderr);
  const printed = cli.stdout.trimEnd().split("\n").map((line) => JSON.parse(line));
  assert.equal(printed.length, 24);
  assert.deepEqual(printed[0], { index: 0, token: printed[0].token });
  const failed = await runCli(["predict", "gen", "-", "--stream"], {
    env: { CORTEX_SERVE_URL: server.url },
    stdin: '{"max_tokens": 0}',
  });
  assert.equal(failed.code, 1);
  assert.equal(failed.stderr, "error: ValueError: max_tokens must be between 1 and 500, got 0\n");
});
