/**
 * One request's latency cut into consecutive segments (the breakdown of
 * ./latency_breakdown.ts), from the moments the server and its worker noted:
 *
 * | segment          | from                         | to                                  |
 * | ---------------- | ---------------------------- | ----------------------------------- |
 * | `receive`        | the handler got the request  | it entered the pool (body read)     |
 * | `queue`          | entered the pool             | its frame was handed to the channel |
 * | `worker_busy`    | handed to the channel        | the worker sent its previous answer |
 * | `to_worker`      | (the later of the two above) | the worker's read returned          |
 * | `before_predict` | the worker read it           | user code started (sample parsed)   |
 * | `predict`        | user code started            | user code ended (hooks included)    |
 * | `after_predict`  | user code ended              | the worker wrote the answer         |
 * | `to_server`      | the worker wrote the answer  | the server read it                  |
 * | `handler`        | the server read the answer   | the handler returned its Response   |
 * | `write`          | the handler returned         | the response was written            |
 *
 * They add up to the request's whole time in the server. `worker_busy` is
 * only above zero with pipelining (a request sent behind a running one).
 *
 * The server's clock (`performance.now()`) and the worker's
 * (CLOCK_MONOTONIC) tick at the same rate but from different origins, and
 * the server cannot read CLOCK_MONOTONIC itself. {@link ClockOffset} bounds
 * the difference with every request: the worker cannot read a request
 * before the server wrote it, nor the server read an answer before the
 * worker wrote it. The two crossings (`to_worker`, `to_server`) are split at
 * the middle of that bound; their sum is exact, and each is within half the
 * bound's width ({@link ClockOffset.uncertainty}, tens of microseconds once
 * a few fast requests were seen).
 *
 * @module
 */
import type { WorkerTimings } from "../python/worker_timings.ts";

/** The segments, in order. */
export const SEGMENTS = [
  "receive",
  "queue",
  "worker_busy",
  "to_worker",
  "before_predict",
  "predict",
  "after_predict",
  "to_server",
  "handler",
  "write",
] as const;

export type Segment = typeof SEGMENTS[number];

/** The server's moments of one request, in `performance.now()` milliseconds. */
export interface ServerMoments {
  readonly accepted: number;
  readonly queued: number;
  readonly responded: number;
  readonly written: number;
}

/** The worker clock minus the server clock, bounded by every request seen. */
export class ClockOffset {
  /** Largest lower bound: the worker's send minus the server's read of it. */
  #low = -Infinity;
  /** Smallest upper bound: the worker's read minus the server's write of it. */
  #high = Infinity;

  /** Narrows the bound with one request's crossings. */
  observe(t: WorkerTimings): void {
    const high = t.read - t.written;
    const low = t.sent - t.received;
    if (high < this.#high) this.#high = high;
    if (low > this.#low) this.#low = low;
    if (this.#low > this.#high) {
      // Only if the clocks are not the same (they are on Linux): start again from this request.
      this.#low = low;
      this.#high = Math.max(low, high);
    }
  }

  /** The estimate: the middle of the bound (ms). */
  get offset(): number {
    return (this.#low + this.#high) / 2;
  }

  /** Half the bound's width: how far off each crossing may be (ms). */
  get uncertainty(): number {
    return (this.#high - this.#low) / 2;
  }
}

/**
 * Fills `out` (one entry per {@link SEGMENTS}, seconds) with the segments of
 * one request and returns its total (seconds). `clock` must have observed
 * `t` already. None is negative.
 */
export function segmentsOf(
  server: ServerMoments,
  t: WorkerTimings,
  clock: ClockOffset,
  out: Float64Array,
): number {
  const offset = clock.offset;
  const written = t.written + offset; // on the worker's clock
  const free = Math.min(Math.max(written, t.free), t.read);
  out[0] = server.queued - server.accepted;
  out[1] = t.written - server.queued;
  out[2] = free - written;
  out[3] = t.read - free;
  out[4] = t.started - t.read;
  out[5] = t.ended - t.started;
  out[6] = t.sent - t.ended;
  out[7] = t.received + offset - t.sent;
  out[8] = server.responded - t.received;
  out[9] = server.written - server.responded;
  for (let i = 0; i < out.length; i++) out[i] = Math.max(0, out[i]!) / 1000;
  return (server.written - server.accepted) / 1000;
}
