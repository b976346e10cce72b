/**
 * Splits a byte stream into text lines with a length cap, so one huge
 * `print()` cannot produce a huge log line.
 */

import { cutMarker } from "../log/cut_text.ts";

/** Default cap on one log line, in characters. */
export const DEFAULT_MAX_LINE_CHARS = 8192;

/**
 * Reads `stream` to its end, calling `onLine` for each line (without the
 * newline). A line over `maxChars` is cut and marked with how much was left
 * out; a final line without a newline is delivered too.
 */
export async function readLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
  maxChars: number = DEFAULT_MAX_LINE_CHARS,
): Promise<void> {
  const decoder = new TextDecoder("utf-8", { fatal: false });
  let line = "";
  let dropped = 0;
  const emit = () => {
    onLine(dropped > 0 ? line + cutMarker(dropped) : line);
    line = "";
    dropped = 0;
  };
  const add = (text: string) => {
    const room = maxChars - line.length;
    if (text.length <= room) {
      line += text;
    } else {
      line += text.slice(0, Math.max(room, 0));
      dropped += text.length - Math.max(room, 0);
    }
  };
  for await (const chunk of stream) {
    const text = decoder.decode(chunk, { stream: true });
    let start = 0;
    for (let nl = text.indexOf("\n"); nl !== -1; nl = text.indexOf("\n", start)) {
      add(text.slice(start, nl).replace(/\r$/, ""));
      emit();
      start = nl + 1;
    }
    add(text.slice(start));
  }
  add(decoder.decode());
  if (line.length > 0 || dropped > 0) emit();
}
