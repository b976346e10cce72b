import assert from "node:assert/strict";
import { decode, encode } from "@msgpack/msgpack";
import {
  decodeMessage,
  encodeMessage,
  encodeMessageFrame,
  PROTOCOL_VERSION,
  ProtocolError,
} from "../src/python/protocol.ts";

Deno.test("server messages encode as tagged msgpack maps", () => {
  const init = {
    type: "init",
    protocol: PROTOCOL_VERSION,
    api: "classifier",
    inference: "/s/src/inference.py",
    metadata: { model: "m.npz" },
    python_root: null,
    project_dir: "/s",
    interface: "init_metadata",
    model: null,
    model_dir: null,
    stream_window: 8,
  } as const;
  assert.deepEqual(decode(encodeMessage(init)), init);
  const predict = { type: "predict", id: 7, sample: new TextEncoder().encode("{}"), debug: false } as const;
  assert.deepEqual(decode(encodeMessage(predict)), predict);
  assert.deepEqual(decode(encodeMessage({ type: "shutdown" })), { type: "shutdown" });
});

Deno.test("worker messages decode to the union", () => {
  assert.deepEqual(decodeMessage(encode({ type: "ready", protocol: 1, pid: 10, python: "3.11.2" })), {
    type: "ready",
    protocol: 1,
    pid: 10,
    python: "3.11.2",
  });
  assert.deepEqual(
    decodeMessage(encode({ type: "init_error", phase: "import", error: "E", traceback: "T", extra: 1 })),
    { type: "init_error", phase: "import", error: "E", traceback: "T" },
  );
  const prediction = new Uint8Array([34, 97, 34]);
  assert.deepEqual(decodeMessage(encode({ type: "result", id: 3, prediction })), {
    type: "result",
    id: 3,
    prediction,
  });
  assert.deepEqual(
    decodeMessage(encode({ type: "error", id: 3, kind: "predict", error: "ValueError: x", traceback: "" })),
    { type: "error", id: 3, kind: "predict", error: "ValueError: x", traceback: "" },
  );
});

Deno.test("invalid worker messages give exact protocol errors", () => {
  const cases: [unknown, string][] = [
    [[1, 2], "Worker sent a frame that is not a msgpack map"],
    [{ type: "hello" }, 'Worker sent an unknown message type: "hello"'],
    [{ type: "result", id: 1 }, 'Worker message "result" lacks "prediction"'],
    [
      { type: "result", id: "1", prediction: new Uint8Array(1) },
      'Worker message "result": "id" is not an integer',
    ],
    [{ type: "result", id: 1, prediction: "x" }, 'Worker message "result": "prediction" is not binary'],
    [
      { type: "init_error", phase: "boot", error: "", traceback: "" },
      'Worker message "init_error": unknown phase "boot"',
    ],
  ];
  for (const [value, message] of cases) {
    assert.throws(() => decodeMessage(encode(value)), (error: unknown) => {
      assert.ok(error instanceof ProtocolError);
      assert.equal(error.message, message);
      return true;
    });
  }
  assert.throws(() => decodeMessage(new Uint8Array([0xc1])), /not msgpack/);
});

Deno.test("predict frames decode to the same message as the generic encoding", () => {
  const sample = new TextEncoder().encode('{"x": [1, 2, 3]}');
  for (const [id, debug] of [[1, false], [4_294_967_297, true], [Number.MAX_SAFE_INTEGER, false]] as const) {
    const message = { type: "predict", id, sample, debug } as const;
    const frame = encodeMessageFrame(message, 1 << 20);
    const length = new DataView(frame.buffer).getUint32(0);
    assert.equal(length, frame.byteLength - 4);
    assert.deepEqual(decode(frame.subarray(4)), decode(encodeMessage(message)));
  }
  assert.throws(
    () => encodeMessageFrame({ type: "predict", id: 1, sample, debug: false }, 20),
    /over the maximum of 20 bytes/,
  );
  const shutdown = encodeMessageFrame({ type: "shutdown" }, 100);
  assert.deepEqual(decode(shutdown.subarray(4)), { type: "shutdown" });
});

Deno.test("protocol 2 server messages: predict_batch, credit and cancel", () => {
  const samples = [new TextEncoder().encode("1"), new TextEncoder().encode('{"a":2}')];
  const batch = { type: "predict_batch", ids: [4, 5], samples, debug: true } as const;
  assert.deepEqual(decode(encodeMessage(batch)), { ...batch, ids: [4, 5], samples });
  const framed = encodeMessageFrame(batch, 1 << 20);
  assert.deepEqual(decode(framed.subarray(4)), decode(encodeMessage(batch)));
  assert.deepEqual(decode(encodeMessage({ type: "credit", id: 9, n: 3 })), { type: "credit", id: 9, n: 3 });
  assert.deepEqual(decode(encodeMessage({ type: "cancel", id: 9 })), { type: "cancel", id: 9 });
});

Deno.test("protocol 2 worker messages: item, end and the cancelled error kind", () => {
  const value = new Uint8Array([123, 125]);
  assert.deepEqual(decodeMessage(encode({ type: "item", id: 2, value })), { type: "item", id: 2, value });
  assert.deepEqual(decodeMessage(encode({ type: "end", id: 2, items: 7 })), { type: "end", id: 2, items: 7 });
  assert.deepEqual(
    decodeMessage(
      encode({ type: "error", id: 2, kind: "cancelled", error: "the request was cancelled", traceback: "" }),
    ),
    { type: "error", id: 2, kind: "cancelled", error: "the request was cancelled", traceback: "" },
  );
  assert.throws(() => decodeMessage(encode({ type: "item", id: 2 })), /"item" lacks "value"/);
  assert.throws(() => decodeMessage(encode({ type: "end", id: 2, items: "x" })), /"items" is not an integer/);
});
