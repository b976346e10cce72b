/**
 * The prediction route, `POST <endpoint>`, answered before the Hono router:
 * it is the hot path, and this saves Hono's context, its variable map and
 * the middleware chain on every prediction. It does what the app's
 * middleware does for every other route (request id, CORS headers, API
 * keys, error answers, the access log) with the same functions.
 *
 * @module
 */
import { getQueryParam } from "hono/utils/url";
import { parsesByContentType, type ResolvedApi } from "../config/types.ts";
import type { Logger } from "../log/logger.ts";
import type { KeyStore } from "../security/api_keys.ts";
import type { ApiPool, Prediction } from "../supervision/pool.ts";
import type { RequestMeta } from "../python/envelope.ts";
import type { JobService } from "../jobs/service.ts";
import { authenticate, OPEN_PATHS } from "./auth.ts";
import { type BodyLimits, checkNotEmpty, readBody } from "./body.ts";
import type { CorsRule } from "./cors.ts";
import { type ErrorAnswers, logFailure } from "./error_answer.ts";
import { type AccessLog, Exchange, round } from "./exchange.ts";
import type { ServerMetrics } from "./metrics.ts";
import { prefersAsync, submitJob } from "./jobs.ts";
import { requestId } from "./request_id.ts";
import type { RejectionLog } from "./shedding.ts";
import { streamFormat, streamResponse } from "./stream_body.ts";

/** What the prediction routes of an app share. */
export interface PredictContext {
  /** `--max-body` and the `--body-timeout` watch. */
  readonly body: BodyLimits;
  /** Include Python tracebacks in error bodies and stream errors (`--debug`). */
  readonly debug: boolean;
  readonly logger: Logger;
  readonly metrics: ServerMetrics | undefined;
  readonly keys: KeyStore | undefined;
  readonly rejections: RejectionLog;
  /** CORS of the answers; none when off. */
  readonly cors: CorsRule | undefined;
  readonly errors: ErrorAnswers;
  readonly access: AccessLog;
  /** Durable jobs (docs/async.md); none when off (`--jobs off`). */
  readonly jobs: JobService | undefined;
}

/** `POST <endpoint>` of one API. */
export class PredictRoute {
  readonly #api: ResolvedApi;
  readonly #pool: ApiPool;
  readonly #shared: PredictContext;
  /** The payload is parsed by Content-Type and the answer types itself (Cortex 0.17+). */
  readonly #typed: boolean;

  constructor(api: ResolvedApi, pool: ApiPool, shared: PredictContext) {
    this.#api = api;
    this.#pool = pool;
    this.#shared = shared;
    this.#typed = parsesByContentType(api.pythonInterface);
  }

