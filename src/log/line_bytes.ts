/**
 * Log lines waiting for their write to stderr, kept as UTF-8 bytes in one
 * reusable buffer: each piece of text is copied in as it is formatted, so
 * nothing of a line outlives its formatting. Lines wait up to 20 ms (see
 * ./logger.ts); kept as strings, the lines of a busy server stayed alive
 * across scavenges and every one was promoted to the old generation: at
 * c=16 the access log made each scavenge promote 130 KB and pause 0.35 ms
 * (0.15 ms without it), the old space grew to its limit between
 * mark-compacts, and the p99 was 4 times that of the same server logging
 * nothing (docs/performance.md).
 *
 * @module
 */

const encoder = new TextEncoder();

/** The buffer's first size; it doubles when a burst of lines needs more. */
const INITIAL_BYTES = 128 * 1024;

/** UTF-8 bytes of lines, written piece by piece and taken whole. */
export class LineBytes {
  #bytes = new Uint8Array(INITIAL_BYTES);
  #length = 0;

  /** Bytes held; a mark to rewind to. */
  get length(): number {
    return this.#length;
  }

  /** Appends `piece` as UTF-8. */
  put(piece: string): void {
    // Three bytes per UTF-16 unit at most (a surrogate pair is four bytes for two units).
    if (this.#length + piece.length * 3 > this.#bytes.length) this.#grow(piece.length * 3);
    const bytes = this.#bytes;
    let at = this.#length;
    const n = piece.length;
    for (let i = 0; i < n; i++) {
      const code = piece.charCodeAt(i);
      if (code >= 0x80) {
        // Past ASCII: the encoder takes the rest of the piece (a view, made only then).
        at += encoder.encodeInto(piece.slice(i), bytes.subarray(at)).written;
        this.#length = at;
        return;
      }
      bytes[at++] = code;
    }
    this.#length = at;
  }

  /** Forgets what was put since `mark` (a {@link length} read before). */
  rewind(mark: number): void {
    this.#length = mark;
  }

  /** The bytes held, as a view of the buffer: valid until the next `put` or `clear`. */
  view(): Uint8Array {
    return this.#bytes.subarray(0, this.#length);
  }

  /** Empties the buffer (it keeps its size). */
  clear(): void {
    this.#length = 0;
  }

  #grow(more: number): void {
    let size = this.#bytes.length * 2;
    while (size < this.#length + more) size *= 2;
    const bytes = new Uint8Array(size);
    bytes.set(this.#bytes.subarray(0, this.#length));
    this.#bytes = bytes;
  }
}
