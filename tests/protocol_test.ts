import assert from "node:assert/strict";
import { decode, encode } from "@msgpack/msgpack";
import {
  decodeMessage,
  encodeMessageFrame,
  PROTOCOL_VERSION,
  ProtocolError,
  RAW_PREDICT,
  RAW_PREDICT_HEAD,
  RAW_RESULT,
  RAW_RESULT_HEAD,
  type ServerMessage,
} from "../src/python/protocol.ts";

/** A server message's payload: its frame without the length prefix. */
function payload(message: ServerMessage): Uint8Array {
  return encodeMessageFrame(message, 1 << 20).subarray(4);
}

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
  assert.deepEqual(decode(payload(init)), init);
  assert.deepEqual(decode(payload({ type: "shutdown" })), { type: "shutdown" });
});

/** A raw `result` payload as worker.py writes it: tag 0x02, u64 id, prediction. */
function rawResult(id: bigint, prediction: Uint8Array): Uint8Array {
  const payload = new Uint8Array(RAW_RESULT_HEAD + prediction.byteLength);
  payload[0] = RAW_RESULT;
  new DataView(payload.buffer).setBigUint64(1, id);
  payload.set(prediction, RAW_RESULT_HEAD);
  return payload;
}

/** The fields of a raw `predict` payload. */
function readRawPredict(payload: Uint8Array): { tag: number; id: bigint; flags: number; sample: Uint8Array } {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  return {
    tag: view.getUint8(0),
    id: view.getBigUint64(1),
    flags: view.getUint8(9),
    sample: payload.subarray(RAW_PREDICT_HEAD),
  };
}

Deno.test("predict goes out as one raw frame: tag, u64 id, flags, sample", () => {
  const sample = new TextEncoder().encode('{"x": [1, 2, 3]}');
  for (const [id, debug] of [[1, false], [4_294_967_297, true], [Number.MAX_SAFE_INTEGER, false]] as const) {
    const message = { type: "predict", id, sample, debug } as const;
    const frame = encodeMessageFrame(message, 1 << 20);
    assert.equal(new DataView(frame.buffer).getUint32(0), frame.byteLength - 4);
    assert.equal(frame.byteLength, 4 + 10 + sample.byteLength);
    assert.deepEqual(readRawPredict(frame.subarray(4)), {
      tag: RAW_PREDICT,
      id: BigInt(id),
      flags: debug ? 1 : 0,
      sample,
    });
  }
  assert.deepEqual(
    readRawPredict(payload({ type: "predict", id: 2, sample: new Uint8Array(), debug: true })),
    {
      tag: RAW_PREDICT,
      id: 2n,
      flags: 1,
      sample: new Uint8Array(),
    },
  );
  assert.throws(
    () => encodeMessageFrame({ type: "predict", id: 1, sample, debug: false }, 20),
    /over the maximum of 20 bytes/,
  );
  const shutdown = encodeMessageFrame({ type: "shutdown" }, 100);
  assert.deepEqual(decode(shutdown.subarray(4)), { type: "shutdown" });
});

Deno.test("a raw result decodes to the union, its prediction a view of the payload", () => {
  const prediction = new Uint8Array([34, 97, 34]);
  for (const id of [0n, 3n, 4_294_967_297n, BigInt(Number.MAX_SAFE_INTEGER)]) {
    const payload = rawResult(id, prediction);
    const message = decodeMessage(payload);
    assert.deepEqual(message, { type: "result", id: Number(id), prediction });
    assert.ok(message.type === "result" && message.prediction.buffer === payload.buffer);
  }
  assert.deepEqual(decodeMessage(rawResult(5n, new Uint8Array())), {
    type: "result",
    id: 5,
    prediction: new Uint8Array(),
  });
});

Deno.test("malformed raw frames and unknown first bytes are protocol errors naming them", () => {
  const cases: [Uint8Array, string][] = [
    [new Uint8Array([0x02, 0, 0, 0]), 'Worker sent a raw "result" frame of 4 bytes: it needs at least 9'],
    [new Uint8Array([0x02]), 'Worker sent a raw "result" frame of 1 bytes: it needs at least 9'],
    [rawResult(2n ** 53n, new Uint8Array([49])), 'Worker message "result": "id" is not a safe integer'],
    [
      new Uint8Array([0x01, 0, 0, 0, 0, 0, 0, 0, 1, 0]),
      'Worker sent a frame of unknown kind: first byte 0x01 is not the raw "result" tag 0x02 and does not start a msgpack map',
    ],
    [
      new TextEncoder().encode("garbage"),
      'Worker sent a frame of unknown kind: first byte 0x67 is not the raw "result" tag 0x02 and does not start a msgpack map',
    ],
    [new Uint8Array(), "Worker sent an empty frame"],
  ];
  for (const [payload, message] of cases) {
    assert.throws(() => decodeMessage(payload), (error: unknown) => {
      assert.ok(error instanceof ProtocolError);
      assert.equal(error.message, message);
      return true;
    });
  }
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
  assert.deepEqual(
    decodeMessage(encode({ type: "error", id: 3, kind: "predict", error: "ValueError: x", traceback: "" })),
    { type: "error", id: 3, kind: "predict", error: "ValueError: x", traceback: "" },
  );
});

Deno.test("invalid worker messages give exact protocol errors", () => {
  const cases: [unknown, string][] = [
    [{ type: "hello" }, 'Worker sent an unknown message type: "hello"'],
    // Protocol 3 sends results raw only.
    [
      { type: "result", id: 1, prediction: new Uint8Array(1) },
      'Worker sent an unknown message type: "result"',
    ],
    [{ type: "item", id: 1 }, 'Worker message "item" lacks "value"'],
    [{ type: "item", id: "1", value: new Uint8Array(1) }, 'Worker message "item": "id" is not an integer'],
    [{ type: "item", id: 1, value: "x" }, 'Worker message "item": "value" is not binary'],
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
  assert.throws(() => decodeMessage(encode([1, 2])), /unknown kind: first byte 0x92/);
  assert.throws(() => decodeMessage(new Uint8Array([0x81, 0xc1])), /not msgpack/);
});

Deno.test("protocol 2 server messages: predict_batch, credit and cancel", () => {
  const samples = [new TextEncoder().encode("1"), new TextEncoder().encode('{"a":2}')];
  const batch = { type: "predict_batch", ids: [4, 5], samples, debug: true } as const;
  assert.deepEqual(decode(payload(batch)), { ...batch, ids: [4, 5], samples });
  assert.deepEqual(decode(payload({ type: "credit", id: 9, n: 3 })), { type: "credit", id: 9, n: 3 });
  assert.deepEqual(decode(payload({ type: "cancel", id: 9 })), { type: "cancel", id: 9 });
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
