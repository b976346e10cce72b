/**
 * The HTTP surface (README, "HTTP API") as a Hono app: a pure `fetch` handler built from
 * the resolved project and the API pools. Binding a socket is `main.ts`'s job.
 */
import { Hono } from "hono";
import { getPath } from "hono/utils/url";
import { parsesByContentType, type ResolvedApi, type ResolvedProject } from "../config/types.ts";
import type { Logger } from "../log/logger.ts";
import { cutText } from "../log/cut_text.ts";
import { ApiError } from "../errors/api_error.ts";
import type { KeyStore } from "../security/api_keys.ts";
import { KeyCheck, requireApiKey } from "./auth.ts";
import { BodyWatch } from "./body_watch.ts";
import { DirectReads } from "./body.ts";
import { corsMiddleware, type CorsPolicy, corsRule } from "./cors.ts";
import type { ServerMetrics } from "./metrics.ts";
import type { ApiPool } from "../supervision/pool.ts";
import { RequestStats } from "./stats.ts";
import { apiStatus } from "./status.ts";
import { RejectionLog, ShedPacer } from "./shedding.ts";
import type { AppEnv } from "./app_env.ts";
import { ConsoleActivity } from "./console/activity.ts";
import { addConsoleRoutes, consolePage, wantsConsolePage } from "./console/routes.ts";
import { AccessLog } from "./exchange.ts";
import { ErrorAnswers } from "./error_answer.ts";
import { type PredictContext, PredictRoute } from "./predict.ts";
import { answerError, finishAnswer, openExchange } from "./steps.ts";
import type { JobService } from "../jobs/service.ts";
import { addJobRoutes } from "./jobs.ts";
import { addOpenApiRoute } from "./openapi.ts";
import { addInferenceV2Routes } from "./inference_v2.ts";
import { startTracing, tracingEnabled } from "./tracing.ts";
import { SplitRoute, splitterStatus } from "./splitter.ts";

export type { AppEnv };

/** Everything the app reads. */
export interface AppOptions {
  readonly project: ResolvedProject;
  /** One pool per API, by API name. */
  readonly pools: ReadonlyMap<string, ApiPool>;
  readonly maxBodyBytes: number;
  /**
   * Watches the idle gap of request bodies (`--body-timeout`: no byte for
   * that long is answered 408); pass the server's own to keep it across
   * reloads and show it in the metrics. Default: a watch of 30 s.
   */
  readonly bodyWatch?: BodyWatch;
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
  /** Durable jobs (docs/async.md): `Prefer: respond-async`, `async: true` APIs and the job routes; none when absent. */
  readonly jobs?: JobService | undefined;
  /** The server's version, for `GET /openapi.json` and `GET /v2`. */
  readonly version?: string;
}

/** The app and the counters it keeps. */
export interface CortexApp {
  readonly app: Hono<AppEnv>;
  readonly stats: RequestStats;
  readonly activity: ConsoleActivity;
}

