/**
 * Detecting the dialect of a `cortex.yaml` from its shape: which Cortex
 * release's syntax each resource is written in. A file is read in one
 * dialect; a resource written in another is an error naming both lines.
 */

import type { Dialect } from "./types.ts";
import { get } from "./_fields.ts";
import type { Position, YamlNode } from "./_yaml_nodes.ts";

/** How each dialect is named in logs, `validate` and messages. */
export const DIALECT_NAMES: Readonly<Record<Dialect, string>> = {
  python: "Cortex python.inference (kind: api with python:, init(metadata))",
  "0.11": "Cortex 0.10/0.11 (predictor: without type, init(model_path, metadata))",
  "0.12": "Cortex 0.12 (predictor: type: python, class PythonPredictor)",
  "0.13": "Cortex 0.13 (a list of APIs without kind, class PythonPredictor)",
};

/** Short names, for messages. */
export const DIALECT_SHORT: Readonly<Record<Dialect, string>> = {
  python: "python.inference",
  "0.11": "Cortex 0.10/0.11",
  "0.12": "Cortex 0.12",
  "0.13": "Cortex 0.13",
};

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
  if (get(item, "python") !== undefined) {
    return { dialect: "python", pos: at("python"), shape: "python:" };
  }
  const predictor = get(item, "predictor");
  if (predictor === undefined) return undefined;
  if (kind === undefined) {
    return { dialect: "0.13", pos: item.pos, shape: "an api without kind" };
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
  const dialect = first?.dialect ?? (kindless ? "0.13" : "python");
  const conflicts = new Map<number, DialectMark>();
  marks.forEach((mark, index) => {
    if (mark !== undefined && mark.dialect !== dialect) conflicts.set(index, mark);
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
