/**
 * What supervision counts for metrics: worker restarts, cancelled requests
 * and scale events. Replicas and pools report each event as it happens to a
 * {@link SupervisionCounters} that owns the totals (the server's metrics,
 * src/http/metrics.ts), so nothing is lost when a replica is retired or a
 * pool replaced by a reload between two scrapes.
 *
 * @module
 */
import type { CancelReason } from "./request_errors.ts";

/** Which way autoscaling moved. */
export type ScaleDirection = "up" | "down";

/** Receives supervision events, one call per event, and keeps their totals. */
export interface SupervisionCounters {
  /** A worker of `api` stopped after it was ready (exited, crashed, went over compute.mem) and restarts. */
  restarted(api: string): void;
  /** A running request of `api` was cancelled in its worker. */
  cancelled(api: string, reason: CancelReason): void;
  /** Autoscaling added or retired a replica of `api`. */
  scaled(api: string, direction: ScaleDirection): void;
}

/** Counts nothing: for pools and replicas without metrics (tools, tests). */
export const NO_COUNTERS: SupervisionCounters = {
  restarted() {},
  cancelled() {},
  scaled() {},
};
