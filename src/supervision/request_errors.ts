/**
 * What a client is told when its request fails in or with the worker: the
 * mapping from worker failures (a Python error, a worker lost, a cancel) to
 * the ApiErrors the HTTP layer answers.
 *
 * | failure                                      | code            | status |
 * | -------------------------------------------- | --------------- | ------ |
 * | `predict` raised                             | PREDICT_FAILED  | 500    |
 * | the worker could not parse the sample        | BAD_REQUEST     | 400    |
 * | `predict` raised MemoryError                 | OUT_OF_MEMORY   | 502    |
 * | the worker went over `compute.mem`           | OUT_OF_MEMORY   | 502    |
 * | the worker died, or the server stopped it    | WORKER_DIED     | 502    |
 * | the client went away                         | CLIENT_CLOSED   | 499    |
 * | `--predict-timeout` passed                   | PREDICT_TIMEOUT | 504    |
 *
 * @module
 */
import { ApiError } from "../errors/api_error.ts";
import { PredictFailedError } from "../python/worker_process.ts";

/** Why a running request was cancelled: its client went away, or its deadline passed. */
export type CancelReason = "client" | "timeout";

/** What the replica knows when a request fails. */
export interface FailureContext {
  readonly api: string;
  /** Why the worker was killed for its memory (see ./memory_watch.ts), if it was. */
  readonly oom: string | undefined;
  /** True once the server is stopping the replica. */
  readonly stopping: boolean;
}

/** The answer to a cancelled request: 499 (client gone) or 504 (timeout). */
export function cancelError(reason: CancelReason): ApiError {
  if (reason === "client") return new ApiError("CLIENT_CLOSED", "The client closed the connection");
  return new ApiError(
    "PREDICT_TIMEOUT",
    "predict did not finish within --predict-timeout; it was cancelled",
  );
}

/** The ApiError for a request that failed with `error` (kept when it already is one). */
export function requestError(error: unknown, context: FailureContext): ApiError {
  if (error instanceof ApiError) return error;
  const api = context.api;
  if (error instanceof PredictFailedError) {
    if (error.kind === "out_of_memory") {
      return new ApiError("OUT_OF_MEMORY", error.message, { detail: error.traceback });
    }
    if (error.kind === "sample") {
      // The Cortex 0.17+ worker parses by Content-Type and words its own message.
      const own = error.message.startsWith("The request body");
      return new ApiError(
        "BAD_REQUEST",
        own ? error.message : `The request body is not valid JSON: ${error.message}`,
      );
    }
    return new ApiError("PREDICT_FAILED", error.message, { detail: error.traceback });
  }
  if (context.oom !== undefined) {
    return new ApiError("OUT_OF_MEMORY", `The worker of api ${api} ${context.oom}; it is restarting`);
  }
  const reason = error instanceof Error ? error.message : String(error);
  if (context.stopping) {
    return new ApiError(
      "WORKER_DIED",
      `The server stopped the worker of api ${api} before the request finished (${lowerFirst(reason)})`,
    );
  }
  return new ApiError(
    "WORKER_DIED",
    `The worker of api ${api} stopped during the request (${lowerFirst(reason)}); it is restarting`,
  );
}

/**
 * `stream` with its failures as ApiErrors (what the HTTP layer shows): a
 * cancelled request's stream fails with its cancel error.
 */
export async function* mapStreamErrors(
  stream: AsyncIterable<Uint8Array>,
  cancelled: () => CancelReason | undefined,
  context: () => FailureContext,
): AsyncGenerator<Uint8Array> {
  try {
    yield* stream;
  } catch (error) {
    const reason = cancelled();
    if (reason !== undefined) throw cancelError(reason);
    throw requestError(error, context());
  }
}

function lowerFirst(text: string): string {
  return text.charAt(0).toLowerCase() + text.slice(1);
}
