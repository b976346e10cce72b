/** Per-API request counters shown by `GET /` and `cortex-serve get`. */

/** Counters of one API. */
export interface ApiStatsSnapshot {
  readonly requests: number;
  readonly status_2xx: number;
  readonly status_4xx: number;
  readonly status_5xx: number;
  /** Mean latency of all requests so far, in milliseconds (0 before any). */
  readonly avg_latency_ms: number;
}

/** Mutable counters of one API. */
export class ApiStats {
  #requests = 0;
  #byClass = [0, 0, 0]; // 2xx, 4xx, 5xx
  #latencyMs = 0;

  /** Counts one finished request. */
  record(status: number, latencyMs: number): void {
    this.#requests++;
    this.#latencyMs += latencyMs;
    if (status >= 200 && status < 300) this.#byClass[0]!++;
    else if (status >= 400 && status < 500) this.#byClass[1]!++;
    else if (status >= 500) this.#byClass[2]!++;
  }

  snapshot(): ApiStatsSnapshot {
    return {
      requests: this.#requests,
      status_2xx: this.#byClass[0]!,
      status_4xx: this.#byClass[1]!,
      status_5xx: this.#byClass[2]!,
      avg_latency_ms: this.#requests === 0 ? 0 : Math.round((this.#latencyMs / this.#requests) * 1000) / 1000,
    };
  }
}

/**
 * Counters of every API by name, owned by the server rather than by one
 * app, so they keep counting across a SIGHUP reload.
 */
export class RequestStats {
  readonly #byApi = new Map<string, ApiStats>();

  /** The counters of `api`, created on first use. */
  of(api: string): ApiStats {
    let stats = this.#byApi.get(api);
    if (stats === undefined) {
      stats = new ApiStats();
      this.#byApi.set(api, stats);
    }
    return stats;
  }
}
