/**
 * Error answers: `{"error": message, "api": ..., "request_id": ...}` (or the
 * Open Inference Protocol's `{"error": message}` on its routes) with the
 * error's status and headers; load shedding answers paced (./shedding.ts);
 * anything but an {@link ApiError} logged and answered with a bare 500.
 *
 * @module
 */
import { ApiError, type ErrorStatus } from "../errors/api_error.ts";
import { echoedError, echoedTraceback } from "../log/cut_text.ts";
import type { Logger } from "../log/logger.ts";
import { shedReason } from "./exchange.ts";
import type { ShedPacer } from "./shedding.ts";

/** What error answers depend on. */
export interface ErrorAnswerOptions {
  /** Include Python tracebacks in error bodies (`--debug`). */
  readonly debug: boolean;
  readonly logger: Logger;
}

/** Logs a failure of the server or the worker (5xx with detail) once. */
export function logFailure(
  logger: Logger,
  error: ApiError,
  api: string | undefined,
  requestId: string | undefined,
): void {
  if (error.detail !== undefined && error.status >= 500) {
    logger.error("request failed", {
      request_id: requestId,
      api,
      code: error.code,
      error: echoedError(error.message),
    });
  }
}

/**
 * The shape of an error answer's body: `"cortex"`, `{"error", "api",
 * "request_id"}`, or `"v2"`, the Open Inference Protocol's `{"error"}`.
 */
export type ErrorBody = "cortex" | "v2";

/** The answer to `error`. */
export function errorResponse(
  error: ApiError,
  api: string | undefined,
  requestId: string | undefined,
  options: ErrorAnswerOptions,
  shape: ErrorBody = "cortex",
): Response {
  logFailure(options.logger, error, api, requestId);
  // Nobody reads it: the status is for the request log (nginx's 499).
  if (error.status === 499) return new Response(null, { status: 499 });
  // Capped here too, whatever made the error: an answer never echoes more than a few KiB.
  const body: Record<string, unknown> = shape === "v2" ? { error: echoedError(error.message) } : {
    error: echoedError(error.message),
    api: api ?? null,
    request_id: requestId,
  };
  if (options.debug && error.detail) body.traceback = echoedTraceback(error.detail);
  const headers: Record<string, string> = { "content-type": "application/json", ...error.headers };
  if (error.retryAfter !== undefined) headers["retry-after"] = String(error.retryAfter);
  // Through a Headers object, as the app always answered errors: the headers go out sorted by name.
  return new Response(JSON.stringify(body), {
    status: error.status as Exclude<ErrorStatus, 499>,
    headers: new Headers(headers),
  });
}

/** Answers errors thrown while handling a request; shed requests a few per event-loop turn. */
export class ErrorAnswers {
  readonly #options: ErrorAnswerOptions;
  readonly #pacer: ShedPacer;

  constructor(options: ErrorAnswerOptions, pacer: ShedPacer) {
    this.#options = options;
    this.#pacer = pacer;
  }

  /** The answer to `error`, thrown while handling request `requestId` of `api`, with a body of `shape`. */
  answer(
    error: unknown,
    api: string | undefined,
    requestId: string | undefined,
    shape: ErrorBody = "cortex",
  ): Response | Promise<Response> {
    const options = this.#options;
    if (error instanceof ApiError) {
      if (shedReason(error) === undefined) return errorResponse(error, api, requestId, options, shape);
      return this.#pacer.answer(() => errorResponse(error, api, requestId, options, shape));
    }
    options.logger.error("unhandled error", {
      request_id: requestId,
      error: echoedTraceback(error instanceof Error ? (error.stack ?? error.message) : String(error)),
    });
    return errorResponse(new ApiError("INTERNAL", "Internal server error"), api, requestId, options, shape);
  }
}
