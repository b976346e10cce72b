/** The Prometheus text exposition behind `/metrics`: exact text, escaping, histograms, resets, grammar. */
import assert from "node:assert/strict";
import {
  CONTENT_TYPE,
  Counter,
  escapeLabelValue,
  formatValue,
  Gauge,
  Histogram,
  Registry,
} from "../src/http/prometheus.ts";
import { checkExposition, parsePrometheus, valueOf } from "./_prometheus.ts";

/** Renders `registry`, checks it against the grammar, and returns the text. */
function rendered(registry: Registry): string {
  const text = registry.render();
  assert.deepEqual(checkExposition(text), []);
  parsePrometheus(text);
  return text;
}

Deno.test("prometheus: a counter renders HELP, TYPE and one line per series, families apart by a blank line", () => {
  const registry = new Registry();
  const requests = registry.register(
    new Counter({ name: "requests_total", help: "Requests by api", labelNames: ["api", "status"] }),
  );
  const ok = requests.labels({ api: "a", status: "200" });
  ok.inc();
  ok.inc();
  requests.inc({ api: "b", status: "503" }, 3);
  assert.equal(requests.labels({ api: "a", status: "200" }), ok, "a child is bound once");
  registry.register(new Gauge({ name: "up", help: "Always 1", labelNames: [] })).labels({}).set(1);
  assert.equal(
    rendered(registry),
    "# HELP requests_total Requests by api\n" +
      "# TYPE requests_total counter\n" +
      'requests_total{api="a",status="200"} 2\n' +
      'requests_total{api="b",status="503"} 3\n' +
      "\n" +
      "# HELP up Always 1\n" +
      "# TYPE up gauge\n" +
      "up 1\n",
  );
  assert.equal(registry.contentType, "text/plain; version=0.0.4; charset=utf-8");
  assert.equal(CONTENT_TYPE, registry.contentType);
});

Deno.test("prometheus: label values escape backslash, double quote and newline; HELP escapes backslash and newline", () => {
  assert.equal(escapeLabelValue('a\\b"c\nd'), 'a\\\\b\\"c\\nd');
  assert.equal(escapeLabelValue("plain ünïcode, = {}"), "plain ünïcode, = {}");
  const registry = new Registry();
  const counter = registry.register(
    new Counter({ name: "odd_total", help: 'Help with \\ and\nnewline and "quotes"', labelNames: ["v"] }),
  );
  const values = ["back\\slash", 'dq"uote', "new\nline", '\\"\n', "", "ok"];
  values.forEach((v, i) => counter.inc({ v }, i + 1));
  const text = rendered(registry);
  assert.equal(text.split("\n")[0], '# HELP odd_total Help with \\\\ and\\nnewline and "quotes"');
  assert.ok(text.includes('odd_total{v="back\\\\slash"} 1\n'));
  assert.ok(text.includes('odd_total{v="dq\\"uote"} 2\n'));
  assert.ok(text.includes('odd_total{v="new\\nline"} 3\n'));
  assert.ok(text.includes('odd_total{v="\\\\\\"\\n"} 4\n'));
  assert.ok(text.includes('odd_total{v=""} 5\n'));
  const parsed = parsePrometheus(text);
  values.forEach((v, i) => assert.equal(valueOf(parsed, "odd_total", { v }), i + 1, JSON.stringify(v)));
});

Deno.test("prometheus: histogram buckets are cumulative, le is inclusive, +Inf equals _count", () => {
  const registry = new Registry();
  const latency = registry.register(
    new Histogram({ name: "latency_seconds", help: "Latency", labelNames: ["api"], buckets: [0.1, 1, 5] }),
  );
  const child = latency.labels({ api: "a" });
  for (const v of [0.05, 0.1, 0.5, 1, 3, 7, 100]) child.observe(v);
  assert.equal(
    rendered(registry),
    "# HELP latency_seconds Latency\n" +
      "# TYPE latency_seconds histogram\n" +
      'latency_seconds_bucket{le="0.1",api="a"} 2\n' +
      'latency_seconds_bucket{le="1",api="a"} 4\n' +
      'latency_seconds_bucket{le="5",api="a"} 5\n' +
      'latency_seconds_bucket{le="+Inf",api="a"} 7\n' +
      'latency_seconds_sum{api="a"} 111.65\n' +
      'latency_seconds_count{api="a"} 7\n',
  );
  assert.throws(() => child.observe(NaN), RangeError);
  assert.throws(() => child.observe(Infinity), RangeError);
  assert.equal(child.count, 7, "a refused observation is not counted");
});

