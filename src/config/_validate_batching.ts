/**
 * Validates `server_side_batching:` of an API (Cortex's predictor setting):
 * `max_batch_size` 2-1024 and `batch_interval`, a duration above 0 and at
 * most 10 s.
 */

import type { ResolvedBatching } from "./types.ts";
import { checkKeys, describe, get, join, keyPos, readMap, report, type Scope } from "./_fields.ts";
import type { YamlMap } from "./_yaml_nodes.ts";

/** Smallest and largest `max_batch_size`. */
export const BATCH_SIZE_RANGE = { min: 2, max: 1024 } as const;
/** Longest `batch_interval`, in milliseconds. */
export const MAX_BATCH_INTERVAL_MS = 10_000;

const _KEYS = ["max_batch_size", "batch_interval"];
const _EXAMPLE = 'write "server_side_batching:" with "max_batch_size: 8" and "batch_interval: 5ms" below it';
const _TERM = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m)/y;
const _UNIT_MS: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  "µs": 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
};

/**
 * Parses a Go-style duration as Cortex wrote them: `5ms`, `0.1s`, `1s500ms`,
 * `250us`. Units are ns, us (µs), ms, s and m; a unit is required.
 *
 * @returns milliseconds
 * @throws {RangeError} when `text` is not such a duration
 */
export function parseBatchInterval(text: string): number {
  const trimmed = text.trim();
  let ms = 0;
  let at = 0;
  while (at < trimmed.length) {
    _TERM.lastIndex = at;
    const match = _TERM.exec(trimmed);
    if (match === null) break;
    ms += Number(match[1]) * _UNIT_MS[match[2]!]!;
    at = _TERM.lastIndex;
  }
  if (at === 0 || at !== trimmed.length) {
    throw new RangeError(`Not a duration: ${JSON.stringify(text)}`);
  }
  return ms;
}

/**
 * Validates `server_side_batching` of `map` (an api, or a `predictor:` map
 * of a later dialect); `prefix` is the key path of `map` for messages.
 *
 * @returns the settings, `undefined` when the key is absent, `null` after an issue
 */
export function validateBatching(
  scope: Scope,
  map: YamlMap,
  prefix: string,
): ResolvedBatching | undefined | null {
  const path = join(prefix, "server_side_batching");
  const entry = get(map, "server_side_batching");
  if (entry === undefined) return undefined;
  const batching = readMap(scope, entry, path, _EXAMPLE);
  if (batching === undefined) return null;
  const before = scope.issues.length;
  checkKeys(scope, batching, path, _KEYS);
  const maxBatchSize = _maxBatchSize(scope, batching, path);
  const batchIntervalMs = _batchInterval(scope, batching, path);
  if (scope.issues.length > before || maxBatchSize === undefined || batchIntervalMs === undefined) {
    return null;
  }
  return { maxBatchSize, batchIntervalMs };
}

function _maxBatchSize(scope: Scope, batching: YamlMap, prefix: string): number | undefined {
  const path = join(prefix, "max_batch_size");
  const entry = get(batching, "max_batch_size");
  const { min, max } = BATCH_SIZE_RANGE;
  if (entry === undefined) {
    report(
      scope,
      keyPos(batching, "max_batch_size"),
      path,
      "is required",
      'add "max_batch_size: 8" (the most requests one predict call receives)',
    );
    return undefined;
  }
  const node = entry.value;
  const value = node.kind === "scalar" ? node.value : undefined;
  if (typeof value === "number" && Number.isInteger(value) && value >= min && value <= max) return value;
  const quoted = typeof value === "string" && /^\s*\d+\s*$/.test(value);
  report(
    scope,
    node.pos,
    path,
    `must be a whole number from ${min} to ${max}, got ${describe(node)}`,
    quoted
      ? `remove the quotes: write ${String(value).trim()}`
      : typeof value === "number" && value < min
      ? "write at least 2, or remove server_side_batching to call predict once per request"
      : `write a whole number from ${min} to ${max}, such as 8`,
  );
  return undefined;
}

function _batchInterval(scope: Scope, batching: YamlMap, prefix: string): number | undefined {
  const path = join(prefix, "batch_interval");
  const entry = get(batching, "batch_interval");
  if (entry === undefined) {
    report(
      scope,
      keyPos(batching, "batch_interval"),
      path,
      "is required",
      'add "batch_interval: 5ms" (how long the first request of a batch may wait for others)',
    );
    return undefined;
  }
  const node = entry.value;
  const value = node.kind === "scalar" ? node.value : undefined;
  if (typeof value === "number") {
    const text = describe(node);
    report(
      scope,
      node.pos,
      path,
      `must be a duration with its unit, got ${describe(node)}`,
      `write the unit, such as "${text}s" or "${text}ms"`,
    );
    return undefined;
  }
  let ms: number | undefined;
  if (typeof value === "string") {
    try {
      ms = parseBatchInterval(value);
    } catch (e) {
      if (!(e instanceof RangeError)) throw e;
    }
  }
  if (ms === undefined) {
    report(
      scope,
      node.pos,
      path,
      `must be a duration such as "5ms" or "0.1s", got ${describe(node)}`,
      'write a number followed by ns, us, ms, s or m, such as "5ms"',
    );
    return undefined;
  }
  if (ms <= 0 || ms > MAX_BATCH_INTERVAL_MS) {
    report(
      scope,
      node.pos,
      path,
      `must be above 0 and at most 10s, got ${describe(node)}`,
      'write a short wait such as "5ms" or "0.1s"',
    );
    return undefined;
  }
  return ms;
}
