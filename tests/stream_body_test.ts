/** The streamed HTTP body in-process: format choice, framing, errors, a client that leaves. */
import assert from "node:assert/strict";
import { ApiError } from "../src/errors/api_error.ts";
import { type StreamEnd, streamFormat, streamResponse } from "../src/http/stream_body.ts";

const encoder = new TextEncoder();
const FIELDS = { api: "gen", requestId: "r1", debug: false };

async function* items(values: unknown[], error?: Error): AsyncGenerator<Uint8Array> {
  for (const value of values) yield encoder.encode(JSON.stringify(value));
  if (error) throw error;
}

Deno.test("streamFormat: SSE only when text/event-stream is accepted", () => {
  assert.equal(streamFormat("text/event-stream"), "sse");
  assert.equal(streamFormat("application/json, text/event-stream;q=0.9"), "sse");
  assert.equal(streamFormat("TEXT/EVENT-STREAM"), "sse");
  assert.equal(streamFormat(undefined), "ndjson");
  assert.equal(streamFormat("*/*"), "ndjson");
  assert.equal(streamFormat("application/x-ndjson"), "ndjson");
  assert.equal(streamFormat("text/event-streamer"), "ndjson");
});

Deno.test("streamResponse: NDJSON lines; an error becomes the last line and is reported once", async () => {
  const ends: StreamEnd[] = [];
  const failure = new ApiError("PREDICT_FAILED", "ValueError: boom", { detail: "Traceback ..." });
  const res = streamResponse(items([1, { a: "x" }], failure), "ndjson", FIELDS, (end) => ends.push(end));
  assert.equal(res.headers.get("content-type"), "application/x-ndjson");
  assert.equal(
    await res.text(),
    '1\n{"a":"x"}\n{"error":"ValueError: boom","api":"gen","request_id":"r1"}\n',
  );
  assert.deepEqual(ends, [{ status: 200, items: 2, error: failure }]);
});

Deno.test("streamResponse: SSE events, done with the count; with --debug the error carries the traceback", async () => {
  const done: StreamEnd[] = [];
  const sse = streamResponse(items(["a", "b"]), "sse", FIELDS, (end) => done.push(end));
  assert.equal(await sse.text(), 'data: "a"\n\ndata: "b"\n\nevent: done\ndata: {"items":2}\n\n');
  assert.deepEqual(done, [{ status: 200, items: 2, error: undefined }]);
  const failure = new ApiError("PREDICT_FAILED", "E", { detail: "TB" });
  const debug = streamResponse(items([], failure), "sse", { ...FIELDS, debug: true }, () => {});
  assert.equal(
    await debug.text(),
    'event: error\ndata: {"error":"E","api":"gen","request_id":"r1","traceback":"TB"}\n\n',
  );
});

Deno.test("streamResponse: a client that leaves ends the stream as 499 and stops the source", async () => {
  let stopped = false;
  async function* endless(): AsyncGenerator<Uint8Array> {
    try {
      for (let i = 0;; i++) yield encoder.encode(String(i));
    } finally {
      stopped = true;
    }
  }
  const ends: StreamEnd[] = [];
  const res = streamResponse(endless(), "ndjson", FIELDS, (end) => ends.push(end));
  const reader = res.body!.getReader();
  assert.equal(new TextDecoder().decode((await reader.read()).value), "0\n");
  await reader.cancel();
  assert.equal(stopped, true);
  assert.deepEqual(ends, [{ status: 499, items: 1, error: undefined }]);
});