Deno.test("prometheus: negative buckets; a value above the last bucket counts in +Inf only", () => {
  const registry = new Registry();
  const values = registry.register(
    new Histogram({ name: "value", help: "Values", labelNames: [], buckets: [-10, -1, 0, 1, 1e6] }),
  );
  const child = values.labels({});
  for (const v of [-20, -1, -0.5, 0, 2, 1e9]) child.observe(v);
  const parsed = parsePrometheus(rendered(registry));
  const bucket = (le: string) => valueOf(parsed, "value_bucket", { le });
  assert.deepEqual(["-10", "-1", "0", "1", "1000000", "+Inf"].map(bucket), [1, 2, 4, 4, 5, 6]);
  assert.equal(valueOf(parsed, "value_count"), 6);
  assert.equal(valueOf(parsed, "value_sum"), -20 - 1 - 0.5 + 2 + 1e9);
});

Deno.test("prometheus: a labelled series shows from its first update; an unlabelled one from the start", () => {
  const registry = new Registry();
  const counter = registry.register(new Counter({ name: "c_total", help: "C", labelNames: ["api"] }));
  const histogram = registry.register(
    new Histogram({ name: "h", help: "H", labelNames: ["api"], buckets: [1] }),
  );
  registry.register(new Counter({ name: "plain_total", help: "P", labelNames: [] }));
  registry.register(new Histogram({ name: "plain_h", help: "PH", labelNames: [], buckets: [1] }));
  const boundCounter = counter.labels({ api: "a" });
  const boundHistogram = histogram.labels({ api: "a" });
  assert.equal(
    rendered(registry),
    "# HELP c_total C\n# TYPE c_total counter\n\n" +
      "# HELP h H\n# TYPE h histogram\n\n" +
      "# HELP plain_total P\n# TYPE plain_total counter\nplain_total 0\n\n" +
      '# HELP plain_h PH\n# TYPE plain_h histogram\nplain_h_bucket{le="1"} 0\nplain_h_bucket{le="+Inf"} 0\n' +
      "plain_h_sum 0\nplain_h_count 0\n",
  );
  boundCounter.inc(0);
  boundHistogram.observe(2);
  const parsed = parsePrometheus(rendered(registry));
  assert.equal(parsed.samples.filter((s) => s.name === "c_total").length, 1, "inc(0) shows the series");
  assert.equal(valueOf(parsed, "h_bucket", { api: "a", le: "1" }), 0);
  assert.equal(valueOf(parsed, "h_bucket", { api: "a", le: "+Inf" }), 1);
});

Deno.test("prometheus: a reset gauge shows only what was set since; collect runs at every render", () => {
  const registry = new Registry();
  let apis = ["a", "b"];
  let collects = 0;
  const depth = registry.register(
    new Gauge({
      name: "depth",
      help: "Depth",
      labelNames: ["api"],
      collect(gauge) {
        collects++;
        gauge.reset();
        apis.forEach((api, i) => gauge.set({ api }, (i + 1) * collects));
      },
    }),
  );
  const stale = depth.labels({ api: "a" });
  assert.equal(
    rendered(registry),
    '# HELP depth Depth\n# TYPE depth gauge\ndepth{api="a"} 1\ndepth{api="b"} 2\n',
  );
  apis = ["c"];
  assert.equal(rendered(registry), '# HELP depth Depth\n# TYPE depth gauge\ndepth{api="c"} 2\n');
  stale.set(99);
  assert.ok(!registry.render().includes("99"), "a child bound before the reset is no longer shown");
  assert.equal(collects, 3);

  const plain = new Gauge({ name: "plain", help: "P", labelNames: [] });
  plain.labels({}).set(5);
  plain.reset();
  assert.equal(plain.render(), "# HELP plain P\n# TYPE plain gauge\nplain 0");
});

