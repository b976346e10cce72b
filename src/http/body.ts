/** Reading and checking a prediction request's body. */
import { ApiError } from "../errors/api_error.ts";

/**
 * Reads the body, refusing more than `maxBytes` before buffering it all.
 *
 * @throws {ApiError} PAYLOAD_TOO_LARGE
 */
export function readBody(request: Request, maxBytes: number): Promise<Uint8Array> {
  const declared = request.headers.get("content-length");
  if (declared === null) return readChunks(request, maxBytes);
  if (Number(declared) > maxBytes) return Promise.reject(tooLarge(maxBytes));
  // arrayBuffer() without touching `request.body` first: reading through the
  // body stream costs more per request than the runtime's direct read. (Not
  // an async function: one promise less per request.)
  return request.arrayBuffer().then(bytesOf);
}

function bytesOf(buffer: ArrayBuffer): Uint8Array {
  return new Uint8Array(buffer);
}

/** A body without `Content-Length` (chunked), counted as it arrives. */
async function readChunks(request: Request, maxBytes: number): Promise<Uint8Array> {
  if (request.body === null) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of request.body) {
    total += chunk.byteLength;
    if (total > maxBytes) throw tooLarge(maxBytes);
    chunks.push(chunk);
  }
  if (chunks.length === 1) return chunks[0]!;
  const body = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return body;
}

function tooLarge(maxBytes: number): ApiError {
  return new ApiError(
    "PAYLOAD_TOO_LARGE",
    `The request body is over the limit of ${maxBytes} bytes (--max-body)`,
  );
}

/**
 * The server's only check of a sample: it is not empty. Parsing is left to
 * the worker (it parses the sample anyway), which answers a body it cannot
 * parse — invalid UTF-8 or JSON, nesting too deep — with an error the
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
