/**
 * The per-request latency breakdown, on with `serve --latency-breakdown`
 * (docs/performance.md, "Where the tail comes from"): every prediction
 * answered with a body is cut into the segments of ./latency_segments.ts,
 * observed in `cortex_serve_request_segment_seconds{api,segment}`, and kept
 * among the last {@link DEFAULT_RECENT} requests, which
 * `GET /metrics/latency-breakdown` returns (slowest first) for
 * `scripts/bench/run --breakdown`.
 *
 * It instruments from outside, like ./tracing.ts: it wraps the server's
 * fetch handler (the request's arrival, its Response, the moment it was
 * written) and each pool's `submit` (entering the pool, the worker's
 * timings on the answer); the workers are spawned asking for timings
 * (../python/worker_timings.ts). When it is off none of this exists, and the
 * request path is the same code as without it.
 *
 * Not broken down: streamed answers, errors, batched requests
 * (`server_side_batching`), and APIs whose worker parses by Content-Type
 * (Cortex 0.17+ `realtime_predictor`): their worker sends no timings.
 *
 * @module
 */
import type { Hono } from "hono";
import type { ApiPool, Prediction, SubmitOptions } from "../supervision/pool.ts";
import type { AppEnv } from "./app_env.ts";
import { ClockOffset, type Segment, SEGMENTS, segmentsOf } from "./latency_segments.ts";
import { Gauge, Histogram, type HistogramChild, type Registry } from "./prometheus.ts";
import type { WorkerTimings } from "../python/worker_timings.ts";

/** Requests kept for `GET /metrics/latency-breakdown`. */
export const DEFAULT_RECENT = 20_000;

/** The route that lists the recent requests' segments. */
export const BREAKDOWN_PATH = "/metrics/latency-breakdown";

/** 10 µs to 10 s. */
const SEGMENT_BUCKETS = [
  0.00001,
  0.000025,
  0.00005,
  0.0001,
  0.00025,
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  10,
];

/** A request's row in the ring: its number, arrival, total, segments. */
const ROW = SEGMENTS.length + 3;

/**
 * A fetch handler as the listener calls it: `info` is the connection's
 * (../http/serve_connection.ts), whose `completed` settles once the
 * response was written; without it, the Response counts as written.
 */
export type FetchHandler = (request: Request, info?: unknown) => Response | Promise<Response>;

/** One request while it is handled. */
interface Pending {
  readonly accepted: number;
  api: string | undefined;
  queued: number;
  timings: WorkerTimings | undefined;
}

/** What `GET /metrics/latency-breakdown` answers. */
export interface BreakdownReport {
  readonly segments: readonly Segment[];
  /** Half the width of the clock bound, seconds (see ./latency_segments.ts). */
  readonly clock_uncertainty_seconds: number;
  /** Requests broken down since the server started; each request's `seq` is its number among them. */
  readonly recorded: number;
  /** The server's `performance.timeOrigin`: `at` + this is a wall-clock time (ms), to line up with a client's. */
  readonly time_origin: number;
  /** Slowest first: the API, the total and one value per segment, all seconds. */
  readonly requests: readonly BrokenDownRequest[];
}

/** One request of {@link BreakdownReport}. */
export interface BrokenDownRequest {
  readonly seq: number;
  /** When the handler got it: `performance.now()` of the server, ms (to line it up with `--trace-gc`). */
  readonly at: number;
  readonly api: string;
  readonly total: number;
  readonly segments: number[];
}

/** The breakdown of one server (it outlives reloads: the wrapped pools and handlers change). */
export class LatencyBreakdown {
  readonly #histogram: Histogram<"api" | "segment">;
  readonly #children = new Map<string, HistogramChild[]>();
  /** Requests being handled, by their Request (the one thing the handler and `submit` both see). */
  readonly #pending = new Map<Request, Pending>();
  readonly #wrapped = new WeakSet<ApiPool>();
  readonly #clock = new ClockOffset();
  readonly #segments = new Float64Array(SEGMENTS.length);
  /** The last requests: seq, arrival, total, then the segments, one row each, a ring. */
  readonly #recent: Float64Array;
  readonly #recentApis: string[];
  #recorded = 0;

