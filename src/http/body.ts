/** Reading and checking a prediction request's body. */
import { ApiError } from "../errors/api_error.ts";

const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Reads the body, refusing more than `maxBytes` before buffering it all.
 *
 * @throws {ApiError} PAYLOAD_TOO_LARGE
 */
export async function readBody(request: Request, maxBytes: number): Promise<Uint8Array> {
  const declared = request.headers.get("content-length");
  if (declared !== null) {
    if (Number(declared) > maxBytes) throw tooLarge(maxBytes);
    // arrayBuffer() without touching `request.body` first: reading through the
    // body stream costs more per request than the runtime's direct read.
    return new Uint8Array(await request.arrayBuffer());
  }
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
 * Checks that `body` is one JSON value; the sample is sent to the worker as
 * these same bytes.
 *
 * @throws {ApiError} BAD_REQUEST naming where parsing failed
 */
export function checkJson(body: Uint8Array): void {
  let text: string;
  try {
    text = decoder.decode(body);
  } catch {
    throw new ApiError("BAD_REQUEST", "The request body is not valid UTF-8: send the sample as JSON");
  }
  if (text.trim() === "") {
    throw new ApiError("BAD_REQUEST", "The request body is empty: send the sample as JSON");
  }
  try {
    JSON.parse(text);
  } catch (error) {
    const detail = error instanceof Error ? error.message : String(error);
    throw new ApiError("BAD_REQUEST", `The request body is not valid JSON: ${detail}`);
  }
}
