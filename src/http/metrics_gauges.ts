/**
 * The metrics read at scrape time (`GET /metrics`, ./metrics.ts): queue
 * depth, durable jobs, predictions in flight, replicas by state, each
 * replica's last init time, request bodies being read, and the build. They
 * are computed from the pools serving when scraped, so pools may be swapped
 * (reload) without telling anyone; nothing here runs per request.
 *
 * @module
 */
import { Gauge, type MetricFamily, type Registry } from "./prometheus.ts";
import { REPLICA_STATES } from "../supervision/replica_states.ts";
import type { MetricsSources } from "./metrics.ts";

/**
 * Registers the scrape-time gauges of `sources` in `registry`, with
 * `counters` (the supervision counters, which count as events happen) in
 * their place in the exposition, after the replica gauges.
 */
export function registerScrapeTimeMetrics(
  registry: Registry,
  sources: MetricsSources,
  counters: readonly MetricFamily[],
): void {
  const pools = sources.pools;
  registry.register(
    new Gauge({
      name: "cortex_serve_queue_depth",
      help: "Requests waiting for a replica",
      labelNames: ["api"],
      collect(gauge) {
        gauge.reset();
        for (const pool of pools()) gauge.set({ api: pool.api }, pool.queueLength);
      },
    }),
  );
  const jobs = sources.jobs;
  if (jobs !== undefined) {
    registry.register(
      new Gauge({
        name: "cortex_serve_jobs",
        help: "Durable jobs by status: in_queue waits for a replica, in_progress runs",
        labelNames: ["api", "status"],
        collect(gauge) {
          gauge.reset();
          for (const pool of pools()) {
            const depth = jobs(pool.api);
            gauge.set({ api: pool.api, status: "in_queue" }, depth.inQueue);
            gauge.set({ api: pool.api, status: "in_progress" }, depth.inProgress);
          }
        },
      }),
    );
  }
  registry.register(
    new Gauge({
      name: "cortex_serve_in_flight_requests",
      help: "Predictions running in a worker",
      labelNames: ["api"],
      collect(gauge) {
        gauge.reset();
        for (const pool of pools()) gauge.set({ api: pool.api }, pool.inFlight);
      },
    }),
  );
  registry.register(
    new Gauge({
      name: "cortex_serve_replicas",
      help: "Replicas by state",
      labelNames: ["api", "state"],
      collect(gauge) {
        gauge.reset();
        for (const pool of pools()) {
          const counts = pool.counts();
          for (const state of REPLICA_STATES) gauge.set({ api: pool.api, state }, counts[state]);
        }
      },
    }),
  );
  for (const counter of counters) registry.register(counter);
  registry.register(
    new Gauge({
      name: "cortex_serve_init_duration_seconds",
      help: "How long the last successful start (import + init) of each replica took",
      labelNames: ["api", "replica"],
      collect(gauge) {
        gauge.reset();
        for (const pool of pools()) {
          for (const replica of pool.replicas) {
            if (replica.initMs === undefined) continue;
            gauge.set({ api: pool.api, replica: String(replica.index) }, replica.initMs / 1000);
          }
        }
      },
    }),
  );
  const reading = sources.bodiesReading;
  if (reading !== undefined) {
    registry.register(
      new Gauge({
        name: "cortex_serve_request_bodies_reading",
        labelNames: [],
        help: "Request bodies being received now (each is given up after --body-timeout without a byte)",
        collect(gauge) {
          gauge.set({}, reading());
        },
      }),
    );
  }
  if (sources.build !== undefined) {
    const build = registry.register(
      new Gauge({
        name: "cortex_serve_build_info",
        help: "Always 1; labels name the program, Deno and worker protocol versions",
        labelNames: ["version", "deno", "protocol"],
      }),
    );
    build.set({
      version: sources.build.version,
      deno: Deno.version.deno,
      protocol: String(sources.build.protocol),
    }, 1);
  }
}
