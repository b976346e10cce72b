/**
 * Request-based autoscaling of one API on one machine, after Cortex's: the
 * pool's concurrency (requests running plus waiting) is sampled at a fixed
 * period; when its average over the scale window asks for more replicas than
 * are running, one replica is added (up to `compute.max_replicas`), and when
 * its peak over the cool-down needs fewer, one idle replica is retired (down
 * to `compute.min_replicas`). One step at a time, and never again before the
 * window (up) or the cool-down (down) has passed since the last step.
 */
import type { Logger } from "../log/logger.ts";
import type { ApiPool } from "./pool.ts";
import type { Replica } from "./replica.ts";

/** How quickly the replica count follows the load. */
export interface ScaleSettings {
  /** Averaging window of the scale-up decision (`--scale-window`). */
  readonly windowMs: number;
  /** Quiet time before an idle replica is retired (`--scale-cooldown`). */
  readonly cooldownMs: number;
}

/** Ten seconds to scale up, a minute of quiet to scale down. */
export const DEFAULT_SCALE: ScaleSettings = { windowMs: 10_000, cooldownMs: 60_000 };

/** Average concurrency may exceed the replica count by this fraction before a replica is added. */
const UP_TOLERANCE = 0.1;
/** Most samples kept; the period grows for long windows instead. */
const MAX_SAMPLES = 600;
const MIN_PERIOD_MS = 20;

/** What an {@link Autoscaler} needs. */
export interface AutoscalerOptions {
  readonly pool: ApiPool;
  readonly minReplicas: number;
  readonly maxReplicas: number;
  readonly settings: ScaleSettings;
  /** Builds (does not start) the replica with this index. */
  readonly create: (index: number) => Replica;
  readonly logger: Logger;
}

/** Adds and retires replicas of one pool. */
export class Autoscaler {
  readonly #o: AutoscalerOptions;
  readonly #periodMs: number;
  readonly #samples: Float64Array;
  #next = 0;
  #filled = 0;
  #lastScaleAt = performance.now();
  #timer: ReturnType<typeof setInterval> | undefined;
  readonly #retiring = new Set<Promise<void>>();

  constructor(options: AutoscalerOptions) {
    this.#o = options;
    const { windowMs, cooldownMs } = options.settings;
    this.#periodMs = Math.max(MIN_PERIOD_MS, windowMs / 10, cooldownMs / MAX_SAMPLES);
    this.#samples = new Float64Array(Math.ceil(Math.max(windowMs, cooldownMs) / this.#periodMs) + 1);
  }

  /** Starts sampling. */
  start(): void {
    this.#timer ??= setInterval(() => this.#tick(), this.#periodMs);
  }

  /** Stops scaling and waits for replicas being retired to stop. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await Promise.all(this.#retiring);
  }

  #tick(): void {
    const pool = this.#o.pool;
    this.#samples[this.#next] = pool.queueLength + pool.inFlight;
    this.#next = (this.#next + 1) % this.#samples.length;
    this.#filled = Math.min(this.#filled + 1, this.#samples.length);
    const count = pool.replicas.length;
    const since = performance.now() - this.#lastScaleAt;
    const { windowMs, cooldownMs } = this.#o.settings;
    const settling = pool.replicas.some((r) => r.state === "starting");

    if (count < this.#o.maxReplicas && since >= windowMs && !settling) {
      const average = this.#average(this.#span(windowMs));
      if (average !== undefined && Math.ceil(average / (1 + UP_TOLERANCE)) > count) {
        this.#scaleUp(count, `average concurrency ${average.toFixed(1)} over ${windowMs / 1000} s`);
        return;
      }
    }
    if (count > this.#o.minReplicas && since >= cooldownMs) {
      const peak = this.#peak(this.#span(cooldownMs));
      if (peak !== undefined && peak < count) {
        this.#scaleDown(count, `peak concurrency ${peak} over ${cooldownMs / 1000} s`);
      }
    }
  }

  #scaleUp(count: number, reason: string): void {
    const used = new Set(this.#o.pool.replicas.map((r) => r.index));
    let index = 0;
    while (used.has(index)) index++;
    const replica = this.#o.create(index);
    this.#o.pool.addReplica(replica);
    replica.start();
    this.#lastScaleAt = performance.now();
    this.#o.logger.info("scaled up", { api: this.#o.pool.api, replicas: count + 1, replica: index, reason });
  }

  #scaleDown(count: number, reason: string): void {
    const replica = this.#o.pool.retireIdle();
    if (replica === undefined) return; // every replica is busy: try again next tick
    this.#lastScaleAt = performance.now();
    this.#o.logger.info("scaled down", {
      api: this.#o.pool.api,
      replicas: count - 1,
      replica: replica.index,
      reason,
    });
    const stopping: Promise<void> = replica.stop()
      .catch((error) => {
        this.#o.logger.error("stopping a retired replica failed", {
          api: this.#o.pool.api,
          replica: replica.index,
          error: error instanceof Error ? error.message : String(error),
        });
      })
      .finally(() => this.#retiring.delete(stopping));
    this.#retiring.add(stopping);
  }

  /** Samples covering the last `ms`, or undefined until that many were taken. */
  #span(ms: number): number | undefined {
    const n = Math.max(1, Math.ceil(ms / this.#periodMs));
    return this.#filled >= n ? n : undefined;
  }

  #average(n: number | undefined): number | undefined {
    if (n === undefined) return undefined;
    let sum = 0;
    for (let i = 1; i <= n; i++) sum += this.#at(i);
    return sum / n;
  }

  #peak(n: number | undefined): number | undefined {
    if (n === undefined) return undefined;
    let peak = 0;
    for (let i = 1; i <= n; i++) peak = Math.max(peak, this.#at(i));
    return peak;
  }

  /** The `i`-th latest sample (1 = newest). */
  #at(i: number): number {
    const length = this.#samples.length;
    return this.#samples[(this.#next - i + length) % length]!;
  }
}
