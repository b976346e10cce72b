/**
 * The connection flags of `cortex-serve serve`: `--header-timeout`,
 * `--keepalive-timeout` and `--max-connections`, parsed into
 * {@link ConnectionOptions}. The default of `--max-connections` depends on
 * the open-file limit, known only once it was raised at start, so it is left
 * undefined here and resolved by {@link defaultMaxConnections}.
 *
 * @module
 */
import { parseDuration, parsePositiveInt, UsageError } from "./units.ts";

/** The `parseArgs` definitions of the connection flags. */
export const CONNECTION_FLAGS = {
  "header-timeout": { type: "string" },
  "keepalive-timeout": { type: "string" },
  "max-connections": { type: "string" },
} as const;

/** Default of `--header-timeout`. */
export const DEFAULT_HEADER_TIMEOUT_MS = 30_000;
/** Default of `--keepalive-timeout` (above the 60 s idle timeout of common load balancers). */
export const DEFAULT_KEEPALIVE_TIMEOUT_MS = 75_000;
/** Largest default `--max-connections`, whatever the open-file limit. */
export const MAX_DEFAULT_CONNECTIONS = 4096;
const MAX_CONNECTIONS = 1_000_000;

/** Help text lines for the connection flags. */
export const CONNECTION_HELP =
  `  --header-timeout DUR    close a connection whose request header is not complete
                          DUR after it opened (default 30s)
  --keepalive-timeout DUR close a kept-alive connection that sends no complete
                          request header within DUR of its last response (default 75s)
  --max-connections N     connections open at once; past it the longest-idle one is
                          closed, or 503 when all are busy (default: from the
                          open-file limit, at most ${MAX_DEFAULT_CONNECTIONS})`;

/** The connection flags, resolved. */
export interface ConnectionOptions {
  readonly headerTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
  /** Undefined: derived from the open-file limit at start ({@link defaultMaxConnections}). */
  readonly maxConnections: number | undefined;
}

/** The parsed values of {@link CONNECTION_FLAGS}. */
export interface ConnectionFlagValues {
  readonly "header-timeout"?: string | undefined;
  readonly "keepalive-timeout"?: string | undefined;
  readonly "max-connections"?: string | undefined;
}

/**
 * Resolves the connection flags.
 *
 * @throws {UsageError} for a malformed or zero duration or count
 */
export function parseConnectionFlags(values: ConnectionFlagValues): ConnectionOptions {
  return {
    headerTimeoutMs: _timeout("header-timeout", values["header-timeout"], DEFAULT_HEADER_TIMEOUT_MS),
    keepAliveTimeoutMs: _timeout(
      "keepalive-timeout",
      values["keepalive-timeout"],
      DEFAULT_KEEPALIVE_TIMEOUT_MS,
    ),
    maxConnections: values["max-connections"] === undefined
      ? undefined
      : parsePositiveInt("max-connections", values["max-connections"], MAX_CONNECTIONS),
  };
}

/**
 * The default `--max-connections` for a soft open-file limit: the limit less
 * a quarter of it (at least 64) kept for worker pipes, log and model files,
 * the Python environment; at least 16, at most {@link MAX_DEFAULT_CONNECTIONS}.
 * `256` -> 192, `1024` -> 768, `65536` -> 4096.
 */
export function defaultMaxConnections(openFileLimit: number): number {
  const reserve = Math.max(64, Math.floor(openFileLimit / 4));
  return Math.max(16, Math.min(MAX_DEFAULT_CONNECTIONS, openFileLimit - reserve));
}

function _timeout(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const ms = parseDuration(flag, value);
  if (ms > 0) return ms;
  throw new UsageError(`--${flag}: ${JSON.stringify(value)} must be longer than zero, e.g. 30s`);
}
