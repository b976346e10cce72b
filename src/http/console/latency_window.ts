/**
 * Latency and request rate of one API over the last minute, in a fixed
 * amount of memory: one slot per second (60 of them, reused in a ring), each
 * holding a request count, an error count, a latency sum and a histogram of
 * latencies with logarithmic bins. Recording a request writes a few numbers
 * and allocates nothing.
 *
 * @module
 */

/** Seconds kept. */
export const WINDOW_SECONDS = 60;

/** Bins per doubling of latency: each bin spans a factor of 2^(1/4) ~ 1.19. */
const BINS_PER_OCTAVE = 4;
/** Lower edge of the first bin, in milliseconds; faster requests count there. */
const MIN_MS = 0.01;
/** 0.01 ms × 2^24 ~ 168 s: slower requests count in the last bin. */
const BINS = 24 * BINS_PER_OCTAVE;

/** What the last minute looked like. */
export interface WindowSnapshot {
  readonly requests: number;
  /** Answers with a status of 500 or more. */
  readonly errors: number;
  /** Median latency in milliseconds (within ±10 %), `null` without requests. */
  readonly p50_ms: number | null;
  readonly p99_ms: number | null;
  /** Requests per second, oldest second first (the current second last). */
  readonly rate: readonly number[];
  /** Mean latency per second in milliseconds, `null` for a second without requests. */
  readonly latency_ms: readonly (number | null)[];
}

/** The bin of a latency. */
export function binOf(ms: number): number {
  if (!(ms > MIN_MS)) return 0;
  const bin = Math.floor(Math.log2(ms / MIN_MS) * BINS_PER_OCTAVE);
  return bin < BINS ? bin : BINS - 1;
}

/** The latency a bin stands for: its geometric midpoint, in milliseconds. */
export function binValue(bin: number): number {
  return MIN_MS * 2 ** ((bin + 0.5) / BINS_PER_OCTAVE);
}

/** Per-second counters and latency histograms of one API. */
export class LatencyWindow {
  /** The second (`Date.now() / 1000`, floored) each slot holds; -1 when empty. */
  readonly #second = new Float64Array(WINDOW_SECONDS).fill(-1);
  readonly #count = new Uint32Array(WINDOW_SECONDS);
  readonly #errors = new Uint32Array(WINDOW_SECONDS);
  readonly #sumMs = new Float64Array(WINDOW_SECONDS);
  readonly #bins = new Uint32Array(WINDOW_SECONDS * BINS);

  /** Counts one finished request at `nowMs` (epoch milliseconds). */
  record(status: number, latencyMs: number, nowMs: number): void {
    const second = Math.floor(nowMs / 1000);
    const slot = second % WINDOW_SECONDS;
    if (this.#second[slot] !== second) {
      this.#second[slot] = second;
      this.#count[slot] = 0;
      this.#errors[slot] = 0;
      this.#sumMs[slot] = 0;
      this.#bins.fill(0, slot * BINS, slot * BINS + BINS);
    }
    this.#count[slot]!++;
    if (status >= 500) this.#errors[slot]!++;
    this.#sumMs[slot]! += latencyMs;
    this.#bins[slot * BINS + binOf(latencyMs)]!++;
  }

  /** The last {@link WINDOW_SECONDS} seconds up to `nowMs`. */
  snapshot(nowMs: number): WindowSnapshot {
    const now = Math.floor(nowMs / 1000);
    const histogram = new Uint32Array(BINS);
    const rate: number[] = [];
    const latency: (number | null)[] = [];
    let requests = 0;
    let errors = 0;
    for (let second = now - WINDOW_SECONDS + 1; second <= now; second++) {
      const slot = second % WINDOW_SECONDS;
      const count = this.#second[slot] === second ? this.#count[slot]! : 0;
      rate.push(count);
      latency.push(count === 0 ? null : round(this.#sumMs[slot]! / count));
      if (count === 0) continue;
      requests += count;
      errors += this.#errors[slot]!;
      for (let bin = 0; bin < BINS; bin++) histogram[bin]! += this.#bins[slot * BINS + bin]!;
    }
    return {
      requests,
      errors,
      p50_ms: quantile(histogram, requests, 0.5),
      p99_ms: quantile(histogram, requests, 0.99),
      rate,
      latency_ms: latency,
    };
  }
}

function quantile(histogram: Uint32Array, total: number, q: number): number | null {
  if (total === 0) return null;
  const rank = Math.ceil(q * total);
  let seen = 0;
  for (let bin = 0; bin < BINS; bin++) {
    seen += histogram[bin]!;
    if (seen >= rank) return round(binValue(bin));
  }
  return round(binValue(BINS - 1));
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
