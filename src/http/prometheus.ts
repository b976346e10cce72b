/**
 * Prometheus text exposition, format 0.0.4: counters, gauges and histograms
 * with labels, and a registry that renders them for `GET /metrics`.
 *
 * `labels()` binds a child once (its label text escaped and kept); updating a
 * child is a few number updates, with no string building or allocation, so a
 * child may be updated on every request. A labelled series is exposed from
 * its first update (binding a child ahead of time adds no zero series); a
 * family without labels has its one series from the start. A family's
 * `collect` hook runs at every render, to set values read at scrape time.
 *
 * @example
 * const registry = new Registry();
 * const requests = registry.register(
 *   new Counter({ name: "requests_total", help: "Requests", labelNames: ["api"] }),
 * );
 * const child = requests.labels({ api: "iris" }); // bind once
 * child.inc(); // per request
 * registry.render(); // '# HELP requests_total Requests\n# TYPE requests_total counter\nrequests_total{api="iris"} 1\n'
 */

/** The `content-type` of {@linkcode Registry.render}'s text. */
export const CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** One value per label name. */
export type Labels<L extends string> = Readonly<Record<L, string>>;

/** What every family is made of. */
export interface FamilyOptions<L extends string> {
  /** The metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`). */
  readonly name: string;
  /** The `# HELP` text. */
  readonly help: string;
  /** Label names, in the order samples show them. */
  readonly labelNames: readonly L[];
}

/** A value as the format writes it: `NaN`, `+Inf`, `-Inf` or a JavaScript number. */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

/** A label value escaped for the format: backslash, double quote and newline. */
export function escapeLabelValue(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => (c === "\\" ? "\\\\" : c === '"' ? '\\"' : "\\n"));
}

/** `# HELP` text escaped for the format: backslash and newline. */
function escapeHelp(help: string): string {
  return help.replace(/[\\\n]/g, (c) => (c === "\\" ? "\\\\" : "\\n"));
}

/** A counter, gauge or histogram family: its children by label values, rendered together. */
abstract class Family<L extends string, C extends { readonly shown: boolean }> {
  abstract readonly type: "counter" | "gauge" | "histogram";
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly L[];
  /** Children by their label text (`api="a",status="200"`), in the order they were bound. */
  readonly #children = new Map<string, C>();

  constructor(options: FamilyOptions<L>, reserved: readonly string[] = []) {
    if (!METRIC_NAME.test(options.name)) throw new TypeError(`Invalid metric name: "${options.name}"`);
    if (new Set(options.labelNames).size !== options.labelNames.length) {
      throw new TypeError(`Duplicate label name in ${options.name}: ${options.labelNames.join(", ")}`);
    }
    for (const label of options.labelNames) {
      if (!LABEL_NAME.test(label) || label.startsWith("__") || reserved.includes(label)) {
        throw new TypeError(`Invalid label name in ${options.name}: "${label}"`);
      }
    }
    this.name = options.name;
    this.help = options.help;
    this.labelNames = [...options.labelNames];
  }

  /** The child for these label values, bound once: keep it and update it directly. */
  labels(values: Labels<L>): C {
    let text = "";
    for (const name of this.labelNames) {
      const value: unknown = values[name];
      if (typeof value !== "string") {
        throw new TypeError(`Label "${name}" of ${this.name} must be a string, got ${typeof value}`);
      }
      text += `${text === "" ? "" : ","}${name}="${escapeLabelValue(value)}"`;
    }
    let child = this.#children.get(text);
    if (child === undefined) {
      child = this.newChild(text);
      this.#children.set(text, child);
    }
    return child;
  }

  /** Drops every series (a gauge set afresh at each scrape); children bound before are no longer shown. */
  reset(): void {
    this.#children.clear();
    if (this.labelNames.length === 0) this.labels({} as Labels<L>);
  }

  /** Sets values read at scrape time; the registry calls it before {@linkcode render}. */
  collect(): void {}

  /** The family's `# HELP` and `# TYPE` lines and its samples, newline-separated. */
  render(): string {
    const lines = [`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.type}`];
    for (const [text, child] of this.#children) {
      if (child.shown) this.samples(child, text, lines);
    }
    return lines.join("\n");
  }

  /** Makes the child of label text `text` (shown from the start when the family has no labels). */
  protected abstract newChild(text: string): C;
  /** Appends the sample lines of one child. */
  protected abstract samples(child: C, text: string, lines: string[]): void;
}

/** `{text}`, or nothing for no labels. */
function braces(text: string): string {
  return text === "" ? "" : `{${text}}`;
}

/** A family whose series are one number each (counters, gauges), with an optional scrape-time hook. */
abstract class ValueFamily<L extends string, C extends { readonly shown: boolean; readonly value: number }, F>
  extends Family<L, C> {
  readonly #collect: ((family: F) => void) | undefined;

  constructor(options: FamilyOptions<L> & { readonly collect?: (family: F) => void }) {
    super(options);
    this.#collect = options.collect;
    this.reset();
  }

  override collect(): void {
    this.#collect?.(this as unknown as F);
  }

  protected samples(child: C, text: string, lines: string[]): void {
    lines.push(`${this.name}${braces(text)} ${formatValue(child.value)}`);
  }
}

