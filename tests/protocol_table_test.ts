/**
 * The server's side of the protocol against the table both sides read
 * (src/python/worker/_cortex_serve_worker/protocol.json): each message the
 * server encodes carries exactly the table's fields, each message the table
 * lists for the worker decodes, and the type unions name the table's kinds.
 * tests/python/test_protocol.py holds the worker to the same table.
 */
import assert from "node:assert/strict";
import { decode, encode } from "@msgpack/msgpack";
import { HEADER_BYTES } from "../src/python/codec.ts";
import {
  decodeMessage,
  encodeMessageFrame,
  type InitPhase,
  type PredictErrorKind,
  PROTOCOL_TABLE,
  PROTOCOL_VERSION,
  ProtocolError,
  RAW_PREDICT,
  RAW_PREDICT_HEAD,
  type ServerMessage,
  type WorkerMessage,
} from "../src/python/protocol.ts";
import { STREAM_WINDOW } from "../src/python/worker_launch.ts";
import {
  FLAG_TIMINGS,
  RAW_RESULT_TIMED,
  RAW_RESULT_TIMED_HEAD,
  TimingsTracker,
} from "../src/python/worker_timings.ts";

const bytes = new TextEncoder().encode("[1]");

/** One example of each msgpack message the server sends: adding a type to the union without one fails to compile. */
const SERVER_EXAMPLES: {
  readonly [T in Exclude<ServerMessage["type"], "predict">]: ServerMessage & { type: T };
} = {
  init: {
    type: "init",
    protocol: PROTOCOL_VERSION,
    api: "a",
    inference: "/p/i.py",
    metadata: {},
    python_root: null,
    project_dir: "/p",
    interface: "init_metadata",
    model: null,
    model_dir: null,
    stream_window: STREAM_WINDOW,
    models: null,
  },
  predict_batch: {
    type: "predict_batch",
    ids: [1, 2],
    samples: [bytes, bytes],
    debug: false,
    traces: [bytes, bytes],
  },
  credit: { type: "credit", id: 1, n: 2 },
  cancel: { type: "cancel", id: 1 },
  shutdown: { type: "shutdown" },
};

/** A value of the right kind for each field a worker message has. */
const FIELD_VALUES: Readonly<Record<string, unknown>> = {
  protocol: PROTOCOL_VERSION,
  pid: 7,
  python: "3.11.2",
  phase: "import",
  error: "E",
  traceback: "T",
  id: 3,
  value: bytes,
  items: 2,
  kind: "predict",
  event: "load",
  model: "iris",
  version: "2",
  seconds: 0.25,
};

/** The union's kinds as records: a kind missing or extra here fails to compile. */
const ERROR_KINDS: Record<PredictErrorKind, true> = {
  predict: true,
  serialize: true,
  sample: true,
  out_of_memory: true,
  cancelled: true,
};
const INIT_PHASES: Record<InitPhase, true> = { protocol: true, import: true, signature: true, init: true };
const WORKER_MAP_TYPES: Record<Exclude<WorkerMessage["type"], "result">, true> = {
  ready: true,
  init_error: true,
  item: true,
  end: true,
  error: true,
  model: true,
};

const sorted = (names: Iterable<string>) => [...names].sort();

Deno.test("the server sends each message with exactly the table's fields", () => {
  assert.deepEqual(sorted(Object.keys(SERVER_EXAMPLES)), sorted(Object.keys(PROTOCOL_TABLE.server_messages)));
  for (const [type, fields] of Object.entries(PROTOCOL_TABLE.server_messages)) {
    const message = SERVER_EXAMPLES[type as keyof typeof SERVER_EXAMPLES];
    const sent = decode(encodeMessageFrame(message, 1 << 20).subarray(HEADER_BYTES)) as Record<
      string,
      unknown
    >;
    assert.deepEqual(sorted(Object.keys(sent)), sorted(["type", ...fields]), type);
  }
  // `traces` only while tracing: the key is absent otherwise.
  const { traces: _traces, ...untraced } = SERVER_EXAMPLES.predict_batch;
  const sent = decode(encodeMessageFrame(untraced, 1 << 20).subarray(HEADER_BYTES)) as Record<
    string,
    unknown
  >;
  assert.deepEqual(sorted(Object.keys(sent)), sorted(["type", "ids", "samples", "debug"]));
});

Deno.test("each worker message of the table decodes, and lacks nothing the table lists", () => {
  assert.deepEqual(
    sorted(Object.keys(WORKER_MAP_TYPES)),
    sorted(Object.keys(PROTOCOL_TABLE.worker_messages)),
  );
  for (const [type, fields] of Object.entries(PROTOCOL_TABLE.worker_messages)) {
    const message = Object.fromEntries([["type", type], ...fields.map((f) => [f, FIELD_VALUES[f]])]);
    assert.deepEqual(decodeMessage(encode(message)), message, type);
    for (const field of fields) {
      const { [field]: _dropped, ...without } = message;
      assert.throws(() => decodeMessage(encode(without)), ProtocolError, `${type} without ${field}`);
    }
  }
});

