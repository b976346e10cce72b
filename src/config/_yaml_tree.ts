/**
 * Parses YAML text into a small positioned tree for validation.
 *
 * Every node carries its 1-based line and column. Aliases are resolved and
 * `<<` merge keys applied while building the tree, under three caps: the
 * library's `maxAliasCount`, a total node budget and a nesting depth.
 */

import {
  type Alias,
  type Document,
  isAlias,
  isMap,
  isNode,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  parseDocument,
  visit,
} from "yaml";
import type { Position, YamlEntry, YamlMap, YamlNode } from "./_yaml_nodes.ts";

/** A problem that prevents reading the YAML at all. */
export interface YamlProblem {
  readonly pos: Position | undefined;
  readonly problem: string;
  readonly fix: string;
}

/** The outcome of {@linkcode parseYamlTree}. */
export type YamlParseResult =
  | { readonly ok: true; readonly root: YamlNode | undefined }
  | { readonly ok: false; readonly problems: readonly YamlProblem[] };

/** How often one anchor may be used (weighted by nested aliases). */
export const MAX_ALIAS_COUNT = 100;
/** Nodes the resolved tree may hold, counting every alias expansion. */
export const MAX_NODES = 100_000;
/** Deepest nesting of maps and lists. */
export const MAX_DEPTH = 200;

const _START: Position = { line: 1, column: 1 };

/** Raised inside the converter to stop at the first structural problem. */
class _Stop extends Error {
  constructor(readonly detail: YamlProblem) {
    super(detail.problem);
  }
}

/**
 * Parses `text` (one YAML document) into a {@linkcode YamlNode} tree.
 *
 * @returns the root (`undefined` for an empty document) or every syntax problem
 */
export function parseYamlTree(text: string): YamlParseResult {
  const lines = new LineCounter();
  const doc = parseDocument(text, {
    lineCounter: lines,
    merge: true,
    prettyErrors: false,
    uniqueKeys: true,
  });
  const at = (offset: number): Position => {
    const { line, col } = lines.linePos(offset);
    return { line, column: col };
  };
  if (doc.errors.length > 0) {
    return {
      ok: false,
      problems: doc.errors.map((e) => ({
        pos: at(e.pos[0]),
        problem: _syntaxMessage(e.code, e.message),
        fix: _syntaxFix(e.code),
      })),
    };
  }
  const targets = _aliasTargets(doc);
  const unresolved = [...targets].filter(([, t]) => t === undefined);
  if (unresolved.length > 0) {
    return {
      ok: false,
      problems: unresolved.map(([alias]) => ({
        pos: at(alias.range?.[0] ?? 0),
        problem: `Unknown alias "*${alias.source}"`,
        fix: `define the anchor "&${alias.source}" before this line or remove the alias`,
      })),
    };
  }
  const bomb = _aliasBomb(doc, targets, at);
  if (bomb !== undefined) return { ok: false, problems: [bomb] };
  if (doc.contents === null) return { ok: true, root: undefined };
  try {
    const converter = new _Converter(targets, at);
    return { ok: true, root: converter.convert(doc.contents, _START, 0, new Set()) };
  } catch (e) {
    if (e instanceof _Stop) return { ok: false, problems: [e.detail] };
    throw e;
  }
}

/** Maps each alias to the anchored node it refers to (the last one before it). */
function _aliasTargets(doc: Document): Map<Alias, Node | undefined> {
  const anchors = new Map<string, Node>();
  const targets = new Map<Alias, Node | undefined>();
  visit(doc, {
    Node(_key, node) {
      if (isAlias(node)) targets.set(node, anchors.get(node.source));
      else if (node.anchor !== undefined) anchors.set(node.anchor, node);
    },
  });
  return targets;
}

/** Runs the library's alias-expansion check; a problem when it trips. */
function _aliasBomb(
  doc: Document,
  targets: Map<Alias, Node | undefined>,
  at: (offset: number) => Position,
): YamlProblem | undefined {
  try {
    doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT, mapAsMap: true });
    return undefined;
  } catch (e) {
    // Other failures (a bad merge source) are reported with a position later.
    if (!(e instanceof ReferenceError)) return undefined;
    const first = targets.keys().next().value;
    return {
      pos: first === undefined ? undefined : at(first.range?.[0] ?? 0),
      problem: `YAML aliases expand too much (an anchor may be used at most ${MAX_ALIAS_COUNT} times, ` +
        `counting aliases nested inside it): ${e.message}`,
      fix: "write the repeated values out or use fewer aliases",
    };
  }
}

