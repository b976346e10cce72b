/**
 * OpenTelemetry traces through Deno's built-in OpenTelemetry, on when the
 * runtime exports it (`OTEL_DENO=true`; `OTEL_EXPORTER_OTLP_*` and
 * `OTEL_SERVICE_NAME` say where and as what). Deno itself makes a span per
 * HTTP request and continues an incoming W3C `traceparent`; this module
 * names that span by its route and adds, under it, what happens to a
 * prediction:
 *
 * - `queue`: from arrival until a replica (or a batch) took the request;
 * - `batch` (server-side batching only): the `predict` call the request ran
 *   in, with the batch's size as `cortex.batch.size`;
 * - `predict`: from when a replica took the request until the worker's
 *   answer (its first item, for a stream), or the failure, with the error's
 *   code. The worker is sent this span's W3C context with the request (see
 *   PredictMessage in ../python/protocol.ts), so user code can parent its
 *   own spans on it.
 *
 * Log lines written while a request is handled carry its `trace_id` and
 * `span_id`. When tracing is off nothing here runs: the pools, the logger
 * and the app are left as they are, and the hot path does no extra work.
 *
 * @module
 */
import {
  type Attributes,
  type Context,
  context,
  type HrTime,
  type Span,
  SpanStatusCode,
  trace,
  type Tracer,
} from "@opentelemetry/api";
import type { Hono } from "hono";
import { getPath } from "hono/utils/url";
import type { ResolvedApi, ResolvedProject } from "../config/types.ts";
import { ApiError } from "../errors/api_error.ts";
import type { Logger } from "../log/logger.ts";
import type { ApiPool, Prediction, SubmitOptions } from "../supervision/pool.ts";
import type { AppEnv } from "./app_env.ts";

/** The instrumentation scope of the spans. */
export const TRACER_NAME = "cortex-serve";

/** True when the runtime exports OpenTelemetry data (`OTEL_DENO=true`). */
export function tracingEnabled(): boolean {
  try {
    return Deno.env.get("OTEL_DENO") === "true";
  } catch {
    return false; // no --allow-env
  }
}

/** What {@link startTracing} instruments. */
export interface TracingSources {
  readonly project: ResolvedProject;
  readonly pools: ReadonlyMap<string, ApiPool>;
  readonly logger: Logger;
}

/**
 * Instruments an app while it is built: call it before the routes are
 * added (it adds the middleware that names routed requests' spans), and
 * call the returned function with the finished app (it names the spans of
 * predictions, which skip the router).
 */
export function startTracing(app: Hono<AppEnv>, sources: TracingSources): (app: Hono<AppEnv>) => void {
  const tracer = trace.getTracer(TRACER_NAME);
  for (const api of sources.project.apis) tracePool(sources.pools.get(api.name)!, api, tracer);
  traceLogs(sources.logger);
  app.use(async (c, next) => {
    await next();
    nameRequest(c.req.method, c.req.routePath);
  });
  const endpoints = new Set(sources.project.apis.map((api) => api.endpoint));
  return (built) => {
    const fetch = built.fetch;
    built.fetch = (request, env, executionCtx) => {
      if (request.method === "POST") {
        const path = getPath(request);
        if (endpoints.has(path)) nameRequest("POST", path);
      }
      return fetch(request, env, executionCtx);
    };
  };
}

/** Names the request's span (Deno's) by its route, as the HTTP conventions ask. */
function nameRequest(method: string, route: string): void {
  const span = trace.getActiveSpan();
  if (span === undefined) return;
  span.updateName(`${method} ${route}`);
  span.setAttribute("http.route", route);
}

/** Pools already traced (an app is rebuilt on reload with the same or new pools). */
const tracedPools = new WeakSet<ApiPool>();
const tracedLoggers = new WeakSet<Logger>();

/**
 * Wraps `pool.submit` so that each prediction records its spans under the
 * request's. When a replica takes the request (or its batch), its `batch`
 * and `predict` spans start, and the worker is sent the `predict` span's
 * context (user code parents its own spans on it).
 */
