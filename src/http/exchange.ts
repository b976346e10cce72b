/**
 * One request as the access log, the counters and the metrics see it: an
 * {@link Exchange} filled in while the request is handled (one object per
 * request, plain fields), and the {@link AccessLog} that counts and logs it
 * once the answer is known.
 *
 * @module
 */
import { ApiError } from "../errors/api_error.ts";
import { echoedError } from "../log/cut_text.ts";
import type { Logger } from "../log/logger.ts";
import type { ApiRequestMetrics } from "./metrics.ts";
import type { ApiStats } from "./stats.ts";
import type { ConsoleActivity } from "./console/activity.ts";
import type { RejectionLog } from "./shedding.ts";
import { type CorsHeaders, NO_CORS } from "./cors.ts";

/** What is known of a request so far. */
export class Exchange {
  /** The API it reached; undefined for requests that are not logged (probes, 404s, refused keys). */
  api: string | undefined = undefined;
  keyId: string | undefined = undefined;
  /** Time the request waited for a replica, in milliseconds. */
  queueMs: number | undefined = undefined;
  /** Requests in the batch this request ran in (server-side batching only). */
  batchSize: number | undefined = undefined;
  /** The error its answer was made from, if any. */
  error: Error | undefined = undefined;
  /** The CORS headers its answer gets (decided by the route: none but on the CORS routes). */
  cors: CorsHeaders = NO_CORS;

  constructor(
    readonly requestId: string,
    readonly method: string,
    readonly path: string,
    /** `performance.now()` when the request arrived. */
    readonly started: number,
  ) {}
}

/** Load shedding answers (see ./shedding.ts): paced, and summarised in the log. */
const SHED_REASONS: Readonly<Partial<Record<string, string>>> = {
  QUEUE_FULL: "queue full",
  QUEUE_TIMEOUT: "queue timeout",
  NOT_READY: "not ready",
  SHUTTING_DOWN: "shutting down",
  UNAUTHORIZED: "unauthorized",
};

/** The reason of a rejection that sheds load, or undefined for any other outcome. */
export function shedReason(error: Error | undefined): string | undefined {
  return error instanceof ApiError ? SHED_REASONS[error.code] : undefined;
}

/** Bodies a client did not send (see ./body.ts): summarised at info, counted by reason. */
const BODY_FAILURES: Readonly<Partial<Record<string, BodyFailure>>> = {
  BODY_TIMEOUT: "timeout",
  BODY_INCOMPLETE: "client_closed",
};

/** Why a request body was not received: `--body-timeout` passed, or the client hung up mid-body. */
export type BodyFailure = "timeout" | "client_closed";

/** The reason a body was not received, or undefined for any other outcome. */
export function bodyFailure(error: Error | undefined): BodyFailure | undefined {
  return error instanceof ApiError ? BODY_FAILURES[error.code] : undefined;
}

/** Counters and metric children of one API, bound once. */
export interface ApiRecorders {
  readonly stats: ApiStats;
  readonly metrics: ApiRequestMetrics | undefined;
}

/** Counts and logs finished requests of the APIs. */
export class AccessLog {
  readonly #logger: Logger;
  readonly #perApi: ReadonlyMap<string, ApiRecorders>;
  readonly #activity: ConsoleActivity;
  readonly #rejections: RejectionLog;

  constructor(
    logger: Logger,
    perApi: ReadonlyMap<string, ApiRecorders>,
    activity: ConsoleActivity,
    rejections: RejectionLog,
  ) {
    this.#logger = logger;
    this.#perApi = perApi;
    this.#activity = activity;
    this.#rejections = rejections;
  }

  /**
   * Records a finished request of an API (nothing when `x.api` is unset):
   * counters, console, metrics, and one access log line, or a count in the
   * rejection summary for a shed request or a body the client did not send
   * (unless each gets its own line at debug level).
   */
  finish(x: Exchange, status: number, streamItems?: number, streamError?: string): void {
    const api = x.api;
    if (api === undefined) return;
    const ms = performance.now() - x.started;
    const bound = this.#perApi.get(api)!;
    bound.stats.record(status, ms);
    this.#activity.record(api, status, ms, x.requestId);
    const queueMs = x.queueMs;
    bound.metrics?.observe(status, ms / 1000, queueMs === undefined ? undefined : queueMs / 1000);
    const error = x.error;
    if (error !== undefined && this.#summarised(api, status, error, bound)) return;
    this.#logger.info("request", {
      request_id: x.requestId,
      api,
      method: x.method,
      path: x.path,
      status,
      latency_ms: round(ms),
      queue_ms: queueMs,
      batch_size: x.batchSize,
      key_id: x.keyId,
      stream_items: streamItems,
      stream_error: streamError === undefined ? undefined : echoedError(streamError),
    });
  }

  /** Counts a shed request or a body not received; true when it is summarised instead of logged alone. */
  #summarised(api: string, status: number, error: Error, bound: ApiRecorders): boolean {
    const failure = bodyFailure(error);
    if (failure !== undefined) bound.metrics?.bodyFailure(failure);
    if (this.#rejections.perRequest) return false;
    if (failure !== undefined) {
      this.#rejections.count("request bodies not received", { api, status, reason: failure }, "info");
      return true;
    }
    const shed = shedReason(error);
    if (shed === undefined) return false;
    this.#rejections.count("requests rejected", { api, status, reason: shed });
    return true;
  }
}

/** Milliseconds rounded to the microsecond. */
export function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
