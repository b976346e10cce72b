/**
 * `scripts/bench/run --breakdown`: cortex-serve alone, run with
 * `--latency-breakdown`; after each wrk run the server's recent requests
 * (`GET /metrics/latency-breakdown`) are read and this prints, per segment,
 * its mean among the median requests (the 45th to 55th percentile of the
 * server's time) and among the slowest 1 %, and how much of the difference
 * each segment makes: the segment that grew is where the tail comes from.
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