Deno.test("prometheus: values as the format writes them: NaN, +Inf, -Inf, exponents", () => {
  assert.deepEqual([NaN, Infinity, -Infinity, 0, -0.5, 1e-7, 1e21, 0.1 + 0.2].map(formatValue), [
    "NaN",
    "+Inf",
    "-Inf",
    "0",
    "-0.5",
    "1e-7",
    "1e+21",
    "0.30000000000000004",
  ]);
  const registry = new Registry();
  const gauge = registry.register(new Gauge({ name: "g", help: "G", labelNames: ["k"] }));
  gauge.set({ k: "nan" }, NaN);
  gauge.set({ k: "inf" }, Infinity);
  gauge.set({ k: "tiny" }, 1e-7);
  const parsed = parsePrometheus(rendered(registry));
  assert.ok(Number.isNaN(valueOf(parsed, "g", { k: "nan" })));
  assert.equal(valueOf(parsed, "g", { k: "inf" }), Infinity);
  assert.equal(valueOf(parsed, "g", { k: "tiny" }), 1e-7);
});

Deno.test("prometheus: mistakes are refused where they are made", () => {
  const registry = new Registry();
  const counter = registry.register(new Counter({ name: "x_total", help: "X", labelNames: ["api"] }));
  assert.throws(
    () => registry.register(new Counter({ name: "x_total", help: "X", labelNames: [] })),
    /already/,
  );
  assert.throws(() => counter.labels({ api: "a" }).inc(-1), RangeError);
  assert.throws(() => counter.labels({ api: "a" }).inc(NaN), RangeError);
  assert.throws(() => counter.labels({} as { api: string }), /Label "api" of x_total must be a string/);
  assert.throws(() => new Counter({ name: "bad-name", help: "B", labelNames: [] }), /Invalid metric name/);
  assert.throws(() => new Gauge({ name: "g", help: "G", labelNames: ["__x"] }), /Invalid label name/);
  assert.throws(() => new Gauge({ name: "g", help: "G", labelNames: ["a", "a"] }), /Duplicate label/);
  assert.throws(() => new Histogram({ name: "h", help: "H", labelNames: ["le"], buckets: [1] }), /"le"/);
  assert.throws(() => new Histogram({ name: "h", help: "H", labelNames: [], buckets: [1, 1] }), RangeError);
  assert.throws(
    () => new Histogram({ name: "h", help: "H", labelNames: [], buckets: [1, Infinity] }),
    RangeError,
  );
  assert.equal(registry.render().includes("x_total{"), false, "refused updates leave no series");
});

Deno.test("prometheus: the grammar check finds what a scraper would choke on", () => {
  const problems = (text: string) => checkExposition(text).join("; ");
  const good =
    '# HELP h H\n# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 3\nh_count 2\n';
  assert.equal(problems(good), "");
  assert.match(problems(good.replace('h_bucket{le="+Inf"} 2', 'h_bucket{le="+Inf"} 0')), /not cumulative/);
  assert.match(problems(good.replace('h_bucket{le="+Inf"} 2\n', "")), /no le="\+Inf"/);
  assert.match(problems(good.replace("h_count 2", "h_count 3")), /_count is 3/);
  assert.match(problems(good.replace("h_sum 3\n", "")), /no _sum/);
  assert.match(problems(good.slice(0, -1)), /newline/);
  assert.match(problems('# TYPE c counter\nc{a="x\\y"} 1\n'), /not a sample/);
  assert.match(problems('# TYPE c counter\nc{a="1"b="2"} 1\n'), /not a sample/);
  assert.match(problems('# TYPE c counter\nc{a="1"} one\n'), /bad value/);
  assert.match(problems('# TYPE c counter\nc{a="1"} 1\nc{a="1"} 2\n'), /second sample/);
  assert.match(problems("# TYPE c counter\n# TYPE c counter\nc 1\n"), /second TYPE/);
  assert.match(problems("c 1\n# TYPE c counter\n"), /after its samples/);
  assert.match(problems("# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na 2\n"), /continues after other families/);
  assert.match(problems("# HELP a bad \\t escape\n# TYPE a gauge\na 1\n"), /bad escape/);
});