export function tracePool(pool: ApiPool, api: ResolvedApi, tracer: Tracer): void {
  if (tracedPools.has(pool)) return;
  tracedPools.add(pool);
  const submit = pool.submit.bind(pool);
  const attributes = { "cortex.api": api.name };
  pool.submit = (sample: Uint8Array, options: SubmitOptions): Promise<Prediction> => {
    const parent = context.active();
    trace.getSpan(parent)?.setAttribute("cortex.api", api.name);
    const arrived = now();
    let batchSize: number | undefined;
    let taken: Taken | undefined;
    const onBatch = options.onBatch;
    const traced: SubmitOptions = {
      ...options,
      onBatch: (size) => {
        batchSize = size;
        onBatch?.(size);
      },
      trace: () => {
        // Taken again after its worker was lost before starting it: the same spans.
        taken ??= take(tracer, parent, attributes, batchSize);
        return taken.context;
      },
    };
    return submit(sample, traced).then(
      (prediction) => {
        taken ??= take(tracer, parent, attributes, batchSize, arrived + prediction.queueMs);
        record(tracer, parent, "queue", arrived, taken.started, attributes);
        taken.predict.setAttribute("cortex.answer", prediction.answer.type);
        const end = hr(now());
        taken.predict.end(end);
        taken.batch?.end(end);
        return prediction;
      },
      (error: unknown) => {
        const code = error instanceof ApiError ? error.code : "INTERNAL";
        if (taken !== undefined) record(tracer, parent, "queue", arrived, taken.started, attributes);
        const span = taken?.predict ??
          tracer.startSpan("predict", { startTime: hr(arrived), attributes }, parent);
        span.setAttribute("cortex.error.code", code);
        span.setStatus({
          code: SpanStatusCode.ERROR,
          message: error instanceof Error ? error.message : String(error),
        });
        const end = hr(now());
        span.end(end);
        taken?.batch?.end(end);
        throw error;
      },
    );
  };
}

/** The spans of a request a replica took: its batch's (batching only) and its `predict`. */
interface Taken {
  readonly started: number;
  readonly batch: Span | undefined;
  readonly predict: Span;
  /** The `predict` span's context, as the worker gets it. */
  readonly context: Uint8Array;
}

/** Starts the spans of a request a replica takes at `started` (now by default). */
function take(
  tracer: Tracer,
  parent: Context,
  attributes: Attributes,
  batchSize: number | undefined,
  started: number = now(),
): Taken {
  const startTime = hr(started);
  const batch = batchSize === undefined ? undefined : tracer.startSpan("batch", {
    startTime,
    attributes: { ...attributes, "cortex.batch.size": batchSize },
  }, parent);
  const predictParent = batch === undefined ? parent : trace.setSpan(parent, batch);
  const predict = tracer.startSpan("predict", { startTime, attributes }, predictParent);
  return { started, batch, predict, context: traceContext(predict) };
}

/**
 * A span's W3C trace context as the worker gets it: `traceparent`, and `\n`
 * `tracestate` when there is one within the W3C limit of 512 characters
 * (a longer one is dropped, as the W3C specification allows).
 */
export function traceContext(span: Span): Uint8Array {
  const { traceId, spanId, traceFlags, traceState } = span.spanContext();
  const flags = (traceFlags & 0xff).toString(16).padStart(2, "0");
  const state = traceState?.serialize() ?? "";
  const keep = state !== "" && state.length <= MAX_TRACESTATE_CHARS;
  return ASCII.encode(`00-${traceId}-${spanId}-${flags}${keep ? `\n${state}` : ""}`);
}

const MAX_TRACESTATE_CHARS = 512;

const ASCII = new TextEncoder();

/** Adds `trace_id` and `span_id` to the lines `logger` writes while a traced request is handled. */
export function traceLogs(logger: Logger): void {
  if (tracedLoggers.has(logger)) return;
  tracedLoggers.add(logger);
  const log = logger.log.bind(logger);
  logger.log = (level, message, fields) => {
    const span = trace.getActiveSpan();
    if (span === undefined) return log(level, message, fields);
    const { traceId, spanId } = span.spanContext();
    log(level, message, { ...fields, trace_id: traceId, span_id: spanId });
  };
}

function record(
  tracer: Tracer,
  parent: Context,
  name: string,
  start: number,
  end: number,
  attributes: Attributes,
): void {
  tracer.startSpan(name, { startTime: hr(start), attributes }, parent).end(hr(end));
}

/** Milliseconds since the epoch, with the sub-millisecond part of `performance.now()`. */
function now(): number {
  return performance.timeOrigin + performance.now();
}

function hr(epochMs: number): HrTime {
  const seconds = Math.floor(epochMs / 1000);
  return [seconds, Math.min(999_999_999, Math.round((epochMs - seconds * 1000) * 1e6))];
}
