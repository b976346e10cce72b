/**
 * Messages on the worker control channel: a tagged union on `type`, one
 * msgpack map per frame (see ./codec.ts for framing and ./worker.py for the
 * other side). Samples and predictions travel as UTF-8 JSON bytes: the server
 * has already parsed the request body once to validate it, and the bytes the
 * worker returns become the HTTP response body without being parsed again.
 */
import { decode, encode } from "@msgpack/msgpack";

/** Bumped on any incompatible change; checked in the handshake. */
export const PROTOCOL_VERSION = 1;

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
}

/** Server → worker: run one prediction. */
export interface PredictMessage {
  readonly type: "predict";
  readonly id: number;
  /** The request body, UTF-8 JSON. */
  readonly sample: Uint8Array;
  readonly debug: boolean;
}

/** Server → worker: exit cleanly. */
export interface ShutdownMessage {
  readonly type: "shutdown";
}

export type ServerMessage = InitMessage | PredictMessage | ShutdownMessage;

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

/** What went wrong in a failed request. */
export type PredictErrorKind = "predict" | "serialize" | "sample" | "out_of_memory";

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
]);

/**
 * Decodes and checks one payload from the worker.
 *
 * @throws {ProtocolError} when it is not msgpack or not a known message
 */
export function decodeMessage(payload: Uint8Array): WorkerMessage {
  let value: unknown;
  try {
    value = decode(payload);
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
