/**
 * The steps every request goes through, whichever way it is answered: by
 * the Hono router and the app's middleware (./app.ts), or by the prediction
 * fast path that skips them (./predict.ts). Each step is written once, as a
 * plain function both call:
 *
 * 1. {@link openExchange}: the request id (the client's if sane, else a new
 *    one) and the {@link Exchange} that carries the request to the log;
 * 2. the API key ({@link KeyCheck.check} in ./auth.ts);
 * 3. the CORS decision ({@link CorsRule.ofRequest} in ./cors.ts), kept in
 *    the exchange as headers made once per decision;
 * 4. {@link answerError}: the answer to a thrown error;
 * 5. {@link stampAnswer}: the CORS headers and the request id on an answer
 *    (or {@link jsonAnswerHeaders}: the same, in the one header record of
 *    a prediction's JSON answer);
 * 6. the access log, counters and metrics ({@link AccessLog.finish} in
 *    ./exchange.ts), once the status is known (a stream's when it ends);
 *    {@link finishAnswer} takes steps 5 and 6 for an answer made whole.
 *
 * Nothing here allocates beyond the exchange and the answer's headers.
 *
 * @module
 */
import type { CorsRule } from "./cors.ts";
import type { KeyCheck } from "./auth.ts";
import type { ErrorAnswers, ErrorBody } from "./error_answer.ts";
import { type AccessLog, Exchange } from "./exchange.ts";
import { requestId } from "./request_id.ts";

export type { AccessLog, CorsRule, KeyCheck };

/** Step 1: the exchange of a request that arrived now, with its request id. */
export function openExchange(method: string, path: string, headers: Headers): Exchange {
  return new Exchange(requestId(headers.get("x-request-id") ?? undefined), method, path, performance.now());
}

/**
 * Step 4: the answer to `error`, thrown while handling request `x` (none
 * when it failed before it had one), its body of `shape`; the error is
 * kept for the access log.
 */
export function answerError(
  errors: ErrorAnswers,
  error: unknown,
  x: Exchange | undefined,
  shape: ErrorBody = "cortex",
): Response | Promise<Response> {
  if (x === undefined) return errors.answer(error, undefined, undefined, shape);
  x.error = error instanceof Error ? error : undefined;
  return errors.answer(error, x.api, x.requestId, shape);
}

/** Step 5: the CORS headers of the request's route and its request id, on its answer. */
export function stampAnswer(headers: Headers, x: Exchange): void {
  x.cors.addTo(headers);
  headers.set("x-request-id", x.requestId);
}

/**
 * Step 5 for a JSON answer made at once: `content-type`, the CORS headers
 * and the request id in one record (the answer is built with every header
 * in its init, nothing added afterwards).
 */
export function jsonAnswerHeaders(x: Exchange): Record<string, string> {
  return { ...x.cors.json, "x-request-id": x.requestId };
}

/** Steps 5 and 6 for an answer made whole: its headers stamped, the request logged. */
export function finishAnswer(access: AccessLog, response: Response, x: Exchange): Response {
  stampAnswer(response.headers, x);
  access.finish(x, response.status);
  return response;
}
