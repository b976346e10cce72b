/**
 * JSON Schemas from the Python type hints of `predict`, read from the
 * inference file's text (nothing is imported or run): the first parameter
 * after `self` gives the sample's schema, the return annotation the
 * prediction's. Understood: `int`, `float`, `str`, `bool`, `None`,
 * `dict`/`Dict`/`Mapping[K, V]`, `list`/`List`/`Sequence`/`tuple[...]`,
 * `Optional`, `Union` and `|`, `Literal[...]`, `Any`, string forward
 * references, and `TypedDict` or pydantic `BaseModel` classes defined at the
 * top of the same file (their one-line fields). Anything else is left open
 * (`{}`); no hint at all gives no schema, so the caller keeps its generic one.
 *
 * @module
 */

/** A JSON Schema, as plain JSON. */
export type JsonSchema = Record<string, unknown>;

/** What the hints say; a field is absent when `predict` has no such hint. */
export interface PredictHints {
  readonly sample?: JsonSchema;
  readonly prediction?: JsonSchema;
}

/** How deep class fields may refer to other classes. */
const MAX_DEPTH = 8;

/** How the inference file is called. */
export interface HintOptions {
  /** Server-side batching: `predict` takes and returns lists. */
  readonly batched: boolean;
  /** `predict` is a method of `class PythonPredictor` (Cortex 0.12), not a module function. */
  readonly method: boolean;
}

/**
 * The hints of `predict` in `source`. With `batched` (server-side
 * batching), `predict` takes and returns lists: their item types are a
 * request's and an answer's.
 */
export function predictHints(source: string, options: HintOptions): PredictHints {
  const batched = options.batched;
  const signature = findPredict(source, options.method);
  if (signature === undefined) return {};
  const classes = findClasses(source);
  const schema = (annotation: string | undefined): JsonSchema | undefined => {
    if (annotation === undefined || annotation.trim() === "") return undefined;
    let parsed = parseAnnotation(annotation);
    if (batched) {
      // One request is one item of the list predict takes (and one answer, of the list it returns).
      if (parsed.kind !== "generic" || !isListName(parsed.name) || parsed.args.length === 0) return undefined;
      parsed = parsed.args[0]!;
    }
    return toSchema(parsed, classes, 0);
  };
  const hints: { sample?: JsonSchema; prediction?: JsonSchema } = {};
  const sample = schema(signature.sample);
  if (sample !== undefined) hints.sample = sample;
  const prediction = schema(signature.returns);
  if (prediction !== undefined) hints.prediction = prediction;
  return hints;
}

/**
 * The annotation texts of `predict`'s sample parameter and of its return:
 * the module-level function, or the method of `class PythonPredictor`.
 */
