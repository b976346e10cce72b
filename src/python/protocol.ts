/**
 * Messages on the worker control channel (see ./codec.ts for framing and
 * ./worker/_cortex_serve_worker/ for the other side): a tagged union on
 * `type`. The version, tags, sizes, kinds and each message's fields come
 * from one table both sides read, ./worker/_cortex_serve_worker/protocol.json. A frame's
 * payload is either a msgpack map with a `type` key, or a raw frame whose
 * first byte is a tag that never starts a msgpack map (maps start with
 * 0x80-0x8f, 0xde or 0xdf): the two messages of every request, `predict`
 * and `result`, travel raw, so neither side packs or unpacks a map around
 * the bytes per request. Samples and predictions travel as UTF-8 JSON bytes:
 * the worker's parse of a sample is the only one (the server passes the
 * request body through untouched), and the bytes the worker returns become
 * the HTTP response body without being parsed again.
 *
 * Protocol 4, the whole conversation (integers in raw frames are big-endian;
 * an id is a u64 below 2^53):
 *
 * server -> worker
 * - `init` {protocol, api, inference, metadata, python_root, project_dir,
 *   interface, model, model_dir, stream_window}: first message; answered by
 *   `ready` or `init_error` (phase `protocol` when the versions differ).
 * - `predict`, raw: `[0x01][u64 id][u8 flags][sample]`, flags bit 0 = debug
 *   (log the sample and the prediction), bit 1 = trace: `[u16 n][n bytes]`
 *   precede the sample, the W3C trace context of the request's `predict`
 *   span as ASCII (`traceparent`, then `\n` and `tracestate` when it has
 *   one), sent only while tracing is on; bit 2 = timings (answer with a
 *   timed `result`, ./worker_timings.ts; the latency breakdown only): one
 *   request. The server may write
 *   the next `predict` before the previous answer arrived; the worker runs
 *   requests one at a time, in the order received.
 * - `predict_batch` {ids, samples, debug, traces}: one `predict(list,
 *   metadata)` call for several requests (hooks run per sample); answered by
 *   one `result` or `error` per id, in order. A raise (in `predict` or a
 *   hook), a return that is not a list, or a list of the wrong length fails
 *   every id (`error`, kind `predict`); one unserialisable prediction fails
 *   its id only (kind `serialize`). `traces`, only while tracing is on (the
 *   key is absent otherwise): one W3C trace context per id, as in `predict`.
 * - `credit` {id, n}: the server consumed `n` more items of stream `id`.
 * - `cancel` {id}: stop request `id`; the server sends it only for a
 *   request it sent and that is not answered. It travels on the cancel
 *   channel (see ./channel.ts), every other message on the main channel, so
 *   it may overtake the request it names; request ids increase in the order
 *   requests are sent, which tells the worker one not started yet (above
 *   every id it started, read or not) from one it finished. Running: a
 *   cancellation exception is raised inside user code on the worker's main
 *   thread, and the worker answers `error` kind `cancelled` (or its normal
 *   answer if it finished first). Not started: answered `error` kind
 *   `cancelled` at once, and dropped when the worker gets to it. Finished:
 *   ignored. For a batch, any of its ids cancels the whole batch (every id
 *   answered); the server sends a `cancel` for each of its ids.
 * - `shutdown`: exit once the running request is done. End of input counts
 *   as `shutdown`.
 *
 * worker -> server
 * - `ready` {protocol, pid, python} / `init_error` {phase, error, traceback}.
 *   The server refuses a `ready` whose protocol is not its own.
 * - `result`, raw: `[0x02][u64 id][prediction]`: the answer of a request
 *   whose `predict` returned a value (also each answered id of a batch); to
 *   a `predict` with the timings flag, `[0x03][u64 id][4 × f64][prediction]`.
 * - `item` {id, value}: one item of a stream (`predict` returned a generator
 *   or another iterator). The worker keeps at most `stream_window` items of a
 *   stream unacknowledged by `credit`, and does not advance the generator
 *   while the window is full. A stream ends with `end` {id, items} (the
 *   number of items sent) or with `error` {id, ...} after zero or more items.
 * - `error` {id, kind, error, traceback}: request `id` failed; kind is one of
 *   `predict`, `serialize`, `sample`, `out_of_memory`, `cancelled`.
 * - `model` {event, model, version, seconds}: a model of a multi-model API
 *   was loaded (`load`) or dropped from memory (`evict`); no reply, any time.
 *
 * Every request gets exactly one final frame: `result`, `end` or `error`.
 * Any other first byte, or a raw frame shorter than its header, is a
 * protocol violation.
 *
 * This file is the messages; their bytes (encoding, the raw frames,
 * decoding and its checks) are ./protocol_wire.ts, re-exported here.
 */
import type { PythonInterface } from "../config/types.ts";
import TABLE from "./worker/_cortex_serve_worker/protocol.json" with { type: "json" };
import type { WorkerTimings } from "./worker_timings.ts";

/** The protocol table both sides read (constants, error kinds, each message's fields). */
export const PROTOCOL_TABLE: Readonly<typeof TABLE> = TABLE;

/** Bumped on any incompatible change; checked in the handshake. */
export const PROTOCOL_VERSION: number = TABLE.version;

