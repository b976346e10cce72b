/**
 * Connection metrics, read from the listener at scrape time:
 *
 * - `cortex_serve_connections_open` (gauge)
 * - `cortex_serve_connections_accepted_total` (counter)
 * - `cortex_serve_connections_closed_total{reason}` (counter): connections
 *   the server closed, by {@link CloseReason}; those the client closed are
 *   not counted
 * - `cortex_serve_accept_errors_total` (counter): failed `accept` calls
 *
 * @module
 */
import { CLOSE_REASONS, type CloseReason, type ConnectionStats } from "./connections.ts";
import { Counter, Gauge, type Registry } from "./prometheus.ts";

/** What the metrics read from the listener. */
export interface ConnectionSource {
  readonly connections: ConnectionStats;
  readonly acceptErrors: number;
}

/** Adds the connection metrics to `registry`. */
export function registerConnectionMetrics(registry: Registry, source: ConnectionSource): void {
  registry.register(
    new Gauge({
      name: "cortex_serve_connections_open",
      help: "Client connections open now",
      labelNames: [],
      collect: (gauge) => gauge.set({}, source.connections.open),
    }),
  );
  registry.register(
    new Counter({
      name: "cortex_serve_connections_accepted_total",
      help: "Client connections accepted, refused ones included",
      labelNames: [],
      collect: (counter) => _setCounter(counter.labels({}), source.connections.accepted),
    }),
  );
  registry.register(
    new Counter<"reason">({
      name: "cortex_serve_connections_closed_total",
      help:
        "Connections the server closed: header_timeout, keepalive_timeout, body_timeout (after its 408), " +
        "evicted (idle, to make room at --max-connections), over_limit (refused, all busy)",
      labelNames: ["reason"],
      collect: (counter) => {
        for (const reason of CLOSE_REASONS) {
          _setCounter(counter.labels({ reason }), source.connections.closed[reason as CloseReason]);
        }
      },
    }),
  );
  registry.register(
    new Counter({
      name: "cortex_serve_accept_errors_total",
      help: "Failed accepts of a client connection (e.g. out of file descriptors); the server retries",
      labelNames: [],
      collect: (counter) => _setCounter(counter.labels({}), source.acceptErrors),
    }),
  );
}

/** Brings a counter child up to `total`, a count kept by the listener. */
function _setCounter(child: { readonly value: number; inc(by: number): void }, total: number): void {
  child.inc(Math.max(0, total - child.value));
}
