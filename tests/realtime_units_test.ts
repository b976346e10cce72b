/**
 * The pieces of the Cortex 0.17+ path that need no worker: the request and
 * answer envelopes byte for byte, the splitter's choice by weight, the
 * `get` lines of a splitter, and the request meta the route builds.
 */
import assert from "node:assert/strict";
import { decode, encode } from "@msgpack/msgpack";
import { decodeAnswer, encodeRequest } from "../src/python/envelope.ts";
import { ProtocolError } from "../src/python/protocol.ts";
import { SplitRoute } from "../src/http/splitter.ts";
import { requestMeta } from "../src/http/predict.ts";
import type { PredictRoute } from "../src/http/predict.ts";
import { formatSplitters } from "../src/cli/get.ts";

Deno.test("request envelope: content type, query, headers, then the body untouched", () => {
  const body = new Uint8Array([0, 255, 1]);
  const bytes = encodeRequest({ contentType: "image/png", query: "a=1", headers: [["x-k", "v"]] }, body);
  const view = new DataView(bytes.buffer);
  assert.equal(view.getUint16(0), 9);
  assert.equal(new TextDecoder().decode(bytes.subarray(2, 11)), "image/png");
  assert.equal(view.getUint32(11), 3);
  assert.equal(new TextDecoder().decode(bytes.subarray(15, 18)), "a=1");
  const headersLength = view.getUint32(18);
  assert.deepEqual(decode(bytes.subarray(22, 22 + headersLength)), [["x-k", "v"]]);
  assert.deepEqual(bytes.subarray(22 + headersLength), body);
});

function answer(status: number, type: string, headers: [string, string][], body: number[]): Uint8Array {
  const ct = new TextEncoder().encode(type);
  const packed = headers.length === 0 ? new Uint8Array(0) : encode(headers);
  const out = new Uint8Array(4 + ct.length + 4 + packed.length + body.length);
  const view = new DataView(out.buffer);
  view.setUint16(0, status);
  view.setUint16(2, ct.length);
  out.set(ct, 4);
  view.setUint32(4 + ct.length, packed.length);
  out.set(packed, 8 + ct.length);
  out.set(body, 8 + ct.length + packed.length);
  return out;
}

Deno.test("answer envelope: status, content type, headers, body as a view", () => {
  const bytes = answer(201, "text/html", [["x-made-by", "me"]], [60, 98, 62]);
  const decoded = decodeAnswer(bytes);
  assert.equal(decoded.status, 201);
  assert.equal(decoded.contentType, "text/html");
  assert.deepEqual(decoded.headers, [["x-made-by", "me"]]);
  assert.deepEqual([...decoded.body], [60, 98, 62]);
  assert.equal(decoded.body.buffer, bytes.buffer, "not copied");
  assert.deepEqual(decodeAnswer(answer(200, "application/json", [], [])).headers, []);
});

Deno.test("answer envelope: cut short, a bad status or bad headers are protocol errors", () => {
  assert.throws(() => decodeAnswer(new Uint8Array(3)), ProtocolError);
  const whole = answer(200, "text/plain", [["a", "b"]], [1]);
  assert.throws(() => decodeAnswer(whole.subarray(0, 12)), /cut short/);
  assert.throws(() => decodeAnswer(answer(42, "text/plain", [], [])), /status 42/);
  const bad = answer(200, "x", [], []);
  const withBadHeaders = new Uint8Array([...bad.subarray(0, 5), 0, 0, 0, 2, ...encode([1])]);
  assert.throws(() => decodeAnswer(withBadHeaders), /not a list of \[name, value\]/);
});

Deno.test("splitter: each draw goes to the API whose share holds it; weight 0 never", () => {
  const route = (name: string) => ({ name }) as unknown as PredictRoute;
  const routes = new Map([["a", route("a")], ["b", route("b")], ["c", route("c")]]);
  const splitter = new SplitRoute(
    {
      name: "s",
      endpoint: "/s",
      apis: [{ api: "a", weight: 30 }, { api: "c", weight: 0 }, { api: "b", weight: 70 }],
    },
    routes,
  );
  const picked = (r: number) => (splitter.pick(r) as unknown as { name: string }).name;
  assert.equal(picked(0), "a");
  assert.equal(picked(0.2999), "a");
  assert.equal(picked(0.3), "b");
  assert.equal(picked(0.9999), "b");
  const counts = { a: 0, b: 0, c: 0 } as Record<string, number>;
  for (let i = 0; i < 1000; i++) counts[picked(i / 1000)]!++;
  assert.deepEqual(counts, { a: 300, b: 700, c: 0 });
});

Deno.test("requestMeta: the query without ? or fragment, lower-case headers, the content type", () => {
  const meta = requestMeta(
    new Request("http://h/api?x=1&y=%20#frag", {
      method: "POST",
      headers: { "Content-Type": "text/plain; charset=latin-1", "X-Thing": "T" },
    }),
  );
  assert.equal(meta.query, "x=1&y=%20");
  assert.equal(meta.contentType, "text/plain; charset=latin-1");
  assert.ok(meta.headers.some(([k, v]) => k === "x-thing" && v === "T"));
  assert.equal(requestMeta(new Request("http://h/api", { method: "POST" })).query, "");
});

Deno.test("get lists each splitter with its APIs' shares", () => {
  const text = formatSplitters([{
    name: "iris",
    endpoint: "/iris",
    status: "ready",
    apis: [{ api: "a", weight: 30, status: "ready" }, { api: "b", weight: 70, status: "starting" }],
  }], "http://127.0.0.1:8888");
  assert.equal(text, "splitter iris (ready) http://127.0.0.1:8888/iris: a 30% (ready), b 70% (starting)");
});

Deno.test("splitter: a shadow api gets a copy of its share of the requests, body and headers included", async () => {
  const seen: { api: string; body: string; type: string | null; aborted: boolean }[] = [];
  const got = Promise.withResolvers<void>();
  const route = (api: string) =>
    ({
      handle: async (request: Request) => {
        seen.push({
          api,
          body: await request.text(),
          type: request.headers.get("content-type"),
          aborted: request.signal.aborted,
        });
        if (api === "recorder") got.resolve();
        return new Response(api);
      },
    }) as unknown as PredictRoute;
  const routes = new Map([["a", route("a")], ["recorder", route("recorder")]]);
  const draws = [0.1, 0.5, 0.9, 0.5]; // shadow draw, then route draw, per request
  const splitter = new SplitRoute(
    {
      name: "s",
      endpoint: "/s",
      apis: [{ api: "a", weight: 100 }, { api: "recorder", weight: 50, shadow: true }],
    },
    routes,
    () => draws.shift()!,
  );
  const send = (body: string) =>
    splitter.handle(
      new Request("http://h/s", { method: "POST", headers: { "content-type": "text/plain" }, body }),
      "/s",
    );
  assert.equal(await (await send("one")).text(), "a");
  assert.equal(await (await send("two")).text(), "a");
  await got.promise; // the mirror runs beside the answer, and may finish after it
  const byApi = (api: string) => seen.filter((s) => s.api === api).map((s) => s.body).sort();
  assert.deepEqual(byApi("a"), ["one", "two"]);
  assert.deepEqual(byApi("recorder"), ["one"], "0.1 < 0.5 mirrors the first, 0.9 does not mirror the second");
  assert.equal(seen.find((s) => s.api === "recorder")?.type, "text/plain");
  assert.equal(seen.find((s) => s.api === "recorder")?.aborted, false, "the copy has no client signal");
});