  constructor(registry: Registry, recent = DEFAULT_RECENT) {
    this.#recent = new Float64Array(recent * ROW);
    this.#recentApis = new Array<string>(recent).fill("");
    this.#histogram = registry.register(
      new Histogram({
        name: "cortex_serve_request_segment_seconds",
        help:
          "Where a prediction's time went, by segment (serve --latency-breakdown; see docs/performance.md)",
        labelNames: ["api", "segment"],
        buckets: SEGMENT_BUCKETS,
      }),
    );
    registry.register(
      new Gauge({
        name: "cortex_serve_request_segment_clock_uncertainty_seconds",
        help: "How far to_worker and to_server may each be off (half the bound on the worker's clock offset)",
        labelNames: [],
        collect: (gauge) => {
          const u = this.#clock.uncertainty;
          if (Number.isFinite(u)) gauge.set({}, u / 1000);
        },
      }),
    );
  }

  /** The server's handler, noting each request's arrival, Response and end of writing. */
  wrap(fetch: FetchHandler): FetchHandler {
    return (request, info) => {
      const pending: Pending = { accepted: performance.now(), api: undefined, queued: 0, timings: undefined };
      this.#pending.set(request, pending);
      const finish = (response: Response) => {
        this.#pending.delete(request);
        if (pending.timings === undefined) return response;
        const responded = performance.now();
        const completed = (info as { completed?: Promise<void> } | undefined)?.completed;
        if (completed === undefined) this.#record(pending, responded, responded);
        else completed.then(() => this.#record(pending, responded, performance.now()), () => {});
        return response;
      };
      const fail = (error: unknown) => {
        this.#pending.delete(request);
        throw error;
      };
      try {
        const answer = fetch(request, info);
        return answer instanceof Response ? finish(answer) : answer.then(finish, fail);
      } catch (error) {
        return fail(error);
      }
    };
  }

  /** Wraps `pool.submit` (once per pool) to note when a request entered it and its worker's timings. */
  instrument(pool: ApiPool): void {
    if (this.#wrapped.has(pool)) return;
    this.#wrapped.add(pool);
    const submit = pool.submit.bind(pool);
    pool.submit = (sample: Uint8Array, options: SubmitOptions): Promise<Prediction> => {
      const client = options.client;
      const pending = client instanceof Request ? this.#pending.get(client) : undefined;
      if (pending === undefined) return submit(sample, options);
      pending.api = pool.api;
      pending.queued = performance.now();
      return submit(sample, options).then((prediction) => {
        const answer = prediction.answer;
        if (answer.type === "body") pending.timings = answer.timings;
        return prediction;
      });
    };
  }

  /** Adds `GET /metrics/latency-breakdown` (behind the app's API keys, like `/metrics`). */
  addRoute(app: Hono<AppEnv>): void {
    app.get(BREAKDOWN_PATH, (c) => c.json(this.report()));
  }

  /** The recent requests, slowest first. */
  report(): BreakdownReport {
    const size = this.#recentApis.length;
    const kept = Math.min(this.#recorded, size);
    const requests: BrokenDownRequest[] = [];
    for (let i = 0; i < kept; i++) {
      const at = (this.#recorded - 1 - i) % size;
      const row = this.#recent.subarray(at * ROW, (at + 1) * ROW);
      requests.push({
        seq: row[0]!,
        at: row[1]!,
        api: this.#recentApis[at]!,
        total: row[2]!,
        segments: Array.from(row.subarray(3)),
      });
    }
    requests.sort((a, b) => b.total - a.total);
    const uncertainty = this.#clock.uncertainty;
    return {
      segments: SEGMENTS,
      clock_uncertainty_seconds: Number.isFinite(uncertainty) ? uncertainty / 1000 : 0,
      recorded: this.#recorded,
      time_origin: performance.timeOrigin,
      requests,
    };
  }

  #record(pending: Pending, responded: number, written: number): void {
    const timings = pending.timings!;
    const api = pending.api!;
    this.#clock.observe(timings);
    const segments = this.#segments;
    const total = segmentsOf(
      { accepted: pending.accepted, queued: pending.queued, responded, written },
      timings,
      this.#clock,
      segments,
    );
    const children = this.#childrenOf(api);
    for (let i = 0; i < segments.length; i++) children[i]!.observe(segments[i]!);
    const at = this.#recorded % this.#recentApis.length;
    this.#recent[at * ROW] = this.#recorded++;
    this.#recent[at * ROW + 1] = pending.accepted;
    this.#recent[at * ROW + 2] = total;
    this.#recent.set(segments, at * ROW + 3);
    this.#recentApis[at] = api;
  }

  #childrenOf(api: string): HistogramChild[] {
    let children = this.#children.get(api);
    if (children === undefined) {
      children = SEGMENTS.map((segment) => this.#histogram.labels({ api, segment }));
      this.#children.set(api, children);
    }
    return children;
  }
}
