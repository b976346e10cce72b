/**
 * Prometheus metrics (`GET /metrics`), in a registry of their own.
 *
 * Request counters and histograms are fed from the app's request middleware
 * through label children bound once per API, so the hot path is a few number
 * updates and one map lookup (the status), with no allocation. Restarts,
 * cancels and scale events are counted as they happen: the server's metrics
 * are the deployments' {@link SupervisionCounters} and their counters own
 * the totals, so a replica retired or a pool replaced (reload) between two
 * scrapes loses nothing. Gauges about replicas and queues are read at scrape
 * time from the current pools, so pools may be swapped without telling this
 * file. The metric objects belong to the server, not to a deployment.
 */
import { Counter, type CounterChild, Histogram, type HistogramChild, Registry } from "./prometheus.ts";
import type { ResolvedTracker } from "../config/types.ts";
import type { ScaleDirection, SupervisionCounters } from "../supervision/counters.ts";
import type { ApiPool } from "../supervision/pool.ts";
import type { JobDepth } from "../jobs/job.ts";
import type { CancelReason } from "../supervision/replica.ts";
import type { BodyFailure } from "./exchange.ts";
import { registerScrapeTimeMetrics } from "./metrics_gauges.ts";

/** Where scrape-time values come from. */
export interface MetricsSources {
  /** The pools serving right now (read at every scrape). */
  readonly pools: () => Iterable<ApiPool>;
  /** Request bodies being read now (see ./body_watch.ts); the gauge is left out when absent. */
  readonly bodiesReading?: () => number;
  /** Labels of `cortex_serve_build_info`. */
  readonly build?: { readonly version: string; readonly protocol: number };
  /** Durable jobs queued and running of an API (docs/async.md); no job gauge when absent. */
  readonly jobs?: (api: string) => JobDepth;
}

/** Seconds; from a fast predict to the default `--predict-timeout`. */
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** Predicted values of a regression tracker: symmetric, roughly logarithmic. */
const VALUE_BUCKETS = (() => {
  const positive = [0.01, 0.1, 0.5, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 1e4, 1e5, 1e6];
  return [...positive.map((v) => -v).reverse(), 0, ...positive];
})();
/** Requests per batch (server-side batching): powers of two up to the largest max_batch_size. */
const BATCH_SIZE_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];
/** Distinct classes counted per API; later ones are counted as `__other__`. */
export const MAX_CLASSES_PER_API = 500;
const MAX_CLASS_CHARS = 128;

/** The request counters and histograms of one API. */
export class ApiRequestMetrics {
  readonly #counter: (status: number) => CounterChild;
  readonly #byStatus = new Map<number, CounterChild>();
  readonly #latency: HistogramChild;
  readonly #queueWait: HistogramChild;
  readonly #bodyFailures: Readonly<Record<BodyFailure, CounterChild>>;

  constructor(
    counter: (status: number) => CounterChild,
    latency: HistogramChild,
    queueWait: HistogramChild,
    bodyFailures: Readonly<Record<BodyFailure, CounterChild>>,
  ) {
    this.#counter = counter;
    this.#latency = latency;
    this.#queueWait = queueWait;
    this.#bodyFailures = bodyFailures;
  }

  /** Counts a request whose body did not arrive (it is also counted by {@link observe}). */
  bodyFailure(reason: BodyFailure): void {
    this.#bodyFailures[reason].inc();
  }

  /** Counts one finished request (`seconds` from arrival to response). */
  observe(status: number, seconds: number, queueSeconds: number | undefined): void {
    let counter = this.#byStatus.get(status);
    if (counter === undefined) {
      counter = this.#counter(status);
      this.#byStatus.set(status, counter);
    }
    counter.inc();
    this.#latency.observe(seconds);
    if (queueSeconds !== undefined) this.#queueWait.observe(queueSeconds);
  }
}

