/**
 * Caps on text that comes from outside the server (a worker's exception
 * message, its traceback, a line it printed) before it reaches a log line or
 * an HTTP answer: the text is cut and says how much was left out, so one
 * huge exception costs a few KiB, not its size, in every place it is echoed.
 *
 * @module
 */

/** Characters kept of an exception message, in answers and log lines. */
export const MAX_ERROR_CHARS = 4096;
/** Characters kept of a traceback (logged; in answers only with `--debug`). */
export const MAX_TRACEBACK_CHARS = 16384;
/**
 * Room for the marker: the caps applied again where text is echoed are this
 * much larger, so a text already cut where it entered keeps its marker and
 * its count instead of being cut a second time.
 */
const MARKER_ROOM = 64;

/** An exception message as an answer or a log line may carry it. */
export function echoedError(text: string): string {
  return cutText(text, MAX_ERROR_CHARS + MARKER_ROOM);
}

/** A traceback as an answer or a log line may carry it. */
export function echoedTraceback(text: string): string {
  return cutText(text, MAX_TRACEBACK_CHARS + MARKER_ROOM);
}

/** The marker that ends a cut text: `... (N more characters)`. */
export function cutMarker(dropped: number): string {
  return `... (${dropped} more characters)`;
}

/**
 * `text` when it has at most `maxChars` characters, else its first
 * `maxChars` characters followed by {@link cutMarker}.
 *
 * @example
 * cutText("abcdef", 3); // "abc... (3 more characters)"
 */
export function cutText(text: string, maxChars: number): string {
  if (text.length <= maxChars) return text;
  // Never split a surrogate pair: the cut text stays valid UTF-16.
  let end = maxChars;
  const last = text.charCodeAt(end - 1);
  if (end > 0 && last >= 0xd800 && last <= 0xdbff) end--;
  return text.slice(0, end) + cutMarker(text.length - end);
}
