/**
 * Framing for the worker control channel: a 4-byte big-endian length, then
 * that many bytes of payload (one msgpack map). Framing knows nothing about
 * message types; see ./protocol.ts for those.
 */

/** Bytes in the length prefix. */
export const HEADER_BYTES = 4;

/** Why a frame could not be read or written. */
export class FrameError extends Error {
  /** Stable code for callers that branch on the failure. */
  readonly code: "FRAME_TOO_LARGE" | "FRAME_EMPTY";
  readonly length: number;

  constructor(
    code: "FRAME_TOO_LARGE" | "FRAME_EMPTY",
    length: number,
    message: string,
  ) {
    super(message);
    this.name = "FrameError";
    this.code = code;
    this.length = length;
  }
}

/**
 * Prefixes `payload` with its length, in one buffer so the frame goes out in
 * a single write.
 *
 * @throws {FrameError} when the payload is empty or over `maxFrameBytes`
 */
export function encodeFrame(
  payload: Uint8Array,
  maxFrameBytes: number,
): Uint8Array {
  checkLength(payload.byteLength, maxFrameBytes);
  const frame = new Uint8Array(HEADER_BYTES + payload.byteLength);
  new DataView(frame.buffer).setUint32(0, payload.byteLength, false);
  frame.set(payload, HEADER_BYTES);
  return frame;
}

function checkLength(length: number, maxFrameBytes: number): void {
  if (length === 0) {
    throw new FrameError("FRAME_EMPTY", 0, "Frame length is 0: a frame carries one msgpack map");
  }
  if (length > maxFrameBytes) {
    throw new FrameError(
      "FRAME_TOO_LARGE",
      length,
      `Frame of ${length} bytes is over the maximum of ${maxFrameBytes} bytes`,
    );
  }
}

/**
 * Reassembles frames from chunks of any size. A small state machine: read the
 * 4-byte length, check it against the maximum before allocating, then collect
 * the body.
 *
 * @example
 * const decoder = new FrameDecoder(1 << 20);
 * for (const payload of decoder.push(chunk)) handle(payload);
 */
export class FrameDecoder {
  readonly #max: number;
  readonly #header = new Uint8Array(HEADER_BYTES);
  #headerFill = 0;
  /** Body length of the frame being read, or -1 while reading a header. */
  #bodyLength = -1;
  /** Buffer for a body that spans chunks; allocated only then. */
  #body: Uint8Array | undefined;
  #bodyFill = 0;

  constructor(maxFrameBytes: number) {
    this.#max = maxFrameBytes;
  }

  /** True when no partial frame is buffered. */
  get idle(): boolean {
    return this.#headerFill === 0 && this.#bodyLength === -1;
  }

  /**
   * Feeds one chunk; returns the payloads completed by it, in order. A
   * payload may be a view into `chunk`: copy it before reusing that buffer.
   *
   * @throws {FrameError} on a zero or oversized length; the decoder is then
   *   unusable, as the stream has lost its framing
   */
  push(chunk: Uint8Array): Uint8Array[] {
    const out: Uint8Array[] = [];
    this.feed(chunk, (payload) => out.push(payload));
    return out;
  }

  /**
   * Feeds one chunk, calling `onPayload` for each payload it completes, in
   * order: {@link push} without an array per chunk (the read loop's way).
   *
   * @throws {FrameError} as {@link push}
   */
  feed(chunk: Uint8Array, onPayload: (payload: Uint8Array) => void): void {
    let offset = 0;
    while (offset < chunk.byteLength) {
      if (this.#bodyLength === -1) {
        offset = this.#readHeader(chunk, offset);
        continue;
      }
      const available = chunk.byteLength - offset;
      if (this.#body === undefined && available >= this.#bodyLength) {
        // The whole body is in this chunk: hand out a view, no copy.
        onPayload(chunk.subarray(offset, offset + this.#bodyLength));
        offset += this.#bodyLength;
        this.#bodyLength = -1;
        continue;
      }
      this.#body ??= new Uint8Array(this.#bodyLength);
      const take = Math.min(this.#bodyLength - this.#bodyFill, available);
      this.#body.set(chunk.subarray(offset, offset + take), this.#bodyFill);
      this.#bodyFill += take;
      offset += take;
      if (this.#bodyFill === this.#bodyLength) {
        const body = this.#body;
        this.#body = undefined;
        this.#bodyFill = 0;
        this.#bodyLength = -1;
        onPayload(body);
      }
    }
  }

  #readHeader(chunk: Uint8Array, offset: number): number {
    const take = Math.min(
      HEADER_BYTES - this.#headerFill,
      chunk.byteLength - offset,
    );
    this.#header.set(chunk.subarray(offset, offset + take), this.#headerFill);
    this.#headerFill += take;
    if (this.#headerFill === HEADER_BYTES) {
      const length = new DataView(this.#header.buffer).getUint32(0, false);
      checkLength(length, this.#max);
      this.#headerFill = 0;
      this.#bodyLength = length;
    }
    return offset + take;
  }
}
