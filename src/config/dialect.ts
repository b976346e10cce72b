/**
 * Detecting the dialect of a `cortex.yaml` from its shape: which Cortex
 * release's syntax each resource is written in. A file is read in one
 * dialect; a resource written in another is an error naming both lines.
 */

import type { Dialect } from "./types.ts";
import { get } from "./_fields.ts";
import type { Position, YamlMap, YamlNode } from "./_yaml_nodes.ts";

/** How each dialect is named in logs, `validate` and messages. */
export const DIALECT_NAMES: Readonly<Record<Dialect, string>> = {
  python: "Cortex python.inference (kind: api with python:, init(metadata))",
  "0.11": "Cortex 0.10/0.11 (predictor: without type, init(model_path, metadata))",
  "0.12": "Cortex 0.12 (predictor: type: python, class PythonPredictor)",
  "0.13": "Cortex 0.13\u20130.16 (a list of APIs without kind, class PythonPredictor)",
  "0.17":
    "Cortex 0.17\u20130.18 (a list of APIs without kind, with networking or monitoring; payload by Content-Type)",
  "0.19": "Cortex 0.19\u20130.35 (kind: RealtimeAPI / TrafficSplitter, class PythonPredictor)",
};

/** Short names, for messages. */
export const DIALECT_SHORT: Readonly<Record<Dialect, string>> = {
  python: "python.inference",
  "0.11": "Cortex 0.10/0.11",
  "0.12": "Cortex 0.12",
  "0.13": "Cortex 0.13",
  "0.17": "Cortex 0.17/0.18",
  "0.19": "Cortex 0.19\u20130.35",
};

/** The `kind` values of Cortex 0.19 and later (`SyncAPI` was RealtimeAPI's name before 0.19). */
export const LATER_KINDS: readonly string[] = [
  "RealtimeAPI",
  "SyncAPI",
  "TrafficSplitter",
  "AsyncAPI",
  "BatchAPI",
  "TaskAPI",
];

/**
 * Keys of an api without kind that only Cortex 0.17-0.18 have (`local_port`
 * came in 0.16, whose bodies were still always JSON: it marks nothing).
 */
const _LATER_API_KEYS = ["networking", "monitoring"];
/** Keys of `predictor:` that only Cortex 0.18 and later have. */
const _LATER_PREDICTOR_KEYS = ["processes_per_replica", "threads_per_process"];

/** The key of a kindless api that marks it as Cortex 0.17/0.18, if any. */
function _laterKey(item: YamlMap, predictor: YamlNode): string | undefined {
  const top = _LATER_API_KEYS.find((key) => get(item, key) !== undefined);
  if (top !== undefined) return top;
  const compute = get(item, "compute")?.value;
  if (compute?.kind === "map" && get(compute, "inf") !== undefined) return "compute.inf"; // Cortex 0.18
  if (predictor.kind !== "map") return undefined;
  const nested = _LATER_PREDICTOR_KEYS.find((key) => get(predictor, key) !== undefined);
  return nested === undefined ? undefined : `predictor.${nested}`;
}

/** What marks one resource as written in one dialect. */
export interface DialectMark {
  readonly dialect: Dialect;
  /** Where the marking key is. */
  readonly pos: Position;
  /** The marking shape, for messages: `predictor: with type`. */
  readonly shape: string;
}

/**
 * The dialect one resource is written in, or `undefined` when its shape
 * says nothing (a deployment with only a name, a map without kind, api
 * keys or predictor).
 */
export function markOf(item: YamlNode): DialectMark | undefined {
  if (item.kind !== "map") return undefined;
  const at = (key: string): Position => item.entries.find((e) => e.key === key)?.keyPos ?? item.pos;
  const kind = get(item, "kind");
  const kindValue = kind?.value.kind === "scalar" ? kind.value.value : undefined;
  if (kindValue === "deployment") {
    return get(item, "python_root") === undefined
      ? undefined
      : { dialect: "python", pos: at("python_root"), shape: "deployment python_root" };
  }
  if (typeof kindValue === "string" && LATER_KINDS.includes(kindValue)) {
    return { dialect: "0.19", pos: at("kind"), shape: `kind: ${kindValue}` };
  }
  if (get(item, "python") !== undefined) {
    return { dialect: "python", pos: at("python"), shape: "python:" };
  }
  const predictor = get(item, "predictor");
  if (predictor === undefined) return undefined;
  if (kind === undefined) {
    const later = _laterKey(item, predictor.value);
    return later === undefined
      ? { dialect: "0.13", pos: item.pos, shape: "an api without kind" }
      : { dialect: "0.17", pos: item.pos, shape: `an api without kind, with ${later}` };
  }
  const typed = predictor.value.kind === "map" && get(predictor.value, "type") !== undefined;
  return typed
    ? { dialect: "0.12", pos: at("predictor"), shape: "predictor: with type" }
    : { dialect: "0.11", pos: at("predictor"), shape: "predictor: without type" };
}

/** The outcome of {@linkcode detectDialect}. */
export interface Detection {
  readonly dialect: Dialect;
  /** The first marked resource, which decided the dialect; `undefined` when none. */
  readonly first: DialectMark | undefined;
  /** For each resource (by index), its mark when it differs from the file's dialect. */
  readonly conflicts: ReadonlyMap<number, DialectMark>;
}

/**
 * Detects the dialect of a list of resources: the first resource whose
 * shape marks one decides. Without any mark, a list where no item has
 * `kind` is Cortex 0.13, anything else the `python.inference` dialect.
 */
export function detectDialect(items: readonly YamlNode[]): Detection {
  const marks = items.map(markOf);
  const first = marks.find((m) => m !== undefined);
  const kindless = items.length > 0 &&
    items.every((item) => item.kind === "map" && get(item, "kind") === undefined);
  // Kindless lists are one family: any api with a later key makes the whole file 0.17.
  const kindlessFamily = (d: Dialect | undefined) => d === "0.13" || d === "0.17";
  const later = kindlessFamily(first?.dialect) && marks.some((m) => m?.dialect === "0.17");
  const dialect = later ? "0.17" : first?.dialect ?? (kindless ? "0.13" : "python");
  const conflicts = new Map<number, DialectMark>();
  marks.forEach((mark, index) => {
    if (mark === undefined || mark.dialect === dialect) return;
    if (kindlessFamily(mark.dialect) && kindlessFamily(dialect)) return;
    conflicts.set(index, mark);
  });
  return { dialect, first, conflicts };
}

/** The problem text for a resource written in another dialect than `first`. */
export function mixingProblem(mark: DialectMark, first: DialectMark): string {
  return `this resource is written in ${DIALECT_SHORT[mark.dialect]} syntax (${mark.shape}, line ` +
    `${mark.pos.line}), but line ${first.pos.line} is ${
      DIALECT_SHORT[first.dialect]
    } syntax (${first.shape})`;
}
