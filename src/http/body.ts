/**
 * Reading and checking a prediction request's body. Memory follows the bytes
 * that arrived, not the length a client declares: a declared length over
 * `--max-body` is refused before reading. A body of up to
 * {@link DIRECT_READ_BYTES} is read in one go (the runtime sizes its buffer
 * from the declared length), as long as the declared lengths of such reads in
 * progress stay within {@link DIRECT_READ_BUDGET}; anything else is read as a
 * stream into a buffer that grows with what was received, counted against
 * `--max-body` as it comes. So clients that declare lengths and send nothing
 * hold at most the budget, whatever their number.
 *
 * Every read is watched (./body_watch.ts): a streamed body is given up after
 * `--body-timeout` without a byte; a body read in one go shows no progress
 * until it is whole, so it gets `--body-timeout` per
 * {@link DIRECT_BYTES_PER_TIMEOUT} declared. Given up, it is answered 408. A
 * client that hangs up mid-body is a 499, not a server error.
 *
 * Why two reads: `arrayBuffer()` is the runtime's direct read, and costs a
 * third of reading the body stream (measured on 800 KB bodies, and 4× less
 * on small ones).
 *
 * @module
 */
import { ApiError } from "../errors/api_error.ts";
import type { BodyWatch } from "./body_watch.ts";
import { closeAfterAnswer } from "./close_after.ts";

/** Declared lengths up to this may be read in one go. */
export const DIRECT_READ_BYTES = 1024 * 1024;
/** A body read in one go may take `--body-timeout` per this many declared bytes (at least one). */
export const DIRECT_BYTES_PER_TIMEOUT = 64 * 1024;
/** The declared lengths of the direct reads in progress stay within this. */
export const DIRECT_READ_BUDGET = 16 * 1024 * 1024;
/** Smallest buffer of a streamed body, allocated with its first bytes; it doubles as more arrive. */
const FIRST_BUFFER_BYTES = 64 * 1024;
const EMPTY = new Uint8Array(0);

/** What a body read is held to. */
export interface BodyLimits {
  /** `--max-body`. */
  readonly maxBytes: number;
  /** Watches the idle gap (`--body-timeout`). */
  readonly watch: BodyWatch;
  /** Declared bytes of the direct reads in progress (see {@link DIRECT_READ_BUDGET}). */
  readonly direct: DirectReads;
}

/** The declared bytes of the direct reads in progress, of one app. */
export class DirectReads {
  bytes = 0;
}

/**
 * Reads the body, refusing more than `maxBytes` before buffering it all.
 *
 * @throws {ApiError} PAYLOAD_TOO_LARGE, BODY_TIMEOUT (no byte for
 *   `--body-timeout`), BODY_INCOMPLETE (the client went away mid-body)
 */
export function readBody(request: Request, limits: BodyLimits): Promise<Uint8Array> {
  const declared = request.headers.get("content-length");
  const length = declared === null ? NaN : Number(declared);
  // No length (chunked), or one the HTTP parser would have refused: count as it comes.
  if (!(length >= 0)) return readStream(request, undefined, limits);
  if (length > limits.maxBytes) return Promise.reject(tooLarge(limits.maxBytes));
  const direct = limits.direct;
  if (length <= DIRECT_READ_BYTES && direct.bytes + length <= DIRECT_READ_BUDGET) {
    return readDirect(request, length, limits);
  }
  return readStream(request, length, limits);
}

/**
 * A body in one read, without touching `request.body` first. (Not an async
 * function: one promise less per request.) When the watch gives up, the read
 * is left to fail once the answer is sent.
 */
function readDirect(request: Request, length: number, limits: BodyLimits): Promise<Uint8Array> {
  const { watch, direct } = limits;
  direct.bytes += length;
  return new Promise((resolve, reject) => {
    const read = watch.start(
      () => reject(timedOut(request, watch.timeoutMs)),
      Math.max(1, Math.ceil(length / DIRECT_BYTES_PER_TIMEOUT)),
    );
    request.arrayBuffer().then(
      (buffer) => {
        direct.bytes -= length;
        read.done();
        resolve(new Uint8Array(buffer));
      },
      (error: unknown) => {
        direct.bytes -= length;
        read.done();
        reject(incomplete(error));
      },
    );
  });
}

/** A body of unknown or large declared length, buffered as it arrives. */
async function readStream(
  request: Request,
  declared: number | undefined,
  limits: BodyLimits,
): Promise<Uint8Array> {
  if (request.body === null) return new Uint8Array(0);
  const reader = request.body.getReader();
  let gaveUp = false;
  const read = limits.watch.start(() => {
    gaveUp = true;
    reader.cancel().catch(() => {}); // the pending read ends: `done`
  });
  // Never more than the declared length, whatever arrives first.
  const cap = Math.min(declared ?? limits.maxBytes, limits.maxBytes);
  let buffer: Uint8Array = EMPTY;
  let total = 0;
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      read.progress();
      const end = total + value.byteLength;
      if (end > limits.maxBytes) throw tooLarge(limits.maxBytes);
      if (end > buffer.byteLength) buffer = grown(buffer, total, end, cap);
      buffer.set(value, total);
      total = end;
    }
  } catch (error) {
    if (gaveUp) throw timedOut(request, limits.watch.timeoutMs);
    reader.cancel().catch(() => {});
    throw error instanceof ApiError ? error : incomplete(error);
  } finally {
    read.done();
  }
  if (gaveUp) throw timedOut(request, limits.watch.timeoutMs);
  return total === buffer.byteLength ? buffer : buffer.subarray(0, total);
}

/** A buffer of at least `needed` bytes holding the first `used` of `buffer`: doubled, up to `cap`. */
function grown(buffer: Uint8Array, used: number, needed: number, cap: number): Uint8Array {
  const size = Math.max(needed, Math.min(Math.max(buffer.byteLength * 2, FIRST_BUFFER_BYTES), cap));
  const next = new Uint8Array(size);
  next.set(buffer.subarray(0, used));
  return next;
}

function tooLarge(maxBytes: number): ApiError {
  return new ApiError(
    "PAYLOAD_TOO_LARGE",
    `The request body is over the limit of ${maxBytes} bytes (--max-body)`,
  );
}

/** The 408 of a body that stopped arriving; its connection is closed once the answer is written. */
function timedOut(request: Request, timeoutMs: number): ApiError {
  closeAfterAnswer(request);
  return new ApiError(
    "BODY_TIMEOUT",
    `The request body did not arrive in time (--body-timeout ${timeoutMs / 1000} s): send it without pauses`,
    { headers: { connection: "close" } },
  );
}

/** The client went away (or the connection broke) before the whole body arrived. */
function incomplete(error: unknown): ApiError {
  const reason = error instanceof Error ? error.message : String(error);
  return new ApiError("BODY_INCOMPLETE", `The client closed the connection before sending its whole body`, {
    detail: reason,
  });
}

/**
 * The server's only check of a sample: it is not empty. Parsing is left to
 * the worker (it parses the sample anyway), which answers a body it cannot
 * parse - invalid UTF-8 or JSON, nesting too deep - with an error the
 * replica maps to 400, and stays up.
 *
 * @throws {ApiError} BAD_REQUEST when the body is empty or only whitespace
 */
export function checkNotEmpty(body: Uint8Array): void {
  for (let i = 0; i < body.length; i++) {
    const byte = body[i]!;
    // JSON whitespace: space, tab, line feed, carriage return.
    if (byte !== 0x20 && byte !== 0x09 && byte !== 0x0a && byte !== 0x0d) return;
  }
  throw new ApiError("BAD_REQUEST", "The request body is empty: send the sample as JSON");
}