  /** Answers a prediction request; `path` is the request's (decoded) path. */
  async handle(request: Request, path: string): Promise<Response> {
    const started = performance.now();
    const shared = this.#shared;
    const api = this.#api;
    const pool = this.#pool;
    const headers = request.headers;
    const x = new Exchange(requestId(headers.get("x-request-id") ?? undefined), "POST", path, started);
    const cors = shared.cors;
    const origin = cors?.allowOriginOf(headers);
    let response: Response;
    try {
      if (shared.keys !== undefined && !OPEN_PATHS.has(path)) {
        x.keyId = authenticate(shared.keys, shared.logger, shared.rejections, headers, x);
      }
      x.api = api.name;
      if (shared.jobs !== undefined && (api.async === true || prefersAsync(headers))) {
        response = await submitJob(shared.jobs, api, request, shared.body);
        shared.access.finish(x, response.status);
        cors?.addTo(response.headers, origin);
        response.headers.set("x-request-id", x.requestId);
        return response;
      }
      // Shed before reading and checking the body: a refusal must cost little.
      const refused = pool.refusal();
      if (refused !== undefined) throw refused;
      const body = await readBody(request, shared.body);
      if (!this.#typed) checkNotEmpty(body);
      const prediction = await pool.submit(body, {
        debug: getQueryParam(request.url, "debug") === "true",
        signal: request.signal,
        onBatch: api.batching === undefined ? undefined : (size) => x.batchSize = size,
        request: this.#typed ? requestMeta(request) : undefined,
      });
      x.queueMs = round(prediction.queueMs);
      const answer = prediction.answer;
      if (answer.type === "body" && prediction.status !== undefined) {
        response = typedResponse(answer.body, prediction, x.requestId);
        if (api.tracker !== undefined && isJson(prediction.contentType)) {
          shared.metrics?.track(api.name, api.tracker, answer.body);
        }
        shared.access.finish(x, response.status);
      } else if (answer.type === "body") {
        if (api.tracker !== undefined) shared.metrics?.track(api.name, api.tracker, answer.body);
        // The usual answer: every header in one init, nothing added afterwards.
        response = new Response(answer.body as Uint8Array<ArrayBuffer>, {
          headers: bodyHeaders(cors, origin, x.requestId),
        });
        shared.access.finish(x, 200);
        return response;
      } else response = this.#stream(answer.stream, request, x);
    } catch (error) {
      x.error = error instanceof Error ? error : undefined;
      response = await shared.errors.answer(error, x.api, x.requestId);
      cors?.addTo(response.headers, origin);
      response.headers.set("x-request-id", x.requestId);
      shared.access.finish(x, response.status);
      return response;
    }
    cors?.addTo(response.headers, origin);
    response.headers.set("x-request-id", x.requestId);
    return response;
  }

  /** A streamed answer, logged when it ends, with 499 if its client went away. */
  #stream(stream: AsyncIterable<Uint8Array>, request: Request, x: Exchange): Response {
    const shared = this.#shared;
    const fields = { api: this.#api.name, requestId: x.requestId, debug: shared.debug };
    return streamResponse(stream, streamFormat(request.headers.get("accept") ?? undefined), fields, (end) => {
      if (end.error !== undefined) logFailure(shared.logger, end.error, x.api, x.requestId);
      shared.access.finish(x, end.status, end.items, end.error?.message);
    });
  }
}

/** What the worker is told of a request besides its body (Cortex 0.17+ dialects). */
export function requestMeta(request: Request): RequestMeta {
  const url = request.url;
  const mark = url.indexOf("?");
  const hash = url.indexOf("#", mark);
  const query = mark < 0 ? "" : url.slice(mark + 1, hash < 0 ? undefined : hash);
  return {
    contentType: request.headers.get("content-type") ?? "",
    query,
    headers: [...request.headers],
  };
}

/** True for `application/json` and `…+json` content types. */
function isJson(contentType: string | undefined): boolean {
  const type = contentType?.split(";", 1)[0]?.trim().toLowerCase() ?? "";
  return type === "application/json" || type.endsWith("+json");
}

/** The HTTP answer of a typed prediction: its status, content type and headers, then ours. */
function typedResponse(body: Uint8Array, prediction: Prediction, id: string): Response {
  const headers = new Headers();
  for (const [name, value] of prediction.headers ?? []) headers.append(name, value);
  if (prediction.contentType !== undefined && prediction.contentType !== "") {
    headers.set("content-type", prediction.contentType);
  }
  headers.set("x-request-id", id);
  const status = prediction.status ?? 200;
  const empty = status === 204 || status === 304 || (status >= 100 && status < 200);
  return new Response(empty ? null : body as Uint8Array<ArrayBuffer>, { status, headers });
}

/**
 * The headers of a prediction's answer, in one object: the same as an error
 * answer gets from {@link CorsRule.addTo} and the request id.
 */
function bodyHeaders(cors: CorsRule | undefined, origin: string | undefined, id: string): HeadersInit {
  if (cors === undefined) return { "content-type": "application/json", "x-request-id": id };
  if (origin === undefined) {
    return cors.vary
      ? { "content-type": "application/json", vary: "Origin", "x-request-id": id }
      : { "content-type": "application/json", "x-request-id": id };
  }
  return cors.vary
    ? {
      "content-type": "application/json",
      "access-control-allow-origin": origin,
      "access-control-expose-headers": cors.expose,
      vary: "Origin",
      "x-request-id": id,
    }
    : {
      "content-type": "application/json",
      "access-control-allow-origin": origin,
      "access-control-expose-headers": cors.expose,
      "x-request-id": id,
    };
}
