/**
 * The HTTP answer of a streamed prediction (a `predict` that returns a
 * generator; README, "Streaming and cancellation"): Server-Sent Events
 * when the client accepts `text/event-stream`, else chunked
 * `application/x-ndjson`. The body is pulled: the next item is taken from
 * the worker only when the client has read the previous one, so a slow
 * reader holds the worker's generator (see src/python/predict_stream.ts)
 * instead of making the server buffer.
 */
import { ApiError } from "../errors/api_error.ts";
import { echoedError, echoedTraceback } from "../log/cut_text.ts";

/** How the items are framed. */
export type StreamFormat = "sse" | "ndjson";

/** How a stream ended, for the request log. */
export interface StreamEnd {
  /** 200, or 499 when the client went away before the end. */
  readonly status: 200 | 499;
  readonly items: number;
  /** The error that ended the stream early, if any. */
  readonly error: ApiError | undefined;
}

/** What the error event or line carries besides the message. */
export interface StreamErrorFields {
  readonly api: string;
  readonly requestId: string;
  /** Include tracebacks (`--debug`). */
  readonly debug: boolean;
}

/** SSE when `accept` names `text/event-stream`, else NDJSON. */
export function streamFormat(accept: string | undefined): StreamFormat {
  return accept !== undefined && /(^|,)\s*text\/event-stream\s*(;|,|$)/i.test(accept) ? "sse" : "ndjson";
}

const encoder = new TextEncoder();
const SSE_DATA = encoder.encode("data: ");
const SSE_END = encoder.encode("\n\n");
const NEWLINE = encoder.encode("\n");

/** One item as SSE `data:` event or NDJSON line; JSON from the worker never holds a raw newline. */
function frameItem(format: StreamFormat, item: Uint8Array): Uint8Array {
  const head = format === "sse" ? SSE_DATA : undefined;
  const tail = format === "sse" ? SSE_END : NEWLINE;
  const out = new Uint8Array((head?.byteLength ?? 0) + item.byteLength + tail.byteLength);
  let at = 0;
  if (head) {
    out.set(head);
    at = head.byteLength;
  }
  out.set(item, at);
  out.set(tail, at + item.byteLength);
  return out;
}

function frameEvent(format: StreamFormat, event: string, value: unknown): Uint8Array {
  const json = JSON.stringify(value);
  return encoder.encode(format === "sse" ? `event: ${event}\ndata: ${json}\n\n` : `${json}\n`);
}

/**
 * A streaming Response for `items`. SSE ends with `event: done` (data
 * `{"items": N}`); a failure after the start ends it with `event: error`
 * (SSE) or a last line `{"error": ...}` (NDJSON). `onEnd` is called once,
 * when the stream finished, failed or the client went away.
 */
export function streamResponse(
  items: AsyncIterable<Uint8Array>,
  format: StreamFormat,
  fields: StreamErrorFields,
  onEnd: (end: StreamEnd) => void,
): Response {
  const iterator = items[Symbol.asyncIterator]();
  let count = 0;
  let ended = false;
  const end = (status: 200 | 499, error: ApiError | undefined) => {
    if (ended) return;
    ended = true;
    onEnd({ status, items: count, error });
  };
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      let next: IteratorResult<Uint8Array>;
      try {
        next = await iterator.next();
      } catch (error) {
        const apiError = error instanceof ApiError
          ? error
          : new ApiError("INTERNAL", "Internal server error");
        // After the client went away (cancel below) the controller takes nothing more.
        if (apiError.code === "CLIENT_CLOSED" || ended) {
          if (!ended) controller.close();
          return end(499, undefined);
        }
        const payload: Record<string, unknown> = {
          error: echoedError(apiError.message),
          api: fields.api,
          request_id: fields.requestId,
        };
        if (fields.debug && apiError.detail) {
          payload.traceback = echoedTraceback(apiError.detail);
        }
        controller.enqueue(frameEvent(format, "error", payload));
        controller.close();
        return end(200, apiError);
      }
      if (ended) return; // the client left while the item was on its way
      if (next.done) {
        if (format === "sse") controller.enqueue(frameEvent(format, "done", { items: count }));
        controller.close();
        return end(200, undefined);
      }
      count++;
      controller.enqueue(frameItem(format, next.value));
    },
    async cancel() {
      end(499, undefined);
      await iterator.return?.();
    },
  }, { highWaterMark: 0 });
  const headers: Record<string, string> = format === "sse"
    ? { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" }
    : { "content-type": "application/x-ndjson" };
  return new Response(body, { status: 200, headers: { ...headers, "x-accel-buffering": "no" } });
}
