/**
 * Messages on the worker control channel: a tagged union on `type`, one
 * msgpack map per frame (see ./codec.ts for framing and ./worker.py for the
 * other side). Samples and predictions travel as UTF-8 JSON bytes: the server
 * has already parsed the request body once to validate it, and the bytes the
 * worker returns become the HTTP response body without being parsed again.
 *
 * Protocol 2, the whole conversation:
 *
 * server → worker
 * - `init` {protocol, api, inference, metadata, python_root, project_dir,
 *   stream_window}: first message; answered by `ready` or `init_error`.
 * - `predict` {id, sample, debug}: one request. The server may write the next
 *   `predict` before the previous answer arrived; the worker runs requests
 *   one at a time, in the order received.
 * - `predict_batch` {ids, samples, debug}: one `predict(list, metadata)` call
 *   for several requests (hooks run per sample); answered by one `result` or
 *   `error` per id, in order. A raise (in `predict` or a hook), a return that
 *   is not a list, or a list of the wrong length fails every id (`error`, kind
 *   `predict`); one unserialisable prediction fails its id only (kind
 *   `serialize`).
 * - `credit` {id, n}: the server consumed `n` more items of stream `id`.
 * - `cancel` {id}: stop request `id`. Running: a cancellation exception is
 *   raised inside user code on the worker's main thread, and the worker
 *   answers `error` kind `cancelled` (or its normal answer if it finished
 *   first). Received but not started: dropped, answered `error` kind
 *   `cancelled` at once. Finished or unknown: ignored. For a batch, any of
 *   its ids cancels the whole batch (every id answered).
 * - `shutdown`: exit once the running request is done. End of input counts
 *   as `shutdown`.
 *
 * worker → server
 * - `ready` {protocol, pid, python} / `init_error` {phase, error, traceback}.
 * - `result` {id, prediction}: the answer of a request whose `predict`
 *   returned a value.
 * - `item` {id, value}: one item of a stream (`predict` returned a generator
 *   or another iterator). The worker keeps at most `stream_window` items of a
 *   stream unacknowledged by `credit`, and does not advance the generator
 *   while the window is full. A stream ends with `end` {id, items} (the
 *   number of items sent) or with `error` {id, ...} after zero or more items.
 * - `error` {id, kind, error, traceback}: request `id` failed; kind is one of
 *   `predict`, `serialize`, `sample`, `out_of_memory`, `cancelled`.
 *
 * Every request gets exactly one final frame: `result`, `end` or `error`.
 */
import type { PythonInterface } from "../config/types.ts";
import { Decoder, encode } from "@msgpack/msgpack";
import { encodeFrame, HEADER_BYTES } from "./codec.ts";

/** Bumped on any incompatible change; checked in the handshake. */
export const PROTOCOL_VERSION = 2;

/** Server → worker: the first message; the worker answers `ready` or `init_error`. */
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
}

/** Server → worker: run one prediction. */
export interface PredictMessage {
  readonly type: "predict";
  readonly id: number;
  /** The request body, UTF-8 JSON. */
  readonly sample: Uint8Array;
  readonly debug: boolean;
}

/** Server → worker: run one `predict` call on several requests' samples. */
export interface PredictBatchMessage {
  readonly type: "predict_batch";
  readonly ids: readonly number[];
  /** One UTF-8 JSON request body per id. */
  readonly samples: readonly Uint8Array[];
  readonly debug: boolean;
}

/** Server → worker: `n` more items of stream `id` may be sent. */
export interface CreditMessage {
  readonly type: "credit";
  readonly id: number;
  readonly n: number;
}

/** Server → worker: stop request `id` (client gone or deadline passed). */
export interface CancelMessage {
  readonly type: "cancel";
  readonly id: number;
}

/** Server → worker: exit cleanly. */
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

/** Worker → server: `init` went well. */
export interface ReadyMessage {
  readonly type: "ready";
  readonly protocol: number;
  readonly pid: number;
  readonly python: string;
}

/** Where starting the user's code failed. */
export type InitPhase = "protocol" | "import" | "signature" | "init";

/** Worker → server: import, signature check or `init()` failed. */
export interface InitErrorMessage {
  readonly type: "init_error";
  readonly phase: InitPhase;
  readonly error: string;
  readonly traceback: string;
}

/** Worker → server: the prediction for request `id`, UTF-8 JSON. */
export interface ResultMessage {
  readonly type: "result";
  readonly id: number;
  readonly prediction: Uint8Array;
}

/** Worker → server: one item of stream `id`, UTF-8 JSON. */
export interface ItemMessage {
  readonly type: "item";
  readonly id: number;
  readonly value: Uint8Array;
}

/** Worker → server: stream `id` ended normally after `items` items. */
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

/** Worker → server: request `id` failed in user code or serialization. */
export interface ErrorMessage {
  readonly type: "error";
  readonly id: number;
  readonly kind: PredictErrorKind;
  readonly error: string;
  readonly traceback: string;
}

export type WorkerMessage =
  | ReadyMessage
  | InitErrorMessage
  | ResultMessage
  | ItemMessage
  | EndMessage
  | ErrorMessage;

/** The worker sent something that is not a valid message. */
export class ProtocolError extends Error {
  readonly code = "PROTOCOL_VIOLATION";
  constructor(message: string) {
    super(message);
    this.name = "ProtocolError";
  }
}

/** Encodes a server message as a msgpack payload (unframed). */
export function encodeMessage(message: ServerMessage): Uint8Array {
  return encode(message);
}

/** Encodes and frames a server message; `predict` takes the allocation-light path. */
export function encodeMessageFrame(message: ServerMessage, maxFrameBytes: number): Uint8Array {
  return message.type === "predict"
    ? encodePredictFrame(message, maxFrameBytes)
    : encodeFrame(encodeMessage(message), maxFrameBytes);
}

