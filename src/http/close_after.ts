/**
 * Requests whose connection is closed as soon as their answer is written:
 * a body that stopped arriving (`--body-timeout`). The runtime's HTTP engine
 * would otherwise keep such a connection open until the client sends the
 * rest of the body or hangs up; the connection tracker (./connections.ts)
 * closes it instead, counted as `body_timeout`. A mark is a `WeakSet` entry:
 * nothing to clear, and nothing at all for a request that is not marked.
 *
 * @module
 */

const marked = new WeakSet<Request>();

/** Closes `request`'s connection once its answer has been written. */
export function closeAfterAnswer(request: Request): void {
  marked.add(request);
}

/** True when {@link closeAfterAnswer} was called for `request`. */
export function closesAfterAnswer(request: Request): boolean {
  return marked.has(request);
}
