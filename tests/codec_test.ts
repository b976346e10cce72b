import assert from "node:assert/strict";
import { encodeFrame, FrameDecoder, FrameError, HEADER_BYTES } from "../src/python/codec.ts";

function payloadOf(size: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 31 + seed) & 0xff;
  return bytes;
}

/** Deterministic pseudo-random chunk sizes (xorshift). */
function* chunkSizes(seed: number): Generator<number> {
  let x = seed;
  for (;;) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    yield 1 + (Math.abs(x) % 97);
  }
}

Deno.test("frames reassemble from random chunk sizes", () => {
  for (const seed of [1, 7, 42, 1234, 99991]) {
    const payloads = [1, 2, 3, 4, 5, 100, 1000, 65536, 3].map((n, i) => payloadOf(n, seed + i));
    const stream = new Uint8Array(payloads.reduce((n, p) => n + p.byteLength + HEADER_BYTES, 0));
    let offset = 0;
    for (const p of payloads) {
      const frame = encodeFrame(p, 1 << 20);
      stream.set(frame, offset);
      offset += frame.byteLength;
    }
    const decoder = new FrameDecoder(1 << 20);
    const out: Uint8Array[] = [];
    const sizes = chunkSizes(seed);
    for (let at = 0; at < stream.byteLength;) {
      const size = sizes.next().value as number;
      // Copy each chunk: the decoder may hand out views into it.
      for (const p of decoder.push(stream.slice(at, at + size))) out.push(p.slice());
      at += size;
    }
    assert.equal(out.length, payloads.length);
    payloads.forEach((p, i) => assert.deepEqual(out[i], p));
    assert.ok(decoder.idle);
  }
});

Deno.test("several frames in one chunk come out in order", () => {
  const a = encodeFrame(new Uint8Array([1]), 16);
  const b = encodeFrame(new Uint8Array([2, 3]), 16);
  const both = new Uint8Array([...a, ...b]);
  const out = new FrameDecoder(16).push(both);
  assert.deepEqual(out.map((p) => [...p]), [[1], [2, 3]]);
});

Deno.test("oversized length is refused before the body arrives", () => {
  const decoder = new FrameDecoder(1000);
  const header = new Uint8Array([0, 0, 0x03, 0xe9]); // 1001
  assert.throws(() => decoder.push(header), (error: unknown) => {
    assert.ok(error instanceof FrameError);
    assert.equal(error.code, "FRAME_TOO_LARGE");
    assert.equal(error.length, 1001);
    assert.equal(error.message, "Frame of 1001 bytes is over the maximum of 1000 bytes");
    return true;
  });
});

Deno.test("a header split across chunks is checked once complete", () => {
  const decoder = new FrameDecoder(10);
  assert.deepEqual(decoder.push(new Uint8Array([0xff, 0xff])), []);
  assert.throws(
    () => decoder.push(new Uint8Array([0xff, 0xff])),
    /Frame of 4294967295 bytes is over the maximum of 10 bytes/,
  );
});

Deno.test("zero length is a framing error", () => {
  assert.throws(
    () => new FrameDecoder(10).push(new Uint8Array([0, 0, 0, 0])),
    (error: unknown) => error instanceof FrameError && error.code === "FRAME_EMPTY",
  );
});

Deno.test("encodeFrame refuses oversized and empty payloads", () => {
  assert.throws(
    () => encodeFrame(new Uint8Array(11), 10),
    /Frame of 11 bytes is over the maximum of 10 bytes/,
  );
  assert.throws(() => encodeFrame(new Uint8Array(0), 10), /Frame length is 0/);
  assert.deepEqual([...encodeFrame(new Uint8Array([9]), 10)], [0, 0, 0, 1, 9]);
});
