/**
 * The one call from a job into a pool: a stored request in, an outcome for
 * the store out. Everything that knows the shape of {@link ApiPool.submit}'s
 * options and answer is here, so a change there is adapted in this file.
 *
 * @module
 */
import { ApiError, type ErrorCode } from "../errors/api_error.ts";
import type { ApiPool } from "../supervision/pool.ts";
import type { JobOutcome, JobRequest } from "./job.ts";

/** Largest streamed answer collected into a job's result. */
export const MAX_STREAMED_RESULT_BYTES = 64 * 1024 * 1024;

/** Errors after which the job goes back to the queue without counting a try: it never ran. */
const NEVER_RAN: ReadonlySet<ErrorCode> = new Set([
  "NOT_READY",
  "QUEUE_FULL",
  "QUEUE_TIMEOUT",
  "SHUTTING_DOWN",
]);
/** Errors that mean the worker was lost under the job: a try, retried until --job-attempts. */
const CRASHED: ReadonlySet<ErrorCode> = new Set(["WORKER_DIED", "OUT_OF_MEMORY"]);

/**
 * Runs `request` on `pool`; `signal` cancels it (the pool's client-gone
 * path). With `typed` (the API's worker parses the payload by
 * Content-Type) the stored content type, query and headers go with the body,
 * the job's id as its `x-request-id` (Cortex's AsyncAPI `request_id`), and
 * the answer brings its own content type and status. Never rejects: every
 * ending is an outcome.
 */
export async function predictJob(
  pool: ApiPool,
  request: JobRequest,
  signal: AbortSignal,
  typed?: { readonly jobId: string },
): Promise<JobOutcome> {
  try {
    const prediction = await pool.submit(request.body, {
      debug: new URLSearchParams(request.query).get("debug") === "true",
      signal,
      request: typed === undefined ? undefined : {
        contentType: request.contentType,
        query: request.query,
        headers: [...Object.entries({ ...request.headers, "x-request-id": typed.jobId })],
      },
    });
    const answer = prediction.answer;
    const body = answer.type === "body" ? answer.body : await collectStream(answer.stream);
    const contentType = prediction.contentType || "application/json";
    return { kind: "completed", result: { body, contentType, status: prediction.status ?? 200 } };
  } catch (error) {
    if (!(error instanceof ApiError)) return { kind: "failed", error: String(error) };
    if (NEVER_RAN.has(error.code)) return { kind: "released" };
    if (CRASHED.has(error.code)) return { kind: "crashed", error: error.message };
    return { kind: "failed", error: error.message };
  }
}

/** A streamed answer's items (JSON each) as one JSON array. */
async function collectStream(stream: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let total = 2;
  for await (const item of stream) {
    total += item.length + 1;
    if (total > MAX_STREAMED_RESULT_BYTES) {
      throw new ApiError("PREDICT_FAILED", `The streamed answer is over ${MAX_STREAMED_RESULT_BYTES} bytes`);
    }
    parts.push(item);
  }
  const out = new Uint8Array(Math.max(total - (parts.length > 0 ? 1 : 0), 2));
  let at = 0;
  out[at++] = 0x5b; // [
  parts.forEach((part, i) => {
    if (i > 0) out[at++] = 0x2c; // ,
    out.set(part, at);
    at += part.length;
  });
  out[at] = 0x5d; // ]
  return out;
}
