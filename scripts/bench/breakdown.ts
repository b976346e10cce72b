/**
 * `scripts/bench/run --breakdown`: cortex-serve alone, run with
 * `--latency-breakdown`; after each wrk run the server's recent requests
 * (`GET /metrics/latency-breakdown`) are read and this prints, per segment,
 * its mean among the median requests (the 45th to 55th percentile of the
 * server's time) and among the slowest 1 %, and how much of the difference
 * each segment makes: the segment that grew is where the tail comes from.
 *
 * The server runs with `--trace-gc` too: {@link gcAlignment} lines its
 * scavenges up with the requests (V8's clock there starts a few
 * milliseconds apart from `performance.now()`: the offset that puts the
 * most slowest requests over a pause is used, searched within ±30 ms) and
 * says how many of the slowest 1 % and of the median requests overlap one.
 */
import type { BreakdownReport, BrokenDownRequest } from "../../src/http/latency_breakdown.ts";

/** The server's recent requests, those numbered `since` or later. */
export async function fetchBreakdown(baseUrl: string, since: number): Promise<BreakdownReport> {
  const response = await fetch(`${baseUrl}/metrics/latency-breakdown`);
  if (!response.ok) throw new Error(`GET /metrics/latency-breakdown answered ${response.status}`);
  const report: BreakdownReport = await response.json();
  return { ...report, requests: report.requests.filter((r) => r.seq >= since) };
}

/** Mean of each segment and of the total over `requests`. */
function means(requests: readonly BrokenDownRequest[], segments: number): { total: number; each: number[] } {
  const each = new Array<number>(segments).fill(0);
  let total = 0;
  for (const r of requests) {
    total += r.total;
    r.segments.forEach((v, i) => each[i]! += v);
  }
  const n = Math.max(requests.length, 1);
  return { total: total / n, each: each.map((v) => v / n) };
}

const us = (seconds: number) => `${(seconds * 1e6).toFixed(0)} µs`;

/** The markdown table of one run: median requests against the slowest 1 %. */
export function breakdownTable(title: string, report: BreakdownReport): string {
  const byTotal = [...report.requests].sort((a, b) => a.total - b.total);
  const n = byTotal.length;
  if (n < 100) return `${title}: only ${n} requests broken down, too few for a slowest 1 %`;
  const median = byTotal.slice(Math.floor(n * 0.45), Math.ceil(n * 0.55));
  const slowest = byTotal.slice(n - Math.ceil(n / 100));
  const count = report.segments.length;
  const mid = means(median, count);
  const slow = means(slowest, count);
  const grew = slow.total - mid.total;
  const rows = report.segments.map((segment, i) => {
    const delta = slow.each[i]! - mid.each[i]!;
    return { segment, mid: mid.each[i]!, slow: slow.each[i]!, delta, share: grew > 0 ? delta / grew : 0 };
  });
  const top = [...rows].sort((a, b) => b.delta - a.delta)[0]!;
  const lines = [
    `${title}: ${n} requests; the server's time p50 ${us(byTotal[n >> 1]!.total)}, p99 ${
      us(byTotal[Math.floor(n * 0.99)]!.total)
    }; clock bound ±${us(report.clock_uncertainty_seconds)}`,
    "",
    "| segment | median requests | slowest 1 % | grew by | share of the growth |",
    "| --- | --: | --: | --: | --: |",
    ...rows.map((r) =>
      `| ${r.segment} | ${us(r.mid)} | ${us(r.slow)} | ${us(r.delta)} | ${(r.share * 100).toFixed(0)} % |`
    ),
    `| **total** | ${us(mid.total)} | ${us(slow.total)} | ${us(grew)} | 100 % |`,
    "",
    `The slowest 1 % grew most in \`${top.segment}\` (${(top.share * 100).toFixed(0)} % of the growth).`,
  ];
  return lines.join("\n");
}

/** One collection from a `--trace-gc` line: when it started (V8's ms), its kind and pause. */
interface Pause {
  readonly at: number;
  readonly kind: string;
  readonly ms: number;
}

/** The collections of a `--trace-gc` log. */
export function parseTraceGc(text: string): Pause[] {
  const pauses: Pause[] = [];
  for (
    const m of text.matchAll(
      /(\d+) ms: (Scavenge|Minor Mark-Sweep|Mark-Compact|Mark-Sweep)[^\n]*?([\d.]+) \/ [\d.]+ ms/g,
    )
  ) {
    pauses.push({ at: Number(m[1]), kind: m[2]!, ms: Number(m[3]) });
  }
  return pauses;
}

/** How many of `requests` overlap a pause when the pauses are shifted by `offset` ms. */
function overlapping(
  requests: readonly BrokenDownRequest[],
  pauses: readonly Pause[],
  offset: number,
): number {
  let n = 0;
  for (const r of requests) {
    const end = r.at + r.total * 1000;
    if (pauses.some((p) => p.at + offset < end && p.at + offset + p.ms > r.at)) n++;
  }
  return n;
}

/**
 * One paragraph: the run's collections and how they line up with its
 * slowest and median requests. The clocks' offset is searched unless given:
 * search it on a c=1 run (requests one after the other) and give it for the
 * server's later runs, whose requests overlap each other.
 */
export function gcAlignment(
  text: string,
  report: BreakdownReport,
  given?: number,
): { readonly text: string; readonly offset: number | undefined } {
  const requests = report.requests;
  if (requests.length < 100) return { text: "GC: too few requests to line up", offset: given };
  const byTotal = [...requests].sort((a, b) => a.total - b.total);
  const n = byTotal.length;
  const slowest = byTotal.slice(n - Math.ceil(n / 100));
  const median = byTotal.slice(Math.floor(n * 0.45), Math.ceil(n * 0.55));
  const from = Math.min(...requests.map((r) => r.at));
  const to = Math.max(...requests.map((r) => r.at + r.total * 1000));
  const all = parseTraceGc(text).filter((p) => p.at >= from - 30 && p.at <= to + 30);
  let offset = given ?? 0;
  let best = given === undefined ? -1 : overlapping(slowest, all, given);
  for (let o = -30; given === undefined && o <= 30; o += 0.25) {
    const hit = overlapping(slowest, all, o);
    if (hit > best) [best, offset] = [hit, o];
  }
  const pauses = all.filter((p) => p.at + offset >= from && p.at + offset <= to);
  if (pauses.length === 0) {
    return { text: "GC: no collection during the run (is the server run with --trace-gc?)", offset: given };
  }
  const kinds = new Map<string, number>();
  for (const p of pauses) kinds.set(p.kind, (kinds.get(p.kind) ?? 0) + 1);
  const pauseMs = pauses.reduce((a, p) => a + p.ms, 0);
  const lines = [
    `GC: ${[...kinds].map(([k, c]) => `${c} ${k}`).join(", ")} during these requests`,
    `(${(pauses.length / n * 1000).toFixed(1)} per 1,000 requests), ${
      (pauseMs / pauses.length).toFixed(2)
    } ms`,
    `on average, ${Math.max(...pauses.map((p) => p.ms)).toFixed(2)} ms at most, ${
      (pauseMs / (to - from) * 100).toFixed(1)
    } % of the time;`,
    `lined up (offset ${offset} ms${given === undefined ? ", searched" : ""}): ${best} of the slowest`,
    `${slowest.length} overlap a pause, ${
      overlapping(median, pauses, offset)
    } of the ${median.length} median requests.`,
  ];
  return { text: lines.join(" "), offset };
}