/** Builds the tree, resolving aliases and merge keys within the caps. */
class _Converter {
  #budget = MAX_NODES;
  constructor(
    readonly targets: Map<Alias, Node | undefined>,
    readonly at: (offset: number) => Position,
  ) {}

  /** Converts `node`; `fallback` is used for missing values (`key:` with nothing). */
  convert(node: unknown, fallback: Position, depth: number, open: Set<Node>): YamlNode {
    if (!isNode(node)) {
      return { kind: "scalar", pos: fallback, value: null, source: undefined };
    }
    const pos = node.range ? this.at(node.range[0]) : fallback;
    if (isAlias(node)) return this.#alias(node, pos, depth, open);
    this.#budget -= 1;
    if (this.#budget < 0) {
      this.#stop(pos, `The document expands to more than ${MAX_NODES} values through aliases`);
    }
    if (depth > MAX_DEPTH) this.#stop(pos, `Nested more than ${MAX_DEPTH} levels deep`);
    if (isScalar(node)) {
      return { kind: "scalar", pos, value: node.value, source: node.source };
    }
    if (isSeq(node)) {
      const items = node.items.map((item) => this.convert(item, pos, depth + 1, open));
      return { kind: "seq", pos, items };
    }
    if (isMap(node)) return this.#map(node.items, pos, depth, open);
    return this.#stop(pos, "Unsupported YAML node");
  }

  #alias(node: Alias, pos: Position, depth: number, open: Set<Node>): YamlNode {
    const target = this.targets.get(node);
    if (target === undefined) return this.#stop(pos, `Unknown alias "*${node.source}"`);
    if (open.has(target)) {
      this.#stop(pos, `Alias "*${node.source}" refers to a value that contains it`);
    }
    open.add(target);
    try {
      return this.convert(target, pos, depth, open);
    } finally {
      open.delete(target);
    }
  }

  #map(
    pairs: readonly { key: unknown; value: unknown }[],
    pos: Position,
    depth: number,
    open: Set<Node>,
  ): YamlMap {
    const own: YamlEntry[] = [];
    const merged: YamlEntry[] = [];
    for (const pair of pairs) {
      const keyNode = pair.key;
      const keyPos = isNode(keyNode) && keyNode.range ? this.at(keyNode.range[0]) : pos;
      const value = this.convert(pair.value, keyPos, depth + 1, open);
      if (isScalar(keyNode) && typeof keyNode.value === "symbol") {
        merged.push(...this.#mergeSources(value));
        continue;
      }
      const key = this.convert(keyNode, keyPos, depth + 1, open);
      if (key.kind !== "scalar") {
        this.#stop(keyPos, "Map keys must be plain words, not lists or maps", "write the key as text");
      }
      own.push({ key: String(key.value ?? ""), keyPos, value });
    }
    // Explicit keys win over merged ones; earlier merge sources win over later ones.
    const seen = new Set(own.map((e) => e.key));
    const entries = [...own];
    for (const entry of merged) {
      if (seen.has(entry.key)) continue;
      seen.add(entry.key);
      entries.push(entry);
    }
    return { kind: "map", pos, entries };
  }

  #mergeSources(value: YamlNode): readonly YamlEntry[] {
    const sources = value.kind === "seq" ? value.items : [value];
    const entries: YamlEntry[] = [];
    for (const source of sources) {
      if (source.kind !== "map") {
        this.#stop(source.pos, 'The merge key "<<" needs a map or a list of maps');
      }
      entries.push(...source.entries);
    }
    return entries;
  }

  #stop(
    pos: Position,
    problem: string,
    fix = "simplify the YAML: fewer aliases, less nesting",
  ): never {
    throw new _Stop({ pos, problem, fix });
  }
}

/** Turns a library message into one line, capital first, no trailing period. */
function _syntaxMessage(code: string, message: string): string {
  const first = (message.split("\n")[0] ?? "").replace(/ at line \d+, column \d+.*$/, "")
    .replace(/[.:]\s*$/, "");
  const text = first.length > 0 ? first : `YAML error ${code}`;
  return `Invalid YAML: ${text}`;
}

/** A fix for the most common YAML syntax mistakes. */
function _syntaxFix(code: string): string {
  switch (code) {
    case "DUPLICATE_KEY":
      return "remove one of the repeated keys";
    case "TAB_AS_INDENT":
      return "indent with spaces, not tabs";
    case "MULTIPLE_DOCS":
      return "remove the '---' separator: cortex.yaml holds one document, a list of resources";
    case "BAD_INDENT":
    case "MISSING_CHAR":
    case "UNEXPECTED_TOKEN":
      return "check the indentation and closing brackets or quotes near this position";
    default:
      return "correct the YAML near this position";
  }
}