Deno.test("error kinds and init phases are the table's, no more, no fewer", () => {
  assert.deepEqual(sorted(Object.keys(ERROR_KINDS)), sorted(PROTOCOL_TABLE.error_kinds));
  assert.deepEqual(sorted(Object.keys(INIT_PHASES)), sorted(PROTOCOL_TABLE.init_phases));
  const error = { type: "error", id: 1, error: "", traceback: "" };
  for (const kind of PROTOCOL_TABLE.error_kinds) {
    assert.equal(decodeMessage(encode({ ...error, kind })).type, "error");
  }
  assert.throws(() => decodeMessage(encode({ ...error, kind: "other" })), /unknown kind "other"/);
});

Deno.test("frame layouts and the default window are the table's", () => {
  assert.equal(HEADER_BYTES, PROTOCOL_TABLE.frame_header_bytes);
  assert.equal(STREAM_WINDOW, PROTOCOL_TABLE.stream_window);
  const frame = encodeMessageFrame({ type: "predict", id: 1, sample: bytes, debug: true }, 1 << 20);
  assert.equal(frame[HEADER_BYTES], RAW_PREDICT);
  assert.equal(frame[HEADER_BYTES], PROTOCOL_TABLE.raw_predict);
  assert.equal(frame.byteLength - HEADER_BYTES - bytes.byteLength, PROTOCOL_TABLE.raw_predict_head_bytes);
  assert.equal(RAW_PREDICT_HEAD, PROTOCOL_TABLE.raw_predict_head_bytes);
  assert.equal(frame[HEADER_BYTES + RAW_PREDICT_HEAD - 1], PROTOCOL_TABLE.flag_debug);
  // With a trace context: the trace flag, its length, the context, then the sample.
  const trace = new TextEncoder().encode("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  const traced = encodeMessageFrame({ type: "predict", id: 1, sample: bytes, debug: false, trace }, 1 << 20);
  const at = HEADER_BYTES + RAW_PREDICT_HEAD;
  assert.equal(traced[at - 1], PROTOCOL_TABLE.flag_trace);
  assert.equal((traced[at]! << 8) | traced[at + 1]!, trace.byteLength);
  assert.equal(PROTOCOL_TABLE.trace_length_bytes, 2);
  assert.deepEqual(traced.subarray(at + 2, at + 2 + trace.byteLength), trace);
  assert.deepEqual(traced.subarray(at + 2 + trace.byteLength), bytes);
  assert.equal(new DataView(traced.buffer).getUint32(0), traced.byteLength - HEADER_BYTES);
});

Deno.test("the latency breakdown's flag and timed result are the table's", () => {
  assert.equal(FLAG_TIMINGS, PROTOCOL_TABLE.flag_timings);
  assert.equal(RAW_RESULT_TIMED, PROTOCOL_TABLE.raw_result_timed);
  assert.equal(RAW_RESULT_TIMED_HEAD, PROTOCOL_TABLE.raw_result_timed_head_bytes);
  const tracker = new TimingsTracker();
  const message = { type: "predict", id: 9, sample: bytes, debug: true } as const;
  const frame = encodeMessageFrame(message, 1 << 20);
  tracker.sending(message, frame);
  assert.equal(frame[HEADER_BYTES + RAW_PREDICT_HEAD - 1], PROTOCOL_TABLE.flag_debug | FLAG_TIMINGS);
  // [tag][u64 id][f64 read, start, end, sent][prediction]
  const payload = new Uint8Array(RAW_RESULT_TIMED_HEAD + bytes.byteLength);
  const view = new DataView(payload.buffer);
  view.setUint8(0, RAW_RESULT_TIMED);
  view.setUint32(5, 9);
  [1.5, 1.75, 2, 2.25].forEach((seconds, i) => view.setFloat64(9 + 8 * i, seconds));
  payload.set(bytes, RAW_RESULT_TIMED_HEAD);
  const decoded = tracker.decode(payload);
  assert.ok(decoded.type === "result" && decoded.timings !== undefined);
  assert.equal(decoded.id, 9);
  assert.deepEqual(decoded.prediction, bytes);
  const { read, started, ended, sent } = decoded.timings;
  assert.deepEqual([read, started, ended, sent], [1500, 1750, 2000, 2250]);
  // Without the tracker a timed result is refused; a second one for the same id too.
  assert.throws(() => decodeMessage(payload), ProtocolError);
  assert.throws(() => tracker.decode(payload), /never asked/);
  assert.throws(() => tracker.decode(payload.subarray(0, 20)), /at least 41/);
  // A flagged request answered without timings (a Content-Type API's result, an error) is forgotten.
  const again = encodeMessageFrame({ ...message, id: 10 }, 1 << 20);
  tracker.sending({ ...message, id: 10 }, again);
  const plain = new Uint8Array([PROTOCOL_TABLE.raw_result, 0, 0, 0, 0, 0, 0, 0, 10, 0x31]);
  assert.equal(tracker.decode(plain).type, "result");
  view.setUint32(5, 10);
  assert.throws(() => tracker.decode(payload), /never asked/);
});
