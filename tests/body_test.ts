/**
 * Reading request bodies in-process (src/http/body.ts, src/http/body_watch.ts)
 * and cutting untrusted text (src/log/cut_text.ts): bodies fed in chunks of
 * every size, stalls, failures and the budget of reads in one go, with a body
 * timeout of a few milliseconds.
 */
import assert from "node:assert/strict";
import { ApiError } from "../src/errors/api_error.ts";
import { DIRECT_READ_BUDGET, DirectReads, readBody } from "../src/http/body.ts";
import { BodyWatch } from "../src/http/body_watch.ts";
import { cutText } from "../src/log/cut_text.ts";
import { parseServeArgs, type ServeOptions } from "../src/cli/serve_options.ts";

/** A request whose body is `chunks`, then (unless `end` is false) its end, or an error. */
function request(
  chunks: readonly Uint8Array[],
  options: { declared?: number | undefined; end?: "close" | "stall" | "error" } = {},
): Request {
  let i = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (i < chunks.length) return controller.enqueue(chunks[i++]!);
      if (options.end === "error") return controller.error(new Error("connection reset"));
      if (options.end === "stall") return new Promise(() => {}); // never another byte
      controller.close();
    },
  });
  const headers = options.declared === undefined ? {} : { "content-length": String(options.declared) };
  return new Request("http://localhost/api", { method: "POST", body, headers });
}

function limits(maxBytes: number, timeoutMs = 60_000) {
  return { maxBytes, watch: new BodyWatch(timeoutMs), direct: new DirectReads() };
}

/** `bytes` cut into pieces of the sizes in `sizes`, cycling. */
function pieces(bytes: Uint8Array, sizes: readonly number[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let at = 0, i = 0; at < bytes.length; i++) {
    const size = sizes[i % sizes.length]!;
    out.push(bytes.slice(at, at + size));
    at += size;
  }
  return out;
}

/**
 * Runs `fn` with the event loop kept alive: the body watch's timer does not
 * (in the server, the open connections do), and a stalled in-memory body
 * holds nothing else.
 */
async function keptAlive<T>(fn: () => Promise<T>): Promise<T> {
  const timer = setInterval(() => {}, 1000);
  try {
    return await fn();
  } finally {
    clearInterval(timer);
  }
}

async function rejection(promise: Promise<unknown>): Promise<ApiError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof ApiError, String(error));
    return error;
  }
  throw new Error("did not reject");
}

Deno.test("a body arrives whole whatever its chunks, direct or streamed, declared or not", async () => {
  const bytes = new Uint8Array(300_000).map((_, i) => i * 7);
  for (const declared of [undefined, bytes.length]) {
    for (const sizes of [[1, 2, 3, 5000], [65536], [300_000], [70_000, 1]]) {
      const body = await readBody(request(pieces(bytes, sizes), { declared }), limits(1 << 20));
      assert.deepEqual(body, bytes, `declared ${declared}, chunks ${sizes}`);
    }
  }
  const small = new TextEncoder().encode('{"x": 1}');
  assert.deepEqual(await readBody(request([small], { declared: small.length }), limits(100)), small);
});

Deno.test("over --max-body: refused on the declared length, or as soon as the stream passes it", async () => {
  let pulled = false;
  const declared = new Request("http://localhost/api", {
    method: "POST",
    headers: { "content-length": "1001" },
    body: new ReadableStream({ pull: () => void (pulled = true) }, { highWaterMark: 0 }),
  });
  assert.equal((await rejection(readBody(declared, limits(1000)))).code, "PAYLOAD_TOO_LARGE");
  assert.equal(pulled, false, "the body was read");

  const chunked = request(pieces(new Uint8Array(5000), [600]), { end: "stall" });
  assert.equal((await rejection(readBody(chunked, limits(1000)))).code, "PAYLOAD_TOO_LARGE");
});

Deno.test("a body that stalls is given up after --body-timeout; one that keeps coming is not", async () => {
  for (const declared of [undefined, 100, 5 * 1024 * 1024]) {
    const stalled = request([new Uint8Array(10)], { declared, end: "stall" });
    const started = performance.now();
    const error = await keptAlive(() => rejection(readBody(stalled, limits(10 << 20, 50))));
    assert.equal(error.code, "BODY_TIMEOUT");
    assert.equal(error.status, 408);
    assert.equal(error.headers.connection, "close");
    const waited = performance.now() - started;
    assert.ok(waited >= 45 && waited < 1000, `gave up after ${waited} ms (declared ${declared})`);
  }
  // 20 chunks 10 ms apart: 200 ms in all, never 50 ms idle.
  let sent = 0;
  const slow = new Request("http://localhost/api", {
    method: "POST",
    body: new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (sent++ === 20) return controller.close();
        await new Promise((resolve) => setTimeout(resolve, 10));
        controller.enqueue(new Uint8Array([0x20]));
      },
    }),
  });
  assert.equal((await readBody(slow, limits(1000, 50))).length, 20);
});

Deno.test("a client gone mid-body is BODY_INCOMPLETE (499), not a server error", async () => {
  for (const declared of [undefined, 100, 5 * 1024 * 1024]) {
    const error = await rejection(
      readBody(request([new Uint8Array(10)], { declared, end: "error" }), limits(10 << 20)),
    );
    assert.equal(error.code, "BODY_INCOMPLETE");
    assert.equal(error.status, 499);
  }
});

Deno.test("reads in one go stay within their budget of declared bytes; the rest are streamed", async () => {
  const shared = limits(32 << 20, 20);
  const reads = Array.from(
    { length: 20 },
    () => readBody(request([], { declared: 1 << 20, end: "stall" }), shared),
  );
  // 16 reads of 1 MiB fill the budget; the other 4 are streamed.
  assert.equal(shared.direct.bytes, DIRECT_READ_BUDGET);
  assert.equal(shared.watch.reading, 20);
  const errors = await keptAlive(() => Promise.all(reads.map(rejection)));
  assert.deepEqual(new Set(errors.map((e) => e.code)), new Set(["BODY_TIMEOUT"]));
  assert.equal(shared.watch.reading, 0);
});

Deno.test("cutText keeps short text and cuts long text saying how much was left out", () => {
  assert.equal(cutText("abc", 3), "abc");
  assert.equal(cutText("abcdef", 3), "abc... (3 more characters)");
  assert.equal(cutText("x".repeat(10_000), 4096), `${"x".repeat(4096)}... (5904 more characters)`);
  // A surrogate pair is never split.
  assert.equal(cutText("ab😀cd", 3), "ab... (4 more characters)");
});

Deno.test("--body-timeout: a duration, 30 s by default, more than 0", () => {
  const parse = (...args: string[]) => parseServeArgs(["."].concat(args)) as ServeOptions;
  assert.equal(parse().bodyTimeoutMs, 30_000);
  assert.equal(parse("--body-timeout=2m").bodyTimeoutMs, 120_000);
  assert.equal(parse("--body-timeout", "500ms").bodyTimeoutMs, 500);
  assert.throws(() => parse("--body-timeout=0"), /--body-timeout: "0" must be more than 0/);
  assert.throws(() => parse("--body-timeout=soon"), /--body-timeout: "soon" is not a duration/);
});
