/**
 * The HTTP surface (SPEC §5) as a Hono app: a pure `fetch` handler built from
 * the resolved project and the API pools. Binding a socket is `main.ts`'s job.
 */
import { Hono } from "hono";
import type { Context } from "hono";
import type { ResolvedApi, ResolvedProject } from "../config/types.ts";
import type { Logger } from "../log/logger.ts";
import { ApiError, type ErrorStatus } from "../errors/api_error.ts";
import type { KeyStore } from "../security/api_keys.ts";
import { requireApiKey } from "./auth.ts";
import { corsMiddleware, type CorsPolicy } from "./cors.ts";
import type { ServerMetrics } from "./metrics.ts";
import type { ApiPool } from "../supervision/pool.ts";
import { checkNotEmpty, readBody } from "./body.ts";
import { RequestStats } from "./stats.ts";
import { apiStatus } from "./status.ts";
import { requestId } from "./request_id.ts";
import { RejectionLog, ShedPacer } from "./shedding.ts";
import type { AppEnv } from "./app_env.ts";
import { type StreamEnd, streamFormat, streamResponse } from "./stream_body.ts";
import { ConsoleActivity } from "./console/activity.ts";
import { addConsoleRoutes, consolePage, wantsConsolePage } from "./console/routes.ts";

export type { AppEnv };

/** Everything the app reads. */
export interface AppOptions {
  readonly project: ResolvedProject;
  /** One pool per API, by API name. */
  readonly pools: ReadonlyMap<string, ApiPool>;
  readonly maxBodyBytes: number;
  /** Include Python tracebacks in error bodies (`--debug`). */
  readonly debug: boolean;
  readonly logger: Logger;
  /** Prometheus metrics, fed per request and served at `GET /metrics`; none when absent. */
  readonly metrics?: ServerMetrics;
  /** Require one of these API keys on every route but `/livez` and `/healthz`; none when absent. */
  readonly keys?: KeyStore | undefined;
  /** Counters shown by `GET /`; pass the server's own to keep them across reloads. */
  readonly stats?: RequestStats;
  /** CORS of the prediction routes; default `*`, as Cortex 0.10. */
  readonly cors?: CorsPolicy;
  /** Recent requests and log lines shown by the console; pass the server's own to keep them across reloads. */
  readonly activity?: ConsoleActivity;
}

/** The app and the counters it keeps. */
export interface CortexApp {
  readonly app: Hono<AppEnv>;
  readonly stats: RequestStats;
  readonly activity: ConsoleActivity;
}

const JSON_HEADERS = { "content-type": "application/json" } as const;

/** Load shedding answers (see ./shedding.ts): paced, and summarised in the log. */
const SHED_REASONS: Readonly<Partial<Record<string, string>>> = {
  QUEUE_FULL: "queue full",
  NOT_READY: "not ready",
  SHUTTING_DOWN: "shutting down",
  UNAUTHORIZED: "unauthorized",
};

/** The reason of a rejection that sheds load, or undefined for any other outcome. */
function shedReason(error: Error | undefined): string | undefined {
  return error instanceof ApiError ? SHED_REASONS[error.code] : undefined;
}

