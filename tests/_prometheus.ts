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
