/**
 * The positioned YAML tree that validation reads: maps with string keys,
 * lists and scalars, each with its 1-based line and column.
 */

/** A 1-based position in the YAML source. */
export interface Position {
  readonly line: number;
  readonly column: number;
}

/** A YAML map; keys are strings, in source order, merge keys applied. */
export interface YamlMap {
  readonly kind: "map";
  readonly pos: Position;
  readonly entries: readonly YamlEntry[];
}

/** One `key: value` of a {@linkcode YamlMap}. */
export interface YamlEntry {
  readonly key: string;
  readonly keyPos: Position;
  readonly value: YamlNode;
}

/** A YAML sequence. */
export interface YamlSeq {
  readonly kind: "seq";
  readonly pos: Position;
  readonly items: readonly YamlNode[];
}

/** A YAML scalar: string, number, boolean or null. */
export interface YamlScalar {
  readonly kind: "scalar";
  readonly pos: Position;
  readonly value: unknown;
  /** The text as written, without quotes. */
  readonly source: string | undefined;
}

/** Any node of the tree. */
export type YamlNode = YamlMap | YamlSeq | YamlScalar;

/**
 * Converts a node into plain data: maps become objects (built with
 * `Object.fromEntries`, so a `__proto__` key stays an ordinary key), lists
 * become arrays, scalars stay as parsed.
 */
export function toPlain(node: YamlNode): unknown {
  switch (node.kind) {
    case "map":
      return Object.fromEntries(node.entries.map((e) => [e.key, toPlain(e.value)]));
    case "seq":
      return node.items.map(toPlain);
    case "scalar":
      return node.value;
  }
}