const textEncoder = new TextEncoder();
/** msgpack of the constant part of a predict message: fixmap(4), "type": "predict", "id" key. */
const PREDICT_HEAD = new Uint8Array([
  0x84,
  0xa4,
  ...textEncoder.encode("type"),
  0xa7,
  ...textEncoder.encode("predict"),
  0xa2,
  ...textEncoder.encode("id"),
]);
const SAMPLE_KEY = new Uint8Array([0xa6, ...textEncoder.encode("sample")]);
const DEBUG_KEY = new Uint8Array([0xa5, ...textEncoder.encode("debug")]);

/**
 * Frames `{type: "predict", id, sample, debug}` in one buffer, copying the
 * sample once: the same msgpack map `encode` would give (`id` as uint64,
 * `sample` as bin32), without an intermediate encoder buffer per request.
 *
 * @throws {import("./codec.ts").FrameError} when the frame is over `maxFrameBytes`
 */
export function encodePredictFrame(message: PredictMessage, maxFrameBytes: number): Uint8Array {
  const { id, sample, debug } = message;
  const length = PREDICT_HEAD.byteLength + 9 + SAMPLE_KEY.byteLength + 5 + sample.byteLength +
    DEBUG_KEY.byteLength + 1;
  if (length > maxFrameBytes) return encodeFrame(new Uint8Array(length), maxFrameBytes); // throws
  const frame = new Uint8Array(HEADER_BYTES + length);
  const view = new DataView(frame.buffer);
  view.setUint32(0, length);
  let at = HEADER_BYTES;
  frame.set(PREDICT_HEAD, at);
  at += PREDICT_HEAD.byteLength;
  frame[at] = 0xcf;
  view.setUint32(at + 1, Math.floor(id / 2 ** 32));
  view.setUint32(at + 5, id >>> 0);
  at += 9;
  frame.set(SAMPLE_KEY, at);
  at += SAMPLE_KEY.byteLength;
  frame[at] = 0xc6;
  view.setUint32(at + 1, sample.byteLength);
  at += 5;
  frame.set(sample, at);
  at += sample.byteLength;
  frame.set(DEBUG_KEY, at);
  at += DEBUG_KEY.byteLength;
  frame[at] = debug ? 0xc3 : 0xc2;
  return frame;
}

/** One decoder for every worker message: decoding is synchronous, so it is never shared mid-call. */
const DECODER = new Decoder();

const INIT_PHASES: ReadonlySet<string> = new Set([
  "protocol",
  "import",
  "signature",
  "init",
]);
const ERROR_KINDS: ReadonlySet<string> = new Set([
  "predict",
  "serialize",
  "sample",
  "out_of_memory",
  "cancelled",
]);

/**
 * Decodes and checks one payload from the worker.
 *
 * @throws {ProtocolError} when it is not msgpack or not a known message
 */
export function decodeMessage(payload: Uint8Array): WorkerMessage {
  let value: unknown;
  try {
    value = DECODER.decode(payload);
  } catch (error) {
    throw new ProtocolError(`Worker sent a frame that is not msgpack: ${String(error)}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ProtocolError("Worker sent a frame that is not a msgpack map");
  }
  const m = value as Record<string, unknown>;
  switch (m.type) {
    case "ready":
      return {
        type: "ready",
        protocol: int(m, "protocol"),
        pid: int(m, "pid"),
        python: str(m, "python"),
      };
    case "init_error":
      return {
        type: "init_error",
        phase: oneOf(m, "phase", INIT_PHASES) as InitPhase,
        error: str(m, "error"),
        traceback: str(m, "traceback"),
      };
    case "result":
      return { type: "result", id: int(m, "id"), prediction: bytes(m, "prediction") };
    case "item":
      return { type: "item", id: int(m, "id"), value: bytes(m, "value") };
    case "end":
      return { type: "end", id: int(m, "id"), items: int(m, "items") };
    case "error":
      return {
        type: "error",
        id: int(m, "id"),
        kind: oneOf(m, "kind", ERROR_KINDS) as PredictErrorKind,
        error: str(m, "error"),
        traceback: str(m, "traceback"),
      };
    default:
      throw new ProtocolError(`Worker sent an unknown message type: ${JSON.stringify(m.type)}`);
  }
}

function field(m: Record<string, unknown>, key: string): unknown {
  if (!(key in m)) {
    throw new ProtocolError(`Worker message "${String(m.type)}" lacks "${key}"`);
  }
  return m[key];
}

function int(m: Record<string, unknown>, key: string): number {
  const v = field(m, key);
  if (typeof v !== "number" || !Number.isSafeInteger(v)) {
    throw new ProtocolError(`Worker message "${String(m.type)}": "${key}" is not an integer`);
  }
  return v;
}

function str(m: Record<string, unknown>, key: string): string {
  const v = field(m, key);
  if (typeof v !== "string") {
    throw new ProtocolError(`Worker message "${String(m.type)}": "${key}" is not a string`);
  }
  return v;
}

function bytes(m: Record<string, unknown>, key: string): Uint8Array {
  const v = field(m, key);
  if (!(v instanceof Uint8Array)) {
    throw new ProtocolError(`Worker message "${String(m.type)}": "${key}" is not binary`);
  }
  return v;
}

function oneOf(m: Record<string, unknown>, key: string, allowed: ReadonlySet<string>): string {
  const v = str(m, key);
  if (!allowed.has(v)) {
    throw new ProtocolError(`Worker message "${String(m.type)}": unknown ${key} ${JSON.stringify(v)}`);
  }
  return v;
}