/** Builds the Hono app for a deployment. */
export function createApp(options: AppOptions): CortexApp {
  const { project, pools, logger } = options;
  const app = new Hono<AppEnv>();
  const traced = tracingEnabled() ? startTracing(app, { project, pools, logger }) : undefined;
  const stats = options.stats ?? new RequestStats();
  const activity = options.activity ?? new ConsoleActivity();
  const pacer = new ShedPacer();
  const rejections = new RejectionLog(logger);
  // Per-API counters and metric label children, bound once, not looked up per request.
  const perApi = new Map(project.apis.map((api) => [api.name, {
    stats: stats.of(api.name),
    metrics: options.metrics?.forApi(api.name),
  }]));

  const errors = new ErrorAnswers(options, pacer);
  const access = new AccessLog(logger, perApi, activity, rejections);
  const cors = corsRule(options.cors ?? { kind: "any" });

  const keys = options.keys === undefined ? undefined : new KeyCheck(options.keys, logger, rejections);

  // Every route but the predictions (below), with the steps of ./steps.ts:
  // the request id, the CORS headers and the id on the answer, and the
  // access log of requests that reached an API (its 405s).
  app.use(async (c, next) => {
    const x = openExchange(c.req.method, c.req.path, c.req.raw.headers);
    c.set("exchange", x);
    await next();
    finishAnswer(access, c.res, x);
  });
  if (cors !== undefined) {
    const middleware = corsMiddleware(cors);
    project.apis.forEach((api) => app.use(api.endpoint, middleware));
    // The job routes (`<endpoint>/<id>`, `<endpoint>/<id>/cancel`): a browser cancels with POST.
    if (options.jobs !== undefined) project.apis.forEach((api) => app.use(`${api.endpoint}/*`, middleware));
    // The Open Inference Protocol's routes predict too, and browser tools read the OpenAPI document.
    for (const path of ["/v2", "/v2/*", "/openapi.json"]) app.use(path, middleware);
    (project.splitters ?? []).forEach((splitter) => app.use(splitter.endpoint, middleware));
  }
  if (keys !== undefined) app.use(requireApiKey(keys));

  /** `POST <endpoint>` of each API and splitter, by endpoint. */
  const predictions = new Map<string, PredictRoute | SplitRoute>();
  const routesByApi = new Map<string, PredictRoute>();
  const shared: PredictContext = {
    body: {
      maxBytes: options.maxBodyBytes,
      watch: options.bodyWatch ?? new BodyWatch(),
      direct: new DirectReads(),
    },
    debug: options.debug,
    logger,
    metrics: options.metrics,
    keys,
    cors,
    errors,
    access,
    jobs: options.jobs,
  };
  for (const api of project.apis) {
    const pool = pools.get(api.name);
    if (pool === undefined) throw new Error(`No pool for api ${api.name}`);
    const metrics = options.metrics;
    if (api.batching !== undefined && metrics !== undefined) {
      pool.addBatchListener((size) => metrics.observeBatch(api.name, size));
    }
    const route = new PredictRoute(api, pool, shared);
    predictions.set(api.endpoint, route);
    routesByApi.set(api.name, route);
    app.get(api.endpoint, (c) => {
      const status = apiStatus(pool, api.endpoint, options.jobs?.depth(api.name));
      return c.json({
        api: api.name,
        endpoint: api.endpoint,
        status: status.status,
        replicas: status.replicas,
        batching: batchingOf(api),
        last_error: status.last_error ?? null,
        async: api.async === true,
        jobs: status.jobs,
        usage: api.async === true && options.jobs !== undefined
          ? `POST a sample to ${api.endpoint}: 202 with a job id; GET ${api.endpoint}/<id> for its result`
          : parsesByContentType(api.pythonInterface)
          ? `POST a payload to ${api.endpoint}: JSON, text, a form or bytes, by its Content-Type`
          : `POST a JSON sample to ${api.endpoint}; the answer is predict's return value as JSON`,
        example:
          `curl -X POST -H 'content-type: application/json' -d @sample.json http://HOST:PORT${api.endpoint}`,
      });
    });
    app.all(api.endpoint, (c) => {
      c.get("exchange").api = api.name;
      throw new ApiError("METHOD_NOT_ALLOWED", `Use POST to predict or GET to describe ${api.endpoint}`, {
        headers: { allow: "GET, POST" },
      });
    });
  }

  const jobs = options.jobs;
  // After every API's own routes: an endpoint may sit below another's.
  if (jobs !== undefined) project.apis.forEach((api) => addJobRoutes(app, api, jobs));

  const apiEndpoints = new Map(project.apis.map((api) => [api.name, api.endpoint]));
  const splitters = project.splitters ?? [];
  for (const splitter of splitters) {
    predictions.set(splitter.endpoint, new SplitRoute(splitter, routesByApi));
    app.get(splitter.endpoint, (c) => c.json(splitterStatus(splitter, pools, apiEndpoints)));
    app.all(splitter.endpoint, () => {
      throw new ApiError(
        "METHOD_NOT_ALLOWED",
        `Use POST to predict or GET to describe ${splitter.endpoint}`,
        {
          headers: { allow: "GET, POST" },
        },
      );
    });
  }

  const statuses = () =>
    project.apis.map((api) => apiStatus(pools.get(api.name)!, api.endpoint, jobs?.depth(api.name)));

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
  addConsoleRoutes(app, { project, pools, stats, activity, jobs });
  const version = options.version ?? "unknown";
  addOpenApiRoute(app, {
    project,
    version,
    metrics: options.metrics !== undefined,
    keys: options.keys !== undefined,
    jobs: options.jobs !== undefined,
  });
  addInferenceV2Routes(app, { ...options, version, body: shared.body, errors });
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
      ...(splitters.length === 0
        ? {}
        : { splitters: splitters.map((splitter) => splitterStatus(splitter, pools, apiEndpoints)) }),
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

  app.notFound((c) => {
    // The path is the client's: echoed up to a few KiB (URLs may be 64 KiB long).
    const error = new ApiError("NOT_FOUND", `No route for ${c.req.method} ${cutText(c.req.path, 1024)}`);
    return answerError(errors, error, c.get("exchange"));
  });
  app.onError((error, c) => answerError(errors, error, c.get("exchange")));

  // Predictions skip the router and the middleware (see ./predict.ts); the
  // path is the one the router would see.
  const route = app.fetch;
  app.fetch = (request, env, executionCtx) => {
    if (request.method === "POST") {
      const path = getPath(request);
      const prediction = predictions.get(path);
      if (prediction !== undefined) return prediction.handle(request, path);
    }
    return route(request, env, executionCtx);
  };

  traced?.(app);
  return { app, stats, activity };
}

/** An API's `server_side_batching` as `GET /` and `GET <endpoint>` show it; null when off. */
function batchingOf(api: ResolvedApi): { max_batch_size: number; batch_interval_ms: number } | null {
  const batching = api.batching;
  if (batching === undefined) return null;
  return { max_batch_size: batching.maxBatchSize, batch_interval_ms: batching.batchIntervalMs };
}
