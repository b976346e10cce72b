/**
 * The worker's side of the latency breakdown (`serve --latency-breakdown`,
 * docs/performance.md): a `predict` frame sent with the timings flag is
 * answered by a timed `result`,
 * `[0x03][u64 id][f64 read][f64 start][f64 end][f64 sent][prediction]`,
 * the four being the worker's CLOCK_MONOTONIC in seconds (when it read the
 * request, started and ended the user's code, and wrote the answer). The
 * tag, flag and sizes come from the protocol table
 * (./worker/_cortex_serve_worker/protocol.json).
 *
 * A {@link TimingsTracker} exists only for a worker spawned with the
 * breakdown on: it flags every `predict` on its way out, notes when it was
 * handed to the channel's writer, and decodes the timed answers. With the
 * breakdown off none of this runs.
 *
 * @module
 */
import { HEADER_BYTES } from "./codec.ts";
import {
  decodeMessage,
  PROTOCOL_TABLE,
  ProtocolError,
  RAW_PREDICT_HEAD,
  type ResultMessage,
  type ServerMessage,
  type WorkerMessage,
} from "./protocol.ts";

/** Bit of a raw `predict`'s flags byte: answer with a timed `result`. */
export const FLAG_TIMINGS: number = PROTOCOL_TABLE.flag_timings;
/** First byte of a timed raw `result` payload (worker -> server). */
export const RAW_RESULT_TIMED: number = PROTOCOL_TABLE.raw_result_timed;
/** Bytes before the prediction in a timed `result`: tag, u64 id, four f64. */
export const RAW_RESULT_TIMED_HEAD: number = PROTOCOL_TABLE.raw_result_timed_head_bytes;

/** Where a raw `predict`'s flags byte is in its frame. */
const FLAGS_AT = HEADER_BYTES + RAW_PREDICT_HEAD - 1;

/**
 * One request's moments on the worker's side, in milliseconds: `written`
 * and `received` on the server's clock (`performance.now()`), the others on
 * the worker's (CLOCK_MONOTONIC). `free` is when the worker sent the answer
 * before this one (it could not read this request earlier), 0 if unknown.
 */
export interface WorkerTimings {
  /** The `predict` frame was handed to the channel's writer. */
  readonly written: number;
  readonly free: number;
  readonly read: number;
  readonly started: number;
  readonly ended: number;
  readonly sent: number;
  /** The timed `result` was read. */
  readonly received: number;
}

/** A `result` with the worker's timings. */
export interface TimedResultMessage extends ResultMessage {
  readonly timings: WorkerTimings;
}

/** Flags and times the requests of one worker (see the module doc). */
export class TimingsTracker {
  /** When each outstanding flagged `predict` was handed to the writer, by id. */
  readonly #written = new Map<number, number>();
  #lastSent = 0;

  /** A frame is on its way out: a `predict` is flagged, and its time noted. */
  sending(message: ServerMessage, frame: Uint8Array): void {
    if (message.type !== "predict") return;
    frame[FLAGS_AT] = frame[FLAGS_AT]! | FLAG_TIMINGS;
    this.#written.set(message.id, performance.now());
  }

  /**
   * Decodes one payload from the worker, a timed `result` included.
   *
   * @throws {ProtocolError} as {@link decodeMessage}, or for a timed result that is too short
   */
  decode(payload: Uint8Array): WorkerMessage {
    if (payload.byteLength === 0 || payload[0] !== RAW_RESULT_TIMED) {
      const message = decodeMessage(payload);
      // A request answered without timings (an error, a stream, a Content-Type API's result): forget it.
      if (message.type === "result" || message.type === "error" || message.type === "end") {
        this.#written.delete(message.id);
      }
      return message;
    }
    const received = performance.now();
    if (payload.byteLength < RAW_RESULT_TIMED_HEAD) {
      throw new ProtocolError(
        `Worker sent a timed "result" frame of ${payload.byteLength} bytes: it needs at least ${RAW_RESULT_TIMED_HEAD}`,
      );
    }
    const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
    const high = view.getUint32(1);
    if (high > 0x1f_ffff) throw new ProtocolError('Worker message "result": "id" is not a safe integer');
    const id = high * 0x1_0000_0000 + view.getUint32(5);
    const written = this.#written.get(id);
    if (written === undefined) throw new ProtocolError(`Worker sent timings for request ${id}, never asked`);
    this.#written.delete(id);
    const sent = view.getFloat64(33) * 1000;
    const timings: WorkerTimings = {
      written,
      free: this.#lastSent,
      read: view.getFloat64(9) * 1000,
      started: view.getFloat64(17) * 1000,
      ended: view.getFloat64(25) * 1000,
      sent,
      received,
    };
    this.#lastSent = sent;
    return { type: "result", id, prediction: payload.subarray(RAW_RESULT_TIMED_HEAD), timings };
  }
}