/** The server's metrics; also where its deployments count restarts, cancels and scale events. */
export class ServerMetrics implements SupervisionCounters {
  /** Holds this server's metrics, in the order `/metrics` shows them. */
  readonly registry: Registry = new Registry();
  readonly #requests: Counter<"api" | "status">;
  readonly #latency: Histogram<"api">;
  readonly #queueWait: Histogram<"api">;
  readonly #classes: Counter<"api" | "class">;
  readonly #values: Histogram<"api">;
  readonly #skipped: Counter<"api">;
  readonly #batchSize: Histogram<"api">;
  readonly #bodyFailures: Counter<"api" | "reason">;
  readonly #batchChildren = new Map<string, HistogramChild>();
  readonly #modelLoads: Counter<"api" | "model">;
  readonly #modelLoadSeconds: Counter<"api" | "model">;
  readonly #modelEvictions: Counter<"api" | "model">;
  readonly #apis = new Map<string, ApiRequestMetrics>();
  readonly #classChildren = new Map<string, Map<string, CounterChild>>();
  readonly #pools: () => Iterable<ApiPool>;
  // Counted as they happen (see the module doc); at each scrape every
  // current API shows its series, zero until something happened.
  readonly #restarts = new Counter({
    name: "cortex_serve_replica_restarts_total",
    help: "Workers restarted after they exited, crashed or went over compute.mem",
    labelNames: ["api"],
    collect: (counter) => {
      for (const pool of this.#pools()) counter.inc({ api: pool.api }, 0);
    },
  });
  readonly #cancelled = new Counter({
    name: "cortex_serve_cancelled_total",
    help: "Running requests cancelled in the worker, by API and reason (client: the client went away; " +
      "timeout: --predict-timeout passed)",
    labelNames: ["api", "reason"],
    collect: (counter) => {
      for (const pool of this.#pools()) {
        counter.inc({ api: pool.api, reason: "client" }, 0);
        counter.inc({ api: pool.api, reason: "timeout" }, 0);
      }
    },
  });
  readonly #scaleEvents = new Counter({
    name: "cortex_serve_scale_events_total",
    help: "Replicas added (up) or retired (down) by autoscaling, by API and direction",
    labelNames: ["api", "direction"],
    collect: (counter) => {
      for (const pool of this.#pools()) {
        counter.inc({ api: pool.api, direction: "up" }, 0);
        counter.inc({ api: pool.api, direction: "down" }, 0);
      }
    },
  });

  constructor(sources: MetricsSources) {
    this.#pools = sources.pools;
    const registry = this.registry;
    this.#requests = registry.register(
      new Counter({
        name: "cortex_serve_requests_total",
        help: "Requests to an API endpoint, by API and HTTP status",
        labelNames: ["api", "status"],
      }),
    );
    this.#latency = registry.register(
      new Histogram({
        name: "cortex_serve_request_duration_seconds",
        help: "Time from request arrival to response, queue wait included",
        labelNames: ["api"],
        buckets: LATENCY_BUCKETS,
      }),
    );
    this.#queueWait = registry.register(
      new Histogram({
        name: "cortex_serve_queue_wait_seconds",
        help: "Time a prediction waited for a free replica",
        labelNames: ["api"],
        buckets: LATENCY_BUCKETS,
      }),
    );
    this.#classes = registry.register(
      new Counter({
        name: "cortex_serve_predictions_total",
        help: "Predictions per class (tracker.model_type: classification)",
        labelNames: ["api", "class"],
      }),
    );
    this.#values = registry.register(
      new Histogram({
        name: "cortex_serve_prediction_value",
        help: "Predicted values (tracker.model_type: regression)",
        labelNames: ["api"],
        buckets: VALUE_BUCKETS,
      }),
    );
    this.#skipped = registry.register(
      new Counter({
        name: "cortex_serve_tracker_skipped_total",
        help: "Predictions the tracker could not use (not JSON, no tracker.key field, not a number)",
        labelNames: ["api"],
      }),
    );
    this.#batchSize = registry.register(
      new Histogram({
        name: "cortex_serve_batch_size",
        help: "Requests per predict call of an API with server_side_batching",
        labelNames: ["api"],
        buckets: BATCH_SIZE_BUCKETS,
      }),
    );
    this.#bodyFailures = registry.register(
      new Counter({
        name: "cortex_serve_request_body_failures_total",
        help: "Request bodies not received, by API and reason (timeout: no byte for --body-timeout, " +
          "answered 408; client_closed: the client hung up mid-body, logged as 499)",
        labelNames: ["api", "reason"],
      }),
    );
    this.#modelLoads = registry.register(
      new Counter({
        name: "cortex_serve_model_loads_total",
        help:
          "Models loaded by load_model in a multi-model API's workers (a new version, a reload, after an eviction)",
        labelNames: ["api", "model"],
      }),
    );
    this.#modelLoadSeconds = registry.register(
      new Counter({
        name: "cortex_serve_model_load_seconds_total",
        help: "Time spent in load_model by a multi-model API's workers",
        labelNames: ["api", "model"],
      }),
    );
    this.#modelEvictions = registry.register(
      new Counter({
        name: "cortex_serve_model_evictions_total",
        help: "Models dropped from a worker's memory to stay within cache_size",
        labelNames: ["api", "model"],
      }),
    );
    this.#scrapeTimeMetrics(sources);
  }

  /** Counts a model load or eviction reported by a worker of `api`. */
  observeModel(
    api: string,
    event: { readonly event: "load" | "evict"; model: string; seconds: number },
  ): void {
    const labels = { api, model: event.model === "" ? "default" : event.model };
    if (event.event === "evict") return this.#modelEvictions.inc(labels);
    this.#modelLoads.inc(labels);
    this.#modelLoadSeconds.inc(labels, event.seconds);
  }

  /** The request metrics of `api`, label children bound once: the app keeps one per API. */
  forApi(api: string): ApiRequestMetrics {
    let bound = this.#apis.get(api);
    if (bound === undefined) {
      bound = new ApiRequestMetrics(
        (status) => this.#requests.labels({ api, status: String(status) }),
        this.#latency.labels({ api }),
        this.#queueWait.labels({ api }),
        {
          timeout: this.#bodyFailures.labels({ api, reason: "timeout" }),
          client_closed: this.#bodyFailures.labels({ api, reason: "client_closed" }),
        },
      );
      this.#apis.set(api, bound);
    }
    return bound;
  }

  /** Counts one batch of `size` requests sent to a worker (server-side batching). */
  observeBatch(api: string, size: number): void {
    let child = this.#batchChildren.get(api);
    if (child === undefined) {
      child = this.#batchSize.labels({ api });
      this.#batchChildren.set(api, child);
    }
    child.observe(size);
  }

  /** Counts a worker restart of `api`. */
  restarted(api: string): void {
    this.#restarts.inc({ api });
  }

  /** Counts a request of `api` cancelled in its worker. */
  cancelled(api: string, reason: CancelReason): void {
    this.#cancelled.inc({ api, reason });
  }

  /** Counts a replica of `api` added or retired by autoscaling. */
  scaled(api: string, direction: ScaleDirection): void {
    this.#scaleEvents.inc({ api, direction });
  }

  /**
   * Feeds a successful prediction (the worker's UTF-8 JSON) to the API's
   * tracker: `tracker.key` picks a field of a dict prediction, otherwise the
   * whole prediction is used.
   */
  track(api: string, tracker: ResolvedTracker, prediction: Uint8Array): void {
    const value = trackedValue(tracker, prediction);
    if (tracker.modelType === "classification") {
      const label = classLabel(value);
      if (label === undefined) return this.#skipped.inc({ api });
      this.#classChild(api, label).inc();
      return;
    }
    const number = typeof value === "string" && value.trim() !== "" ? Number(value) : value;
    if (typeof number !== "number" || !Number.isFinite(number)) return this.#skipped.inc({ api });
    this.#values.labels({ api }).observe(number);
  }

  /** The Prometheus text exposition and its content type. */
  render(): { readonly body: string; readonly contentType: string } {
    return { body: this.registry.render(), contentType: this.registry.contentType };
  }

  #classChild(api: string, label: string): CounterChild {
    let byClass = this.#classChildren.get(api);
    if (byClass === undefined) {
      byClass = new Map();
      this.#classChildren.set(api, byClass);
    }
    let child = byClass.get(label);
    if (child === undefined) {
      const name = byClass.size >= MAX_CLASSES_PER_API ? "__other__" : label;
      child = byClass.get(name) ?? this.#classes.labels({ api, class: name });
      byClass.set(name, child);
    }
    return child;
  }

  /** Gauges computed from the pools when scraped, around the supervision counters (./metrics_gauges.ts). */
  #scrapeTimeMetrics(sources: MetricsSources): void {
    registerScrapeTimeMetrics(this.registry, sources, [this.#restarts, this.#cancelled, this.#scaleEvents]);
  }
}

/** One decoder for every tracked prediction (decoding keeps no state between calls). */
const DECODER = new TextDecoder();

/** The value a tracker looks at, or `undefined` when there is none. */
function trackedValue(tracker: ResolvedTracker, prediction: Uint8Array): unknown {
  let value: unknown;
  try {
    value = JSON.parse(DECODER.decode(prediction));
  } catch {
    return undefined;
  }
  if (tracker.key === undefined) return value;
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  return (value as Record<string, unknown>)[tracker.key];
}

function classLabel(value: unknown): string | undefined {
  if (typeof value === "string") return value.slice(0, MAX_CLASS_CHARS);
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return undefined;
}