/** One series of a counter. */
export class CounterChild {
  value = 0;
  shown: boolean;

  constructor(shown: boolean) {
    this.shown = shown;
  }

  /** Adds `by` (default 1; finite, not negative). */
  inc(by = 1): void {
    if (!(by >= 0 && by < Infinity)) {
      throw new RangeError(`A counter only goes up by a finite number, got ${by}`);
    }
    this.value += by;
    this.shown = true;
  }
}

/** A counter family. */
export class Counter<L extends string> extends ValueFamily<L, CounterChild, Counter<L>> {
  readonly type = "counter";

  /** Adds `by` to the series of `labels` (a lookup: bind a child instead on a hot path). */
  inc(labels: Labels<L>, by = 1): void {
    this.labels(labels).inc(by);
  }

  protected newChild(text: string): CounterChild {
    return new CounterChild(text === "");
  }
}

/** One series of a gauge. */
export class GaugeChild {
  value = 0;
  shown: boolean;

  constructor(shown: boolean) {
    this.shown = shown;
  }

  /** Sets the value. */
  set(value: number): void {
    this.value = value;
    this.shown = true;
  }
}

/** A gauge family. */
export class Gauge<L extends string> extends ValueFamily<L, GaugeChild, Gauge<L>> {
  readonly type = "gauge";

  /** Sets the series of `labels` to `value`. */
  set(labels: Labels<L>, value: number): void {
    this.labels(labels).set(value);
  }

  protected newChild(text: string): GaugeChild {
    return new GaugeChild(text === "");
  }
}

/** One series of a histogram: a count per bucket (not cumulative), the sum and the count. */
export class HistogramChild {
  readonly #bounds: Float64Array;
  /** Observations per bucket, `counts[i]` for `bounds[i - 1] < value <= bounds[i]`. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  shown: boolean;

  constructor(bounds: Float64Array, shown: boolean) {
    this.#bounds = bounds;
    this.counts = new Float64Array(bounds.length);
    this.shown = shown;
  }

  /** Counts one observation of a finite `value`. */
  observe(value: number): void {
    if (!Number.isFinite(value)) throw new RangeError(`A histogram observes finite numbers, got ${value}`);
    const bounds = this.#bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    if (i < bounds.length) this.counts[i]!++;
    this.sum += value;
    this.count++;
    this.shown = true;
  }
}

/** A histogram family; `buckets` are the upper bounds, increasing (`+Inf` is added). */
export class Histogram<L extends string> extends Family<L, HistogramChild> {
  readonly type = "histogram";
  readonly #bounds: Float64Array;
  /** `le="..."` of each bucket. */
  readonly #le: readonly string[];

  constructor(options: FamilyOptions<L> & { readonly buckets: readonly number[] }) {
    super(options, ["le"]);
    const buckets = options.buckets;
    if (buckets.some((b, i) => !Number.isFinite(b) || (i > 0 && b <= buckets[i - 1]!))) {
      throw new RangeError(`Buckets of ${options.name} must be finite and increasing: ${buckets.join(", ")}`);
    }
    this.#bounds = Float64Array.from(buckets);
    this.#le = buckets.map((b) => `le="${formatValue(b)}"`);
    this.reset();
  }

  protected newChild(text: string): HistogramChild {
    return new HistogramChild(this.#bounds, text === "");
  }

  protected samples(child: HistogramChild, text: string, lines: string[]): void {
    const labels = text === "" ? "" : `,${text}`;
    let cumulative = 0;
    child.counts.forEach((count, i) => {
      cumulative += count;
      lines.push(`${this.name}_bucket{${this.#le[i]}${labels}} ${formatValue(cumulative)}`);
    });
    lines.push(`${this.name}_bucket{le="+Inf"${labels}} ${formatValue(child.count)}`);
    lines.push(`${this.name}_sum${braces(text)} ${formatValue(child.sum)}`);
    lines.push(`${this.name}_count${braces(text)} ${formatValue(child.count)}`);
  }
}

/** What a registry needs of a family. */
export interface MetricFamily {
  readonly name: string;
  collect(): void;
  render(): string;
}

/** Families rendered together, in the order registered. */
export class Registry {
  readonly contentType: string = CONTENT_TYPE;
  readonly #families = new Map<string, MetricFamily>();

  /** Adds `family` (its name must be new here) and returns it. */
  register<F extends MetricFamily>(family: F): F {
    if (this.#families.has(family.name)) {
      throw new TypeError(`A metric named ${family.name} is already registered`);
    }
    this.#families.set(family.name, family);
    return family;
  }

  /** The text exposition: each family's collect hook runs first; families are separated by a blank line. */
  render(): string {
    const parts: string[] = [];
    for (const family of this.#families.values()) {
      family.collect();
      parts.push(family.render());
    }
    return `${parts.join("\n\n")}\n`;
  }
}