/** Server -> worker: the first message; the worker answers `ready` or `init_error`. */
export interface InitMessage {
  readonly type: "init";
  readonly protocol: number;
  readonly api: string;
  /** Absolute path of the inference file inside the staged project. */
  readonly inference: string;
  readonly metadata: Readonly<Record<string, unknown>>;
  /** Absolute path added to `sys.path`, or null. */
  readonly python_root: string | null;
  readonly project_dir: string;
  /** How to call the file: module functions with or without the model's path, or `PythonPredictor`. */
  readonly interface: PythonInterface;
  /** `predictor.model`: an absolute local path or an `s3://` URL, or null. */
  readonly model: string | null;
  /** Where the worker downloads an `s3://` model (reused while unchanged), or null. */
  readonly model_dir: string | null;
  /** Items of one stream the worker may send ahead of the server's `credit`. */
  readonly stream_window: number;
  /** Multi-model settings of a `realtime_predictor` (served through `python_client`); null or absent otherwise. */
  readonly models?: InitModels | null;
}

/** `models` of `init`: locations are absolute paths or `s3://` URLs. */
export interface InitModels {
  readonly sources: readonly { readonly name: string; readonly path: string }[] | null;
  readonly dir: string | null;
  readonly cache_size: number | null;
  readonly disk_cache_size: number | null;
}

/** Server -> worker: run one prediction. */
export interface PredictMessage {
  readonly type: "predict";
  readonly id: number;
  /** The request body, UTF-8 JSON. */
  readonly sample: Uint8Array;
  readonly debug: boolean;
  /** The W3C trace context to run it in (`traceparent`, `\n`, `tracestate`), ASCII; only while tracing. */
  readonly trace?: Uint8Array | undefined;
}

/** Server -> worker: run one `predict` call on several requests' samples. */
export interface PredictBatchMessage {
  readonly type: "predict_batch";
  readonly ids: readonly number[];
  /** One UTF-8 JSON request body per id. */
  readonly samples: readonly Uint8Array[];
  readonly debug: boolean;
  /** Only while tracing: one W3C trace context per id (see PredictMessage), ASCII. */
  readonly traces?: readonly Uint8Array[];
}

/** Server -> worker: `n` more items of stream `id` may be sent. */
export interface CreditMessage {
  readonly type: "credit";
  readonly id: number;
  readonly n: number;
}

/** Server -> worker: stop request `id` (client gone or deadline passed). */
export interface CancelMessage {
  readonly type: "cancel";
  readonly id: number;
}

/** Server -> worker: exit cleanly. */
export interface ShutdownMessage {
  readonly type: "shutdown";
}

export type ServerMessage =
  | InitMessage
  | PredictMessage
  | PredictBatchMessage
  | CreditMessage
  | CancelMessage
  | ShutdownMessage;

/** Worker -> server: `init` went well. */
export interface ReadyMessage {
  readonly type: "ready";
  readonly protocol: number;
  readonly pid: number;
  readonly python: string;
}

/** Where starting the user's code failed. */
export type InitPhase = "protocol" | "import" | "signature" | "init";

/** Worker -> server: import, signature check or `init()` failed. */
export interface InitErrorMessage {
  readonly type: "init_error";
  readonly phase: InitPhase;
  readonly error: string;
  readonly traceback: string;
}

/** Worker -> server: the prediction for request `id`, UTF-8 JSON. */
export interface ResultMessage {
  readonly type: "result";
  readonly id: number;
  readonly prediction: Uint8Array;
  /** A timed `result` only (the latency breakdown, ./worker_timings.ts). */
  readonly timings?: WorkerTimings;
}

/** Worker -> server: one item of stream `id`, UTF-8 JSON. */
export interface ItemMessage {
  readonly type: "item";
  readonly id: number;
  readonly value: Uint8Array;
}

/** Worker -> server: stream `id` ended normally after `items` items. */
export interface EndMessage {
  readonly type: "end";
  readonly id: number;
  readonly items: number;
}

/**
 * What went wrong in a failed request: `predict` (user code raised; 500),
 * `serialize` (the prediction cannot become JSON; 500), `sample` (the worker
 * could not parse the sample: invalid JSON or UTF-8, nesting too deep; 400,
 * the worker stays up), `out_of_memory` (MemoryError; 502), `cancelled` (the
 * server cancelled the request: its client went away or its time was up).
 */
export type PredictErrorKind = "predict" | "serialize" | "sample" | "out_of_memory" | "cancelled";

/** Worker -> server: request `id` failed in user code or serialization. */
export interface ErrorMessage {
  readonly type: "error";
  readonly id: number;
  readonly kind: PredictErrorKind;
  readonly error: string;
  readonly traceback: string;
}

/**
 * Worker -> server, at any time after `ready`: a model of a multi-model API
 * (`python_client`) was loaded or evicted from memory, for the metrics.
 */
export interface ModelMessage {
  readonly type: "model";
  readonly event: "load" | "evict";
  /** The model's name; `""` for the single `path` form. */
  readonly model: string;
  readonly version: string;
  /** How long `load_model` took (0 for an eviction). */
  readonly seconds: number;
}

/** The messages that answer a request or the handshake (every one but `model`). */
export type ReplyMessage =
  | ReadyMessage
  | InitErrorMessage
  | ResultMessage
  | ItemMessage
  | EndMessage
  | ErrorMessage;

export type WorkerMessage = ReplyMessage | ModelMessage;

export {
  decodeMessage,
  encodeMessageFrame,
  encodePredictFrame,
  ProtocolError,
  RAW_PREDICT,
  RAW_PREDICT_HEAD,
  RAW_RESULT,
  RAW_RESULT_HEAD,
} from "./protocol_wire.ts";
