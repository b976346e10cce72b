/**
 * The prediction route, `POST <endpoint>`, answered before the Hono router:
 * it is the hot path, and this saves Hono's context, its variable map and
 * the middleware chain on every prediction. It goes through the steps the
 * app's middleware takes for every other route (request id, API key, CORS
 * headers, error answers, the access log) by calling the same functions
 * (./steps.ts).
 *
 * @module
 */
import { getQueryParam } from "hono/utils/url";
import { parsesByContentType, type ResolvedApi } from "../config/types.ts";
import type { Logger } from "../log/logger.ts";
import type { ApiPool, Prediction } from "../supervision/pool.ts";
import type { RequestMeta } from "../python/envelope.ts";
import type { JobService } from "../jobs/service.ts";
import type { KeyCheck } from "./auth.ts";
import { type BodyLimits, checkNotEmpty, readBody } from "./body.ts";
import type { CorsRule } from "./cors.ts";
import { type ErrorAnswers, logFailure } from "./error_answer.ts";
import { type AccessLog, type Exchange, round } from "./exchange.ts";
import type { ServerMetrics } from "./metrics.ts";
import { prefersAsync, submitJob } from "./jobs.ts";
import { answerError, finishAnswer, jsonAnswerHeaders, openExchange, stampAnswer } from "./steps.ts";
import { streamFormat, streamResponse } from "./stream_body.ts";

/** What the prediction routes of an app share. */
export interface PredictContext {
  /** `--max-body` and the `--body-timeout` watch. */
  readonly body: BodyLimits;
  /** Include Python tracebacks in error bodies and stream errors (`--debug`). */
  readonly debug: boolean;
  readonly logger: Logger;
  readonly metrics: ServerMetrics | undefined;
  /** The API key step; none when keys are off. */
  readonly keys: KeyCheck | undefined;
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
    const shared = this.#shared;
    const api = this.#api;
    const pool = this.#pool;
    const headers = request.headers;
    const x = openExchange("POST", path, headers);
    if (shared.cors !== undefined) x.cors = shared.cors.ofRequest(headers);
    let response: Response;
    try {
      shared.keys?.check(x, headers);
      x.api = api.name;
      if (shared.jobs !== undefined && (api.async === true || prefersAsync(headers))) {
        return finishAnswer(shared.access, await submitJob(shared.jobs, api, request, shared.body), x);
      }
      // Shed before reading and checking the body: a refusal must cost little.
      const refused = pool.refusal();
      if (refused !== undefined) throw refused;
      const body = await readBody(request, shared.body);
      if (!this.#typed) checkNotEmpty(body);
      const prediction = await pool.submit(body, {
        debug: getQueryParam(request.url, "debug") === "true",
        client: request,
        onBatch: api.batching === undefined ? undefined : (size) => x.batchSize = size,
        request: this.#typed ? requestMeta(request) : undefined,
      });
      x.queueMs = round(prediction.queueMs);
      const answer = prediction.answer;
      if (answer.type === "body" && prediction.status !== undefined) {
        if (api.tracker !== undefined && isJson(prediction.contentType)) {
          shared.metrics?.track(api.name, api.tracker, answer.body);
        }
        return finishAnswer(shared.access, typedResponse(answer.body, prediction), x);
      }
      if (answer.type === "body") {
        if (api.tracker !== undefined) shared.metrics?.track(api.name, api.tracker, answer.body);
        // The usual answer: every header in one init, nothing added afterwards.
        response = new Response(answer.body as Uint8Array<ArrayBuffer>, { headers: jsonAnswerHeaders(x) });
        shared.access.finish(x, 200);
        return response;
      }
      response = this.#stream(answer.stream, request, x);
    } catch (error) {
      return finishAnswer(shared.access, await answerError(shared.errors, error, x), x);
    }
    stampAnswer(response.headers, x);
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

/** True for `application/json` and `...+json` content types. */
function isJson(contentType: string | undefined): boolean {
  const type = contentType?.split(";", 1)[0]?.trim().toLowerCase() ?? "";
  return type === "application/json" || type.endsWith("+json");
}

/** The HTTP answer of a typed prediction: its status, content type and headers (ours are stamped after). */
function typedResponse(body: Uint8Array, prediction: Prediction): Response {
  const headers = new Headers();
  for (const [name, value] of prediction.headers ?? []) headers.append(name, value);
  if (prediction.contentType !== undefined && prediction.contentType !== "") {
    headers.set("content-type", prediction.contentType);
  }
  const status = prediction.status ?? 200;
  const empty = status === 204 || status === 304 || (status >= 100 && status < 200);
  return new Response(empty ? null : body as Uint8Array<ArrayBuffer>, { status, headers });
}