function findPredict(source: string, method: boolean): { sample?: string; returns?: string } | undefined {
  let from = 0;
  if (method) {
    const cls = /^class[ \t]+PythonPredictor\b/m.exec(source);
    if (cls === null) return undefined;
    from = cls.index;
  }
  const pattern = method
    ? /^[ \t]+(?:async[ \t]+)?def[ \t]+predict[ \t]*\(/m
    : /^(?:async[ \t]+)?def[ \t]+predict[ \t]*\(/m;
  const match = pattern.exec(source.slice(from));
  if (match === null) return undefined;
  let i = from + match.index + match[0].length;
  const params = balanced(source, i, ")");
  if (params === undefined) return undefined;
  i = params.end + 1;
  const rest = /^\s*->/.exec(source.slice(i));
  let returns: string | undefined;
  if (rest !== null) {
    const annotation = balanced(source, i + rest[0].length, ":");
    returns = annotation?.text.trim();
  }
  const parts = splitTop(params.text, ",").map((p) => p.trim()).filter((p) => p !== "" && p !== "/");
  const first = parts.find((p, index) => !(index === 0 && /^self\b/.test(p)));
  if (first === undefined || first.startsWith("*")) return { ...(returns ? { returns } : {}) };
  const colon = splitTop(first, ":");
  const sample = colon.length > 1 ? splitTop(colon.slice(1).join(":"), "=")[0]!.trim() : undefined;
  return { ...(sample ? { sample } : {}), ...(returns ? { returns } : {}) };
}

/** Text from `start` up to the first `close` outside brackets and strings; comments dropped. */
function balanced(source: string, start: number, close: string): { text: string; end: number } | undefined {
  let depth = 0;
  let text = "";
  for (let i = start; i < source.length; i++) {
    const ch = source[i]!;
    if (ch === "#") {
      while (i < source.length && source[i] !== "\n") i++;
      continue;
    }
    if (ch === "'" || ch === '"') {
      const end = source.indexOf(ch, i + 1);
      if (end < 0) return undefined;
      text += source.slice(i, end + 1);
      i = end;
      continue;
    }
    if (depth === 0 && ch === close) return { text, end: i };
    if ("([{".includes(ch)) depth++;
    if (")]}".includes(ch)) depth--;
    if (depth < 0) return undefined;
    text += ch;
  }
  return undefined;
}

/** `text` split at `sep` outside brackets and strings. */
function splitTop(text: string, sep: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let quote: string | undefined;
  let current = "";
  for (const ch of text) {
    if (quote !== undefined) {
      if (ch === quote) quote = undefined;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
    } else if ("([{".includes(ch)) {
      depth++;
    } else if (")]}".includes(ch)) {
      depth--;
    } else if (depth === 0 && ch === sep) {
      parts.push(current);
      current = "";
      continue;
    }
    current += ch;
  }
  parts.push(current);
  return parts;
}

/** A parsed annotation. */
type Annotation =
  | { kind: "name"; name: string }
  | { kind: "generic"; name: string; args: Annotation[] }
  | { kind: "union"; options: Annotation[] }
  | { kind: "literal"; value: string | number | boolean | null }
  | { kind: "unknown" };

/** Parses an annotation expression; what it cannot read is `unknown`. */
export function parseAnnotation(text: string): Annotation {
  const options = splitTop(text, "|").map((part) => part.trim());
  if (options.length > 1) return { kind: "union", options: options.map(parseAnnotation) };
  const one = options[0]!;
  const quoted = /^(['"])(.*)\1$/s.exec(one);
  if (quoted) return parseAnnotation(quoted[2]!);
  if (/^-?\d+(\.\d+)?$/.test(one)) return { kind: "literal", value: Number(one) };
  const generic = /^([A-Za-z_][\w.]*)\s*\[(.*)\]$/s.exec(one);
  if (generic) {
    const name = lastName(generic[1]!);
    const args = splitTop(generic[2]!, ",").map((a) => a.trim()).filter((a) => a !== "");
    if (name === "Literal") return { kind: "union", options: args.map(literal) };
    return { kind: "generic", name, args: args.map(parseAnnotation) };
  }
  if (/^[A-Za-z_][\w.]*$/.test(one)) return { kind: "name", name: lastName(one) };
  if (one === "...") return { kind: "name", name: "..." };
  return { kind: "unknown" };
}

function literal(text: string): Annotation {
  const quoted = /^(['"])(.*)\1$/s.exec(text);
  if (quoted) return { kind: "literal", value: quoted[2]! };
  if (text === "True" || text === "False") return { kind: "literal", value: text === "True" };
  if (text === "None") return { kind: "literal", value: null };
  if (/^-?\d+(\.\d+)?$/.test(text)) return { kind: "literal", value: Number(text) };
  return { kind: "unknown" };
}

function lastName(dotted: string): string {
  return dotted.slice(dotted.lastIndexOf(".") + 1);
}

function isListName(name: string): boolean {
  return ["list", "List", "Sequence", "Iterable", "Collection"].includes(name);
}

/** A class of the file whose fields make an object schema. */
interface ClassFields {
  readonly kind: "TypedDict" | "BaseModel";
  /** Every field required unless `total=False` (TypedDict) or a default (BaseModel). */
  readonly fields: readonly { name: string; annotation: string; hasDefault: boolean }[];
  readonly total: boolean;
}

/** Top-level `TypedDict` and `BaseModel` classes of the file, by name. */
function findClasses(source: string): Map<string, ClassFields> {
  const classes = new Map<string, ClassFields>();
  const lines = source.split("\n");
  lines.forEach((line, index) => {
    const head = /^class\s+(\w+)\s*\((.*)\)\s*:\s*(#.*)?$/.exec(line);
    if (!head) return;
    const bases = head[2]!;
    const kind = /\bTypedDict\b/.test(bases)
      ? "TypedDict"
      : /\bBaseModel\b/.test(bases)
      ? "BaseModel"
      : undefined;
    if (kind === undefined) return;
    const fields: { name: string; annotation: string; hasDefault: boolean }[] = [];
    for (const body of lines.slice(index + 1)) {
      if (body.trim() === "" || body.trim().startsWith("#")) continue;
      if (!/^\s/.test(body)) break;
      const field = /^\s+(\w+)\s*:\s*(.+)$/.exec(body.replace(/\s+#.*$/, ""));
      if (!field || /^\s+(def|class|@)/.test(body)) continue;
      const [annotation, ...value] = splitTop(field[2]!, "=");
      const required = value.length === 0 || /^\s*Field\(\s*\.\.\./.test(value.join("="));
      fields.push({ name: field[1]!, annotation: annotation!.trim(), hasDefault: !required });
    }
    classes.set(head[1]!, { kind, fields, total: !/total\s*=\s*False/.test(bases) });
  });
  return classes;
}

const SCALARS: Readonly<Record<string, JsonSchema>> = {
  int: { type: "integer" },
  float: { type: "number" },
  complex: {},
  str: { type: "string" },
  bytes: { type: "string" },
  bool: { type: "boolean" },
  None: { type: "null" },
  NoneType: { type: "null" },
  dict: { type: "object" },
  Dict: { type: "object" },
  Mapping: { type: "object" },
  MutableMapping: { type: "object" },
  list: { type: "array" },
  List: { type: "array" },
  Sequence: { type: "array" },
  tuple: { type: "array" },
  Tuple: { type: "array" },
  Any: {},
  object: {},
};

function toSchema(
  annotation: Annotation,
  classes: ReadonlyMap<string, ClassFields>,
  depth: number,
): JsonSchema {
  if (depth > MAX_DEPTH) return {};
  const inner = (a: Annotation) => toSchema(a, classes, depth + 1);
  switch (annotation.kind) {
    case "unknown":
      return {};
    case "literal":
      return { const: annotation.value };
    case "union": {
      const options = annotation.options.map(inner);
      if (options.some((o) => Object.keys(o).length === 0)) return {};
      return { anyOf: options };
    }
    case "name": {
      const known = SCALARS[annotation.name];
      if (known !== undefined) return { ...known };
      const cls = classes.get(annotation.name);
      return cls === undefined ? {} : classSchema(annotation.name, cls, classes, depth);
    }
    case "generic": {
      const { name, args } = annotation;
      if (name === "Optional" && args.length === 1) {
        return inner({ kind: "union", options: [args[0]!, NONE] });
      }
      if (name === "Union") return inner({ kind: "union", options: args });
      if (["Annotated", "Required", "NotRequired", "Final"].includes(name) && args.length >= 1) {
        return inner(args[0]!);
      }
      if (["dict", "Dict", "Mapping", "MutableMapping"].includes(name)) {
        return args.length === 2
          ? { type: "object", additionalProperties: inner(args[1]!) }
          : { type: "object" };
      }
      if ((name === "tuple" || name === "Tuple") && !(args.length === 2 && isEllipsis(args[1]!))) {
        return { type: "array", prefixItems: args.map(inner), minItems: args.length, maxItems: args.length };
      }
      if (isListName(name) || name === "tuple" || name === "Tuple" || name === "set" || name === "Set") {
        return args.length >= 1 ? { type: "array", items: inner(args[0]!) } : { type: "array" };
      }
      return {};
    }
  }
}

const NONE: Annotation = { kind: "name", name: "None" };

function isEllipsis(annotation: Annotation): boolean {
  return annotation.kind === "name" && annotation.name === "...";
}

function classSchema(
  name: string,
  cls: ClassFields,
  classes: ReadonlyMap<string, ClassFields>,
  depth: number,
): JsonSchema {
  const properties: Record<string, JsonSchema> = {};
  const required: string[] = [];
  for (const field of cls.fields) {
    const parsed = parseAnnotation(field.annotation);
    properties[field.name] = toSchema(parsed, classes, depth + 1);
    const wrapper = parsed.kind === "generic" ? parsed.name : undefined;
    const isRequired = cls.kind === "BaseModel"
      ? !field.hasDefault
      : wrapper === "Required" || (cls.total && wrapper !== "NotRequired");
    if (isRequired) required.push(field.name);
  }
  return { type: "object", title: name, properties, ...(required.length > 0 ? { required } : {}) };
}
