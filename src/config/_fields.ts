/**
 * Helpers shared by the validators: issue reporting, key checks and typed
 * reads of YAML values. Each read reports its own issue and returns
 * `undefined` when the value is unusable.
 */

import type { ConfigIssue } from "./errors.ts";
import type { Position, YamlEntry, YamlMap, YamlNode } from "./_yaml_nodes.ts";

/** Where issues go, and which file and resource they belong to. */
export interface Scope {
  readonly file: string;
  readonly resource: string | undefined;
  readonly issues: ConfigIssue[];
}

/** A key that is recognised only to explain why it cannot be used. */
export interface RefusedKey {
  readonly problem: string;
  readonly fix: string;
}

/** Adds an issue at `pos` under `scope`. */
export function report(
  scope: Scope,
  pos: Position | undefined,
  path: string,
  problem: string,
  fix: string,
): void {
  scope.issues.push({
    file: scope.file,
    resource: scope.resource,
    path,
    line: pos?.line,
    column: pos?.column,
    problem,
    fix,
  });
}

/** Joins a key path: `join("compute", "cpu")` is `compute.cpu`. */
export function join(prefix: string, key: string): string {
  return prefix === "" ? key : `${prefix}.${key}`;
}

/** Describes a value for a message: `"two"`, `1.5`, `true`, `a list`, `a map`, `nothing`. */
export function describe(node: YamlNode): string {
  if (node.kind === "map") return "a map";
  if (node.kind === "seq") return "a list";
  const { value } = node;
  if (value === null || value === undefined) return "nothing";
  if (typeof value === "string") {
    const short = value.length > 40 ? `${value.slice(0, 40)}\u2026` : value;
    return JSON.stringify(short);
  }
  return node.source ?? String(value);
}

/**
 * Looks up `key` in `map`. An empty value (`key:` with nothing after it)
 * counts as absent, as it did in Cortex.
 */
export function get(map: YamlMap, key: string): YamlEntry | undefined {
  const entry = map.entries.find((e) => e.key === key);
  if (entry === undefined) return undefined;
  const { value } = entry;
  return value.kind === "scalar" && value.value === null ? undefined : entry;
}

/** The position of `key` in `map`, or of the map when the key is absent. */
export function keyPos(map: YamlMap, key: string): Position {
  return map.entries.find((e) => e.key === key)?.keyPos ?? map.pos;
}

/**
 * Reports every key of `map` outside `allowed`. Keys in `refused` get their
 * own explanation; others get "did you mean" when a valid key is close.
 */
export function checkKeys(
  scope: Scope,
  map: YamlMap,
  prefix: string,
  allowed: readonly string[],
  refused: Readonly<Record<string, RefusedKey>> = {},
): void {
  for (const { key, keyPos } of map.entries) {
    if (allowed.includes(key)) continue;
    const path = join(prefix, key);
    const known = Object.hasOwn(refused, key) ? refused[key] : undefined;
    if (known !== undefined) {
      report(scope, keyPos, path, known.problem, known.fix);
      continue;
    }
    const close = suggest(key, allowed);
    const valid = allowed.join(", ");
    report(
      scope,
      keyPos,
      path,
      close === undefined ? "unknown key" : `unknown key, did you mean "${close}"?`,
      close === undefined
        ? `remove it; valid keys here are ${valid}`
        : `rename it to "${close}" or remove it`,
    );
  }
}

/** The candidate closest to `word` within edit distance 2, if any. */
export function suggest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of candidates) {
    const d = editDistance(word.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

/** Levenshtein distance between two strings. */
export function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current.push(Math.min(
        (previous[j] ?? 0) + 1,
        (current[j - 1] ?? 0) + 1,
        (previous[j - 1] ?? 0) + cost,
      ));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

/** Reads a map; reports and returns `undefined` for anything else. */
export function readMap(
  scope: Scope,
  entry: YamlEntry,
  path: string,
  fix: string,
): YamlMap | undefined {
  if (entry.value.kind === "map") return entry.value;
  report(scope, entry.value.pos, path, `must be a map, got ${describe(entry.value)}`, fix);
  return undefined;
}

/** Reads a string; numbers and booleans are refused, with "quote the value". */
export function readString(
  scope: Scope,
  entry: YamlEntry,
  path: string,
  example: string,
): string | undefined {
  const node = entry.value;
  if (node.kind === "scalar" && typeof node.value === "string") return node.value;
  const scalar = node.kind === "scalar";
  report(
    scope,
    node.pos,
    path,
    `must be a string, got ${describe(node)}`,
    scalar ? `quote the value, e.g. "${node.source ?? ""}"` : `write a string such as ${example}`,
  );
  return undefined;
}

const _INTEGER_SOURCE = /^[-+]?\d+$|^0o[0-7]+$|^0x[\dA-Fa-f]+$/;

/** Reads a whole number of at least `min`; booleans and `1.5` are refused. */
export function readInteger(
  scope: Scope,
  entry: YamlEntry,
  path: string,
  min: number,
): number | undefined {
  const node = entry.value;
  if (
    node.kind === "scalar" && typeof node.value === "number" &&
    Number.isSafeInteger(node.value) && node.value >= min &&
    (node.source === undefined || _INTEGER_SOURCE.test(node.source))
  ) {
    return node.value;
  }
  const quotedNumber = node.kind === "scalar" && typeof node.value === "string" &&
    /^\s*\d+\s*$/.test(node.value);
  report(
    scope,
    node.pos,
    path,
    `must be an integer of at least ${min}, got ${describe(node)}`,
    quotedNumber
      ? `remove the quotes: write ${String(node.value).trim()}, not ${describe(node)}`
      : `write a whole number such as ${Math.max(min, 1)}`,
  );
  return undefined;
}

/** Orders issues by position; issues without a line go last. */
export function bySource(a: ConfigIssue, b: ConfigIssue): number {
  const lineA = a.line ?? Infinity;
  const lineB = b.line ?? Infinity;
  if (lineA !== lineB) return lineA < lineB ? -1 : 1;
  return (a.column ?? 0) - (b.column ?? 0);
}
