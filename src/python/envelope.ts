/**
 * The request and answer envelopes of the Cortex 0.17+ dialects
 * (`realtime_predictor`): what travels as the sample of a raw `predict`
 * frame and as the prediction of a raw `result` frame (./protocol.ts) when
 * the payload is parsed by Content-Type and the answer chooses its own.
 * Bodies stay raw bytes: nothing is base64-encoded or parsed on the way.
 *
 * Request (server -> worker), integers big-endian:
 * `[u16 n][content type, n bytes UTF-8][u32 q][query string, q bytes]`
 * `[u32 h][headers: msgpack list of [name, value] pairs, h bytes][body]`
 *
 * Answer (worker -> server):
 * `[u16 status][u16 n][content type, n bytes][u32 h][headers: msgpack list of pairs, h bytes; 0 for none][body]`
 *
 * A job store keeps exactly these parts: the request's body, content type,
 * query and headers, and the answer's body, content type, status and headers.
 *
 * @module
 */
import { decode, encode } from "@msgpack/msgpack";
import { ProtocolError } from "./protocol.ts";

/** What the worker is told of an HTTP request besides its body. */
export interface RequestMeta {
  /** The `Content-Type` header as sent; `""` when absent. */
  readonly contentType: string;
  /** The query string without `?`; `""` when none. */
  readonly query: string;
  /** The request's headers as `[lower-case name, value]` pairs. */
  readonly headers: readonly (readonly [string, string])[];
}

/** An answer of the `realtime_predictor` interface. */
export interface EnvelopeAnswer {
  readonly body: Uint8Array;
  readonly contentType: string;
  readonly status: number;
  /** Headers of a passed-through Response (besides its content type); empty otherwise. */
  readonly headers: readonly (readonly [string, string])[];
}

const UTF8 = new TextEncoder();
const TEXT = new TextDecoder();

/** Builds the request envelope around `body` (one copy of the body). */
export function encodeRequest(meta: RequestMeta, body: Uint8Array): Uint8Array {
  const type = UTF8.encode(meta.contentType);
  const query = UTF8.encode(meta.query);
  const headers = encode(meta.headers);
  if (type.byteLength > 0xffff) throw new RangeError("The Content-Type header is over 65535 bytes");
  const out = new Uint8Array(
    2 + type.byteLength + 4 + query.byteLength + 4 + headers.byteLength + body.byteLength,
  );
  const view = new DataView(out.buffer);
  let at = 0;
  view.setUint16(at, type.byteLength);
  out.set(type, at += 2);
  view.setUint32(at += type.byteLength, query.byteLength);
  out.set(query, at += 4);
  view.setUint32(at += query.byteLength, headers.byteLength);
  out.set(headers, at += 4);
  out.set(body, at + headers.byteLength);
  return out;
}

/**
 * Reads an answer envelope; the body is a view of `bytes`.
 *
 * @throws {ProtocolError} when it is shorter than its own lengths say
 */
export function decodeAnswer(bytes: Uint8Array): EnvelopeAnswer {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const short = () =>
    new ProtocolError(`Worker sent an answer envelope of ${bytes.byteLength} bytes, cut short`);
  if (bytes.byteLength < 8) throw short();
  const status = view.getUint16(0);
  const typeLength = view.getUint16(2);
  let at = 4 + typeLength;
  if (bytes.byteLength < at + 4) throw short();
  const contentType = TEXT.decode(bytes.subarray(4, at));
  const headersLength = view.getUint32(at);
  at += 4;
  if (bytes.byteLength < at + headersLength) throw short();
  let headers: readonly (readonly [string, string])[] = [];
  if (headersLength > 0) {
    const decoded = decode(bytes.subarray(at, at + headersLength));
    if (!Array.isArray(decoded) || !decoded.every(_isPair)) {
      throw new ProtocolError("Worker sent answer headers that are not a list of [name, value] strings");
    }
    headers = decoded;
  }
  if (status < 100 || status > 599) throw new ProtocolError(`Worker sent an answer with status ${status}`);
  return { body: bytes.subarray(at + headersLength), contentType, status, headers };
}

function _isPair(value: unknown): value is [string, string] {
  return Array.isArray(value) && value.length === 2 && typeof value[0] === "string" &&
    typeof value[1] === "string";
}