/** Builds the Hono app for a deployment. */
export function createApp(options: AppOptions): CortexApp {
  const { project, pools, logger } = options;
  const app = new Hono<AppEnv>();
  const stats = options.stats ?? new RequestStats();
  const activity = options.activity ?? new ConsoleActivity();
  const pacer = new ShedPacer();
  const rejections = new RejectionLog(logger);
  // Per-API counters and metric label children, bound once, not looked up per request.
  const perApi = new Map(project.apis.map((api) => [api.name, {
    stats: stats.of(api.name),
    metrics: options.metrics?.forApi(api.name),
  }]));

  app.use(async (c, next) => {
    const id = requestId(c.req.header("x-request-id"));
    c.set("requestId", id);
    c.set("api", undefined);
    c.set("keyId", undefined);
    c.set("queueMs", undefined);
    c.set("batchSize", undefined);
    c.set("streamEnd", undefined);
    const started = performance.now();
    await next();
    c.res.headers.set("x-request-id", id);
    const api = c.get("api");
    if (api === undefined) return;
    const record = (status: number, extra: Record<string, unknown>) => {
      const ms = performance.now() - started;
      const bound = perApi.get(api)!;
      bound.stats.record(status, ms);
      activity.record(api, status, ms, id);
      const queueMs = c.get("queueMs");
      bound.metrics?.observe(status, ms / 1000, queueMs === undefined ? undefined : queueMs / 1000);
      const shed = rejections.perRequest ? undefined : shedReason(c.error);
      if (shed !== undefined) {
        rejections.count("requests rejected", { api, status, reason: shed });
        return;
      }
      logger.info("request", {
        request_id: id,
        api,
        method: c.req.method,
        path: c.req.path,
        status,
        latency_ms: round(ms),
        queue_ms: queueMs,
        batch_size: c.get("batchSize"),
        key_id: c.get("keyId"),
        ...extra,
      });
    };
    // A stream is logged when it ends, with 499 if its client went away.
    const streamEnd = c.get("streamEnd");
    if (streamEnd === undefined) return record(c.res.status, {});
    streamEnd.then((end) => {
      if (end.error !== undefined) logFailure(c, end.error, options);
      record(end.status, {
        stream_items: end.items,
        ...(end.error ? { stream_error: end.error.message } : {}),
      });
    });
  });

  const cors = corsMiddleware(options.cors ?? { kind: "any" });
  if (cors !== undefined) project.apis.forEach((api) => app.use(api.endpoint, cors));
  if (options.keys !== undefined) app.use(requireApiKey(options.keys, logger, rejections));

  for (const api of project.apis) {
    const pool = pools.get(api.name);
    if (pool === undefined) throw new Error(`No pool for api ${api.name}`);
    const metrics = options.metrics;
    if (api.batching !== undefined && metrics !== undefined) {
      pool.addBatchListener((size) => metrics.observeBatch(api.name, size));
    }
    const batched = api.batching !== undefined;
    app.post(api.endpoint, async (c) => {
      c.set("api", api.name);
      // Shed before reading and checking the body: a refusal must cost little.
      const refused = pool.refusal();
      if (refused !== undefined) throw refused;
      const body = await readBody(c.req.raw, options.maxBodyBytes);
      checkNotEmpty(body);
      const debug = c.req.query("debug") === "true";
      const prediction = await pool.submit(body, {
        debug,
        signal: c.req.raw.signal,
        onBatch: batched ? (size) => c.set("batchSize", size) : undefined,
      });
      c.set("queueMs", round(prediction.queueMs));
      const answer = prediction.answer;
      if (answer.type === "stream") {
        const ended = Promise.withResolvers<StreamEnd>();
        c.set("streamEnd", ended.promise);
        const fields = { api: api.name, requestId: c.get("requestId"), debug: options.debug };
        return streamResponse(answer.stream, streamFormat(c.req.header("accept")), fields, ended.resolve);
      }
      if (api.tracker !== undefined) options.metrics?.track(api.name, api.tracker, answer.body);
      return c.body(answer.body as Uint8Array<ArrayBuffer>, 200, JSON_HEADERS);
    });
    app.get(api.endpoint, (c) => {
      const status = apiStatus(pool, api.endpoint);
      return c.json({
        api: api.name,
        endpoint: api.endpoint,
        status: status.status,
        replicas: status.replicas,
        batching: batchingOf(api),
        last_error: status.last_error ?? null,
        usage: `POST a JSON sample to ${api.endpoint}; the answer is predict's return value as JSON`,
        example:
          `curl -X POST -H 'content-type: application/json' -d @sample.json http://HOST:PORT${api.endpoint}`,
      });
    });
    app.all(api.endpoint, (c) => {
      c.set("api", api.name);
      throw new ApiError("METHOD_NOT_ALLOWED", `Use POST to predict or GET to describe ${api.endpoint}`, {
        headers: { allow: "GET, POST" },
      });
    });
  }

  const statuses = () => project.apis.map((api) => apiStatus(pools.get(api.name)!, api.endpoint));

  app.get("/livez", (c) => c.json({ ok: true }));
  app.get("/healthz", (c) => {
    const all = statuses();
    if (all.every((s) => s.status === "ready")) return c.json({ ok: true });
    // With keys on, the open probe reveals no API names or error text.
    if (options.keys !== undefined) return c.json({ ok: false }, 503, { "retry-after": "1" });
    return c.json(
      {
        ok: false,
        apis: Object.fromEntries(
          all.map((s) => [s.name, { status: s.status, last_error: s.last_error ?? null }]),
        ),
      },
      503,
      { "retry-after": "1" },
    );
  });
  addConsoleRoutes(app, { project, pools, stats, activity });
  app.get("/", (c) => {
    if (wantsConsolePage(c)) return consolePage(c);
    c.header("vary", "Accept");
    return c.json({
      deployment: project.deployment.name,
      apis: statuses().map((s) => ({
        ...s,
        batching: batchingOf(project.apis.find((api) => api.name === s.name)!),
        last_error: s.last_error ?? null,
        ...stats.of(s.name).snapshot(),
      })),
    });
  });
  const metrics = options.metrics;
  if (metrics !== undefined) {
    app.get("/metrics", (c) => {
      const { body, contentType } = metrics.render();
      return c.body(body, 200, { "content-type": contentType });
    });
  }
  for (const path of ["/", "/livez", "/healthz", ...(metrics === undefined ? [] : ["/metrics"])]) {
    app.all(path, () => {
      throw new ApiError("METHOD_NOT_ALLOWED", `Use GET for ${path}`, { headers: { allow: "GET" } });
    });
  }

  app.notFound((c) =>
    errorResponse(c, new ApiError("NOT_FOUND", `No route for ${c.req.method} ${c.req.path}`), options)
  );
  app.onError((error, c) => {
    if (shedReason(error) !== undefined) {
      return pacer.answer(() => errorResponse(c, error as ApiError, options));
    }
    if (error instanceof ApiError) return errorResponse(c, error, options);
    logger.error("unhandled error", {
      request_id: c.get("requestId"),
      error: error instanceof Error ? (error.stack ?? error.message) : String(error),
    });
    return errorResponse(c, new ApiError("INTERNAL", "Internal server error"), options);
  });

  return { app, stats, activity };
}

