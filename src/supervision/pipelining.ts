/**
 * When a pool sends a busy replica the next request behind the running one
 * (pipelining), so its worker goes on without waiting for the server to
 * hear of each answer: while predictions are short (under
 * {@link PIPELINE_MAX_SERVICE_MS} on average) and no replica is free. Never
 * for batches, nor for an API that has answered with a stream (a stream
 * holds its worker for as long as its client reads).
 *
 * @module
 */

/**
 * Average predict time (ms) under which a busy replica is sent the next
 * request behind the running one. Above it, pipelining gains nothing and
 * would hold a request back from a replica that frees sooner.
 */
export const PIPELINE_MAX_SERVICE_MS = 10;
/** Weight of the newest predict time in the running average. */
const SERVICE_EWMA_WEIGHT = 0.2;

/** The pipelining decision of one pool, from the predict times it saw. */
export class PipeliningPolicy {
  readonly #enabled: boolean;
  /** Running average of predict time (ms), once one finished. */
  #serviceMs: number | undefined;
  /** Set once a prediction of this API streamed: no more pipelining. */
  #streamed = false;

  /** `enabled` is false for batching pools and when turned off. */
  constructor(enabled: boolean) {
    this.#enabled = enabled;
  }

  /** True when busy replicas may be sent a request behind the running one. */
  get allowed(): boolean {
    return this.#enabled && !this.#streamed && this.#serviceMs !== undefined &&
      this.#serviceMs < PIPELINE_MAX_SERVICE_MS;
  }

  /** A prediction ran for `ms` (from its start in the worker). */
  observe(ms: number): void {
    const average = this.#serviceMs;
    this.#serviceMs = average === undefined ? ms : average + SERVICE_EWMA_WEIGHT * (ms - average);
  }

  /** A prediction answered with a stream. */
  streamed(): void {
    this.#streamed = true;
  }
}
