/**
 * Test helper: a strict parser of the Prometheus text exposition format
 * (version 0.0.4), so tests read `/metrics` the way a scraper would.
 */

/** One sample line. */
export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** A parsed exposition: families by name, and every sample. */
export interface Exposition {
  readonly types: ReadonlyMap<string, string>;
  readonly samples: readonly Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const SUFFIXES: Readonly<Record<string, readonly string[]>> = {
  counter: [""],
  gauge: [""],
  histogram: ["_bucket", "_sum", "_count"],
  summary: ["", "_sum", "_count"],
  untyped: [""],
};

/** Parses `text`; throws with the line number on anything malformed. */
export function parsePrometheus(text: string): Exposition {
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  text.split("\n").forEach((line, i) => {
    const fail = (why: string): never => {
      throw new SyntaxError(`/metrics line ${i + 1}: ${why}: ${JSON.stringify(line)}`);
    };
    if (line.trim() === "") return;
    if (line.startsWith("#")) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (m === null) return; // a plain comment
      if (!NAME.test(m[2]!)) fail("bad metric name");
      if (m[1] === "TYPE") {
        if (!(m[3]! in SUFFIXES)) fail("unknown type");
        if (types.has(m[2]!)) fail("second TYPE line");
        types.set(m[2]!, m[3]!);
      }
      return;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)( -?\d+)?$/.exec(line) ?? fail("not a sample");
    const name = m[1]!;
    const family = [...types.entries()].find(([base, type]) =>
      SUFFIXES[type]!.some((suffix) => base + suffix === name)
    );
    if (family === undefined) fail("sample without a TYPE line");
    const labels = parseLabels(m[2] ?? "", fail);
    if (family![1] === "histogram" && name.endsWith("_bucket") && !("le" in labels)) {
      fail("bucket without le");
    }
    const value = m[3] === "+Inf" ? Infinity : m[3] === "-Inf" ? -Infinity : Number(m[3]);
    if (Number.isNaN(value) && m[3] !== "NaN") fail("bad value");
    samples.push({ name, labels, value });
  });
  return { types, samples };
}

function parseLabels(text: string, fail: (why: string) => never): Record<string, string> {
  const labels: Record<string, string> = {};
  if (text === "") return labels;
  const body = text.slice(1, -1);
  const re = /\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)/y;
  let at = 0;
  while (at < body.length) {
    re.lastIndex = at;
    const m = re.exec(body) ?? fail("bad labels");
    if (m[1]! in labels) fail("duplicate label");
    labels[m[1]!] = m[2]!.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
    at = re.lastIndex;
  }
  return labels;
}

/** The value of the one sample named `name` whose labels include `labels`; 0 when absent. */
export function valueOf(
  exposition: Exposition,
  name: string,
  labels: Readonly<Record<string, string>> = {},
): number {
  const found = exposition.samples.filter((s) =>
    s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)
  );
  if (found.length > 1) throw new Error(`${found.length} samples of ${name} match ${JSON.stringify(labels)}`);
  return found[0]?.value ?? 0;
}

/** Scrapes `url` and parses the answer. */
export async function scrape(url: string): Promise<Exposition> {
  const res = await fetch(url);
  if (res.status !== 200) throw new Error(`GET ${url}: ${res.status} ${await res.text()}`);
  if (!(res.headers.get("content-type") ?? "").startsWith("text/plain; version=0.0.4")) {
    throw new Error(`GET ${url}: content-type ${res.headers.get("content-type")}`);
  }
  return parsePrometheus(await res.text());
}

