/**
 * Hostile clients at the connection level, against a real server on
 * 127.0.0.1 with real sockets: headers sent a byte at a time, idle kept-alive
 * connections, more idle connections than the open-file limit allows, and a
 * server out of file descriptors. Each test asserts when connections are
 * closed, what the metrics count, and that a normal prediction is answered
 * during the attack. A low open-file limit is set with `prlimit`, as
 * `ulimit -n` would.
 */
import assert from "node:assert/strict";
import { makeProject, processesMatching, type ServerProcess, startServer } from "./_helpers.ts";
import { type Exposition, parsePrometheus, valueOf } from "./_prometheus.ts";

const INFERENCE = `import time

def predict(sample, metadata):
    if sample.get("sleep"):
        print("predict started", flush=True)
        time.sleep(sample["sleep"])
    return sample
`;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** An answer read off a raw connection. */
interface RawAnswer {
  readonly status: number;
  readonly head: string;
  readonly body: string;
}

function hostPort(url: string): { hostname: string; port: number } {
  const { hostname, port } = new URL(url);
  return { hostname, port: Number(port) };
}

/** Writes all of `bytes`. */
async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += await conn.write(bytes.subarray(written));
}

/**
 * Sends one request with `Connection: close` on a new connection and reads
 * the answer to its end; rejects after `deadlineMs`.
 */
async function rawRequest(
  url: string,
  method: string,
  path: string,
  body = "",
  deadlineMs = 10_000,
): Promise<RawAnswer> {
  const conn = await Deno.connect(hostPort(url));
  const timer = setTimeout(() => conn.close(), deadlineMs);
  try {
    const type = body === "" ? "" : "Content-Type: application/json\r\n";
    await writeAll(
      conn,
      encoder.encode(
        `${method} ${path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n${type}` +
          `Content-Length: ${encoder.encode(body).length}\r\n\r\n${body}`,
      ),
    );
    const text = decoder.decode(await new Response(conn.readable).arrayBuffer());
    const end = text.indexOf("\r\n\r\n");
    if (end < 0) throw new Error(`${method} ${path}: no complete answer: ${JSON.stringify(text)}`);
    return { status: Number(text.slice(9, 12)), head: text.slice(0, end), body: text.slice(end + 4) };
  } finally {
    clearTimeout(timer);
  }
}

async function predict(url: string, sample: unknown = { x: 1 }): Promise<RawAnswer> {
  return await rawRequest(url, "POST", "/test/api", JSON.stringify(sample));
}

async function metrics(url: string): Promise<Exposition> {
  const answer = await rawRequest(url, "GET", "/metrics");
  assert.equal(answer.status, 200, answer.body);
  return parsePrometheus(answer.body);
}

/**
 * Resolves with the milliseconds from `since` until the server closes
 * `conn` (end of stream or reset); rejects after `deadlineMs`. Whatever the
 * server sends before is discarded.
 */
function closedBy(conn: Deno.Conn, since: number, deadlineMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      conn.close();
    }, deadlineMs);
    (async () => {
      const sink = new Uint8Array(4096);
      try {
        while (await conn.read(sink) !== null) { /* discard */ }
      } catch (error) {
        if (timedOut) return reject(new Error(`Still open after ${deadlineMs} ms`));
        if (!(error instanceof Deno.errors.ConnectionReset)) return reject(error);
      }
      clearTimeout(timer);
      if (timedOut) return reject(new Error(`Still open after ${deadlineMs} ms`));
      const ms = performance.now() - since;
      try {
        conn.close();
      } catch {
        // Closed by the deadline.
      }
      resolve(ms);
    })();
  });
}

