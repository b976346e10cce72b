/**
 * Validates the `compute:` map of an API and applies its defaults.
 */

import type { ResolvedCompute } from "./types.ts";
import { parseCpuQuantity, parseMemoryQuantity } from "./quantity.ts";
import { checkKeys, describe, get, join, readInteger, report, type Scope } from "./_fields.ts";
import type { Position, YamlEntry, YamlMap } from "./_yaml_nodes.ts";

const _KEYS = ["min_replicas", "max_replicas", "init_replicas", "cpu", "mem", "gpu"] as const;

/** A parsed quantity with the text as written. */
interface _Quantity {
  readonly value: number;
  readonly text: string;
}

/**
 * Validates `compute` (absent when `undefined`) and applies defaults:
 * `min_replicas` 1, `max_replicas` and `init_replicas` = `min_replicas`,
 * `gpu` 0.
 *
 * @returns the resolved compute, or `undefined` when an issue was reported
 */
export function validateCompute(
  scope: Scope,
  compute: YamlMap | undefined,
  prefix: string | ((key: string) => string),
): ResolvedCompute | undefined {
  const at = (key: string) => typeof prefix === "string" ? join(prefix, key) : prefix(key);
  if (compute === undefined) {
    return {
      minReplicas: 1,
      maxReplicas: 1,
      initReplicas: 1,
      cpu: undefined,
      memBytes: undefined,
      mem: undefined,
      gpu: 0,
    };
  }
  const before = scope.issues.length;
  if (typeof prefix === "string") checkKeys(scope, compute, prefix, _KEYS);
  const read = (key: string, min: number): number | undefined | null => {
    const entry = get(compute, key);
    if (entry === undefined) return undefined;
    return readInteger(scope, entry, at(key), min) ?? null;
  };
  const min = read("min_replicas", 1);
  const max = read("max_replicas", 1);
  const init = read("init_replicas", 1);
  const gpu = read("gpu", 0);
  const cpu = _quantity(scope, get(compute, "cpu"), at("cpu"), "cpu");
  const mem = _quantity(scope, get(compute, "mem"), at("mem"), "mem");

  const minReplicas = min ?? 1;
  const maxReplicas = max ?? minReplicas;
  const initReplicas = init ?? minReplicas;
  if (min !== null && max !== null && minReplicas > maxReplicas) {
    const which = max === undefined ? "min_replicas" : "max_replicas";
    report(
      scope,
      _valuePos(compute, which),
      at(which),
      max === undefined
        ? `is ${minReplicas}, more than max_replicas (which defaults to min_replicas)`
        : `must be at least min_replicas (${minReplicas}), got ${maxReplicas}`,
      "make min_replicas less than or equal to max_replicas",
    );
  } else if (
    min !== null && max !== null && init !== null && init !== undefined &&
    (initReplicas < minReplicas || initReplicas > maxReplicas)
  ) {
    report(
      scope,
      _valuePos(compute, "init_replicas"),
      at("init_replicas"),
      `must lie between min_replicas (${minReplicas}) and max_replicas (${maxReplicas}), got ${initReplicas}`,
      `set init_replicas to a number from ${minReplicas} to ${maxReplicas}, or raise max_replicas`,
    );
  }
  if (scope.issues.length > before) return undefined;
  return {
    minReplicas,
    maxReplicas,
    initReplicas,
    cpu: cpu?.value,
    memBytes: mem?.value,
    mem: mem?.text,
    gpu: gpu ?? 0,
  };
}

/** Keys of `compute:` (`min_replicas` ... `gpu`), for dialects that split them over several maps. */
export const COMPUTE_KEYS: readonly string[] = _KEYS;

/** Reads `cpu` or `mem`: a string or number, parsed, more than 0. */
function _quantity(
  scope: Scope,
  entry: YamlEntry | undefined,
  path: string,
  kind: "cpu" | "mem",
): _Quantity | undefined {
  if (entry === undefined) return undefined;
  const node = entry.value;
  const fix = kind === "cpu"
    ? 'write a number of cores such as 1 or "500m"'
    : 'write an amount such as "512Mi", "2Gi" or "1G"';
  const raw = node.kind === "scalar" ? node.value : undefined;
  if (typeof raw !== "string" && typeof raw !== "number") {
    report(scope, node.pos, path, `must be a quantity, got ${describe(node)}`, fix);
    return undefined;
  }
  let value: number;
  try {
    value = kind === "cpu" ? parseCpuQuantity(raw) : parseMemoryQuantity(raw);
  } catch (e) {
    if (!(e instanceof RangeError)) throw e;
    report(scope, node.pos, path, _lowerFirst(e.message), fix);
    return undefined;
  }
  if (value <= 0) {
    report(scope, node.pos, path, `must be more than 0, got ${describe(node)}`, fix);
    return undefined;
  }
  const text = typeof raw === "string"
    ? raw
    : (node.kind === "scalar" ? node.source : undefined) ?? String(raw);
  return { value, text };
}

/** Where the value of `key` is written, or the key, or the map. */
function _valuePos(map: YamlMap, key: string): Position {
  const entry = map.entries.find((e) => e.key === key);
  return entry?.value.pos ?? map.pos;
}

function _lowerFirst(text: string): string {
  return text.charAt(0).toLowerCase() + text.slice(1);
}