/** `name="value"`, the value escaping only backslash, double quote and newline. */
const LABEL = String.raw`[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"`;
const SAMPLE = new RegExp(
  String.raw`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(${LABEL}(?:,${LABEL})*,?)?\})? (\S+)(?: (-?\d+))?$`,
);
const FLOAT = /^(?:[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|NaN|[+-]Inf)$/;

/**
 * Checks `text` line by line against the 0.0.4 grammar and the rules a
 * scraper relies on; returns every problem found (empty when it conforms).
 * Beyond `parsePrometheus`: the text ends with a newline; HELP and TYPE come
 * at most once per family and before its samples; a family's lines are one
 * group; label values use only the `\\`, `\"` and `\n` escapes; a series
 * appears once; histogram buckets are cumulative in `le` order and end with
 * `le="+Inf"`, equal to `_count`, with a `_sum`.
 */
export function checkExposition(text: string): string[] {
  const problems: string[] = [];
  if (text !== "" && !text.endsWith("\n")) problems.push("the text does not end with a newline");
  const types = new Map<string, string>();
  const helps = new Set<string>();
  const done = new Set<string>();
  const series = new Set<string>();
  /** Per histogram series (family + labels without le): its buckets, sum and count. */
  const histograms = new Map<string, { buckets: [number, number][]; sum?: number; count?: number }>();
  let current: string | undefined;
  const enter = (family: string, i: number) => {
    if (family === current) return;
    if (done.has(family)) problems.push(`line ${i + 1}: ${family} continues after other families`);
    if (current !== undefined) done.add(current);
    current = family;
  };
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  lines.forEach((line, i) => {
    if (line === "") return;
    const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*)(?: (.*))?$/.exec(line);
    if (line.startsWith("#")) {
      if (meta === null) return;
      const [, kind, name, rest] = meta as unknown as [string, string, string, string | undefined];
      enter(name, i);
      if (kind === "HELP") {
        if (helps.has(name)) problems.push(`line ${i + 1}: second HELP for ${name}`);
        if (/\\[^\\n]/.test((rest ?? "").replace(/\\\\/g, ""))) {
          problems.push(`line ${i + 1}: bad escape in HELP`);
        }
        helps.add(name);
      } else {
        if (types.has(name)) problems.push(`line ${i + 1}: second TYPE for ${name}`);
        const names = (SUFFIXES[rest ?? ""] ?? []).map((suffix) => `${name}${suffix}{`);
        if ([...series].some((s) => names.some((n) => s.startsWith(n)))) {
          problems.push(`line ${i + 1}: TYPE for ${name} after its samples`);
        }
        if (!((rest ?? "") in SUFFIXES)) problems.push(`line ${i + 1}: unknown type ${rest}`);
        types.set(name, rest ?? "");
      }
      return;
    }
    const m = SAMPLE.exec(line);
    if (m === null) return problems.push(`line ${i + 1}: not a sample: ${JSON.stringify(line)}`);
    const [, name, labelText = "", value] = m as unknown as [string, string, string | undefined, string];
    if (!FLOAT.test(value)) problems.push(`line ${i + 1}: bad value ${value}`);
    const family = [...types.entries()].find(([base, type]) =>
      SUFFIXES[type]!.some((suffix) => base + suffix === name)
    );
    enter(family?.[0] ?? name, i);
    const labels = [...labelText.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((
      l,
    ) => [l[1]!, l[2]!]);
    if (new Set(labels.map(([k]) => k)).size !== labels.length) {
      problems.push(`line ${i + 1}: duplicate label`);
    }
    const key = `${name}{${labels.map(([k, v]) => `${k}=${v}`).sort().join(",")}}`;
    if (series.has(key)) problems.push(`line ${i + 1}: second sample of ${key}`);
    series.add(key);
    if (family?.[1] !== "histogram") return;
    const base = family[0];
    const le = labels.find(([k]) => k === "le")?.[1];
    const rest = labels.filter(([k]) => k !== "le").map(([k, v]) => `${k}=${v}`).sort().join(",");
    const h = histograms.get(`${base}{${rest}}`) ?? { buckets: [] };
    histograms.set(`${base}{${rest}}`, h);
    const number = value === "+Inf" ? Infinity : value === "-Inf" ? -Infinity : Number(value);
    if (name === `${base}_bucket`) {
      if (le === undefined || !FLOAT.test(le)) {
        return problems.push(`line ${i + 1}: bucket without a valid le`);
      }
      h.buckets.push([le === "+Inf" ? Infinity : Number(le), number]);
    } else if (name === `${base}_sum`) h.sum = number;
    else h.count = number;
  });
  for (const [key, h] of histograms) {
    const sorted = [...h.buckets].sort((a, b) => a[0] - b[0]);
    if (sorted.some(([, n], i) => i > 0 && n < sorted[i - 1]![1])) {
      problems.push(`${key}: buckets not cumulative`);
    }
    const inf = sorted.at(-1);
    if (inf === undefined || inf[0] !== Infinity) problems.push(`${key}: no le="+Inf" bucket`);
    else if (inf[1] !== h.count) problems.push(`${key}: le="+Inf" is ${inf[1]}, _count is ${h.count}`);
    if (h.sum === undefined) problems.push(`${key}: no _sum`);
  }
  return problems;
}
