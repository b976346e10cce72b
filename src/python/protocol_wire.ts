/**
 * The bytes of the worker control channel's messages (./protocol.ts): a
 * server message encoded and framed (`predict` as a raw frame, every other
 * one a msgpack map), and a worker message decoded and checked field by
 * field, a raw `result` without a copy.
 *
 * @module
 */
import { Decoder, encode } from "@msgpack/msgpack";
import { encodeFrame, HEADER_BYTES } from "./codec.ts";
import TABLE from "./worker/_cortex_serve_worker/protocol.json" with { type: "json" };
import type {
  InitPhase,
  PredictErrorKind,
  PredictMessage,
  ResultMessage,
  ServerMessage,
  WorkerMessage,
} from "./protocol.ts";

/** The worker sent something that is not a valid message. */
export class ProtocolError extends Error {
  readonly code = "PROTOCOL_VIOLATION";
  constructor(message: string) {
    super(message);
    this.name = "ProtocolError";
  }
}

/** Encodes and frames a server message; `predict` goes out as a raw frame. */
export function encodeMessageFrame(message: ServerMessage, maxFrameBytes: number): Uint8Array {
  return message.type === "predict"
    ? encodePredictFrame(message, maxFrameBytes)
    : encodeFrame(encode(message), maxFrameBytes);
}

/** First byte of a raw `predict` payload (server -> worker). */
export const RAW_PREDICT: number = TABLE.raw_predict;
/** First byte of a raw `result` payload (worker -> server). */
export const RAW_RESULT: number = TABLE.raw_result;
/** Bytes before the sample in a raw `predict` payload: tag, u64 id, flags. */
export const RAW_PREDICT_HEAD: number = TABLE.raw_predict_head_bytes;
/** Bytes before the prediction in a raw `result` payload: tag, u64 id. */
export const RAW_RESULT_HEAD: number = TABLE.raw_result_head_bytes;
/** Bit of a raw `predict`'s flags byte: log the sample and the prediction. */
const FLAG_DEBUG: number = TABLE.flag_debug;

/** Bit of a raw `predict`'s flags byte: a trace context (u16 length, ASCII) precedes the sample. */
const FLAG_TRACE: number = TABLE.flag_trace;
/** Bytes of the length of a raw `predict`'s trace context. */
const TRACE_LENGTH_BYTES: number = TABLE.trace_length_bytes;

/**
 * Frames a raw `predict` in one buffer, copying the sample once:
 * `[u32 length][0x01][u64 id][flags][sample]`, all big-endian; with a trace
 * context, `[u16 n][trace]` before the sample.
 *
 * @throws {import("./codec.ts").FrameError} when the frame is over `maxFrameBytes`
 */
export function encodePredictFrame(message: PredictMessage, maxFrameBytes: number): Uint8Array {
  const { id, sample, trace } = message;
  const head = trace === undefined
    ? RAW_PREDICT_HEAD
    : RAW_PREDICT_HEAD + TRACE_LENGTH_BYTES + trace.byteLength;
  const length = head + sample.byteLength;
  if (length > maxFrameBytes) return encodeFrame(new Uint8Array(length), maxFrameBytes); // throws
  const frame = new Uint8Array(HEADER_BYTES + length);
  putUint32(frame, 0, length);
  frame[4] = RAW_PREDICT;
  putUint32(frame, 5, Math.floor(id / 0x1_0000_0000));
  putUint32(frame, 9, id >>> 0);
  frame[13] = message.debug ? FLAG_DEBUG : 0;
  if (trace !== undefined) {
    if (trace.byteLength > 0xffff) throw new RangeError(`A trace context of ${trace.byteLength} bytes`);
    frame[13] |= FLAG_TRACE;
    frame[14] = trace.byteLength >>> 8;
    frame[15] = trace.byteLength & 0xff;
    frame.set(trace, 16);
  }
  frame.set(sample, HEADER_BYTES + head);
  return frame;
}

/** Writes `value` big-endian at `at`, without a DataView per call. */
function putUint32(bytes: Uint8Array, at: number, value: number): void {
  bytes[at] = value >>> 24;
  bytes[at + 1] = value >>> 16;
  bytes[at + 2] = value >>> 8;
  bytes[at + 3] = value;
}

function getUint32(bytes: Uint8Array, at: number): number {
  return (bytes[at]! * 0x100_0000) + ((bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!);
}

/**
 * A raw `result`: the prediction is a view of `payload`, not a copy.
 *
 * @throws {ProtocolError} when the payload is too short or the id is not a safe integer
 */
function decodeRawResult(payload: Uint8Array): ResultMessage {
  if (payload.byteLength < RAW_RESULT_HEAD) {
    throw new ProtocolError(
      `Worker sent a raw "result" frame of ${payload.byteLength} bytes: it needs at least ${RAW_RESULT_HEAD}`,
    );
  }
  const high = getUint32(payload, 1);
  if (high > 0x1f_ffff) {
    throw new ProtocolError('Worker message "result": "id" is not a safe integer');
  }
  return {
    type: "result",
    id: high * 0x1_0000_0000 + getUint32(payload, 5),
    prediction: payload.subarray(RAW_RESULT_HEAD),
  };
}

/** True when `byte` starts a msgpack map (fixmap, map16, map32). */
function startsMap(byte: number): boolean {
  return (byte & 0xf0) === 0x80 || byte === 0xde || byte === 0xdf;
}

/** One decoder for every worker message: decoding is synchronous, so it is never shared mid-call. */
const DECODER = new Decoder();

const INIT_PHASES: ReadonlySet<string> = new Set(TABLE.init_phases);
const ERROR_KINDS: ReadonlySet<string> = new Set(TABLE.error_kinds);

/**
 * Decodes and checks one payload from the worker.
 *
 * @throws {ProtocolError} when it is not a raw `result`, not msgpack, or not a known message
 */
export function decodeMessage(payload: Uint8Array): WorkerMessage {
  if (payload.byteLength === 0) throw new ProtocolError("Worker sent an empty frame");
  const tag = payload[0]!;
  if (tag === RAW_RESULT) return decodeRawResult(payload);
  if (!startsMap(tag)) {
    throw new ProtocolError(
      `Worker sent a frame of unknown kind: first byte 0x${
        tag.toString(16).padStart(2, "0")
      } is not the raw "result" tag 0x02 and does not start a msgpack map`,
    );
  }
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
    case "item":
      return { type: "item", id: int(m, "id"), value: bytes(m, "value") };
    case "end":
      return { type: "end", id: int(m, "id"), items: int(m, "items") };
    case "model": {
      const event = str(m, "event");
      const seconds = field(m, "seconds");
      if ((event !== "load" && event !== "evict") || typeof seconds !== "number") {
        throw new ProtocolError('Worker message "model": "event" or "seconds" is invalid');
      }
      return { type: "model", event, model: str(m, "model"), version: str(m, "version"), seconds };
    }
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