/** Sends a request header one byte every `everyMs` until the server closes the connection. */
async function dripHeader(conn: Deno.Conn, everyMs: number): Promise<void> {
  const header = encoder.encode(`GET /healthz HTTP/1.1\r\nHost: test\r\nX-Slow: ${"a".repeat(1000)}`);
  for (const byte of header) {
    try {
      await conn.write(Uint8Array.of(byte));
    } catch {
      return; // closed by the server
    }
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/** Connections opened to `url`, `count` of them, without sending anything. */
async function openIdle(url: string, count: number): Promise<Deno.TcpConn[]> {
  const conns: Deno.TcpConn[] = [];
  for (let i = 0; i < count; i++) conns.push(await Deno.connect(hostPort(url)));
  return conns;
}

function closeAll(conns: readonly Deno.Conn[]): void {
  for (const conn of conns) {
    try {
      conn.close();
    } catch {
      // Closed by the server and read to its end.
    }
  }
}

/** The server process is running: asked of the kernel, not of a promise that may lag behind. */
async function alive(server: ServerProcess): Promise<void> {
  let state = "gone";
  try {
    const stat = await Deno.readTextFile(`/proc/${server.pid}/stat`);
    state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  } catch {
    // No such process.
  }
  assert.ok(
    state !== "gone" && state !== "Z",
    `the server exited (state ${state}):\n${server.lines.join("\n")}`,
  );
}

Deno.test("hostile connections: headers sent a byte at a time are closed at --header-timeout", async () => {
  await using project = await makeProject({ "inference.py": INFERENCE });
  await using server = await startServer(project.path, { args: ["--header-timeout=1s"] });
  const started = performance.now();
  const conns = await openIdle(server.url, 20);
  const dripping = conns.map((conn) => dripHeader(conn, 100));
  const closing = conns.map((conn) => closedBy(conn, started, 5000));
  const during = await predict(server.url, { during: "attack" });
  const times = await Promise.all(closing);
  await Promise.all(dripping);

  assert.equal(during.status, 200, during.body);
  assert.equal(JSON.parse(during.body).during, "attack");
  for (const ms of times) assert.ok(ms >= 900 && ms < 3000, `closed after ${ms} ms: ${times.join(", ")}`);
  const exposition = await metrics(server.url);
  assert.ok(valueOf(exposition, "cortex_serve_connections_closed_total", { reason: "header_timeout" }) >= 20);
  await alive(server);
});

Deno.test("hostile connections: an idle kept-alive connection is closed at --keepalive-timeout, a slow request is not", async () => {
  await using project = await makeProject({ "inference.py": INFERENCE });
  await using server = await startServer(project.path, {
    args: ["--keepalive-timeout=1s", "--header-timeout=1s"],
  });
  // A request in flight longer than both timeouts is answered.
  const slow = predict(server.url, { sleep: 1.5 });

  const conn = await Deno.connect(hostPort(server.url));
  await writeAll(conn, encoder.encode("GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n"));
  const first = new Uint8Array(4096);
  const n = await conn.read(first);
  const answered = performance.now();
  assert.match(decoder.decode(first.subarray(0, n ?? 0)), /^HTTP\/1\.1 200/);
  const ms = await closedBy(conn, answered, 5000);
  assert.ok(ms >= 900 && ms < 3000, `closed ${ms} ms after the answer`);

  const answer = await slow;
  assert.equal(answer.status, 200, answer.body);
  const exposition = await metrics(server.url);
  assert.ok(
    valueOf(exposition, "cortex_serve_connections_closed_total", { reason: "keepalive_timeout" }) >= 1,
  );
  await alive(server);
});

Deno.test("hostile connections: idle connections past a low open-file limit are evicted, predictions go on", async () => {
  await using project = await makeProject({ "inference.py": INFERENCE });
  // As with `ulimit -n 256`: the default cap is derived from the limit.
  await using server = await startServer(project.path, { wrap: ["prlimit", "--nofile=256:256", "--"] });
  const limits = await server.waitFor((r) => r.msg === "connection limits");
  assert.equal(limits.max_connections, 192);
  assert.equal(limits.open_file_limit, 256);
  const conns = await openIdle(server.url, 400);
  try {
    const during = await predict(server.url);
    assert.equal(during.status, 200, during.body);
    // Every idle connection but the youngest 192 (less those the requests took) was closed.
    const evicted = await Promise.all(conns.slice(0, 200).map((conn) => closedBy(conn, 0, 5000)));
    assert.equal(evicted.length, 200);
    const exposition = await metrics(server.url);
    assert.ok(valueOf(exposition, "cortex_serve_connections_closed_total", { reason: "evicted" }) >= 200);
    assert.ok(valueOf(exposition, "cortex_serve_connections_open") <= 192);
    assert.equal(valueOf(exposition, "cortex_serve_accept_errors_total"), 0);
    assert.equal(valueOf(exposition, "cortex_serve_connections_closed_total", { reason: "over_limit" }), 0);
    await alive(server);
  } finally {
    closeAll(conns);
  }
});

Deno.test("hostile connections: at the cap with every connection busy, a new one gets 503 and Connection: close", async () => {
  await using project = await makeProject({ "inference.py": INFERENCE });
  await using server = await startServer(project.path, { args: ["--max-connections=1"] });
  const busy = predict(server.url, { sleep: 1 });
  await server.waitFor((r) => r.msg === "predict started", 5000);
  const refused = await rawRequest(server.url, "GET", "/healthz");
  assert.equal(refused.status, 503, refused.head);
  assert.match(refused.head, /^connection: close$/im);
  assert.match(refused.head, /^retry-after: 1$/im);
  const length = Number(/^content-length: (\d+)$/im.exec(refused.head)?.[1]);
  assert.equal(refused.body, "Too many open connections: retry in a moment\n");
  assert.equal(length, refused.body.length);
  assert.equal((await busy).status, 200);
  const exposition = await metrics(server.url);
  assert.equal(valueOf(exposition, "cortex_serve_connections_closed_total", { reason: "over_limit" }), 1);
});

Deno.test("hostile connections: out of file descriptors, accept errors and a worker crash are survived", async () => {
  await using project = await makeProject({ "inference.py": INFERENCE });
  await using server = await startServer(project.path, {
    args: ["--max-connections=1000", "--header-timeout=2s"],
    wrap: ["prlimit", "--nofile=256:256", "--"],
  });
  const conns = await openIdle(server.url, 300);
  try {
    await server.waitFor((r) => r.msg?.startsWith("accepting a connection failed") === true, 10_000);
    await alive(server);
    // The worker dies while no descriptor is free: its restart waits for some, the server does not die.
    const workers = (await processesMatching(server.stateDir)).filter((pid) => pid !== server.pid);
    assert.ok(workers.length > 0);
    for (const pid of workers) Deno.kill(pid, "SIGKILL");
    await server.waitFor((r) => r.msg === "worker stopped; restarting", 5000);
    // Once the header timeout frees descriptors, a worker starts and the waiting connections are taken.
    const started = performance.now();
    await server.waitFor((r) => r.msg === "worker ready" && !workers.includes(Number(r.pid)), 15_000);
    const during = await predict(server.url);
    assert.equal(during.status, 200, during.body);
    assert.ok(performance.now() - started < 15_000);
    const exposition = await metrics(server.url);
    assert.ok(valueOf(exposition, "cortex_serve_accept_errors_total") > 1);
    assert.ok(valueOf(exposition, "cortex_serve_connections_closed_total", { reason: "header_timeout" }) > 0);
    const logged = server.lines.filter((line) => line.includes("accepting a connection failed"));
    assert.equal(logged.length, 1, logged.join("\n"));
    await alive(server);
  } finally {
    closeAll(conns);
  }
});