function logFailure(c: Context<AppEnv>, error: ApiError, options: AppOptions): void {
  if (error.detail !== undefined && error.status >= 500) {
    options.logger.error("request failed", {
      request_id: c.get("requestId"),
      api: c.get("api"),
      code: error.code,
      error: error.message,
    });
  }
}

function errorResponse(c: Context<AppEnv>, error: ApiError, options: AppOptions): Response {
  const api = c.get("api");
  logFailure(c, error, options);
  // Nobody reads it: the status is for the request log (nginx's 499).
  if (error.code === "CLIENT_CLOSED") return new Response(null, { status: 499 });
  const body: Record<string, unknown> = {
    error: error.message,
    api: api ?? null,
    request_id: c.get("requestId"),
  };
  if (options.debug && error.detail) body.traceback = error.detail;
  const headers: Record<string, string> = { ...error.headers };
  if (error.retryAfter !== undefined) headers["retry-after"] = String(error.retryAfter);
  return c.json(body, error.status as Exclude<ErrorStatus, 499>, headers);
}

/** An API's `server_side_batching` as `GET /` and `GET <endpoint>` show it; null when off. */
function batchingOf(api: ResolvedApi): { max_batch_size: number; batch_interval_ms: number } | null {
  const batching = api.batching;
  if (batching === undefined) return null;
  return { max_batch_size: batching.maxBatchSize, batch_interval_ms: batching.batchIntervalMs };
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
