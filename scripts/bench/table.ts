/** The benchmark's markdown table, with ratios of cortex-serve to the best peer. */
import type { ServerKind } from "./cases.ts";

/** One wrk run. */
export interface Measurement {
  readonly benchCase: string;
  readonly server: ServerKind;
  readonly concurrency: number;
  readonly rps: number;
  readonly p50Us: number;
  readonly p99Us: number;
  readonly errors: number;
  readonly serverKiB: number;
  readonly totalKiB: number;
}

const PEERS: readonly ServerKind[] = ["flask+waitress", "fastapi+uvicorn"];

/**
 * Renders `results` as one markdown table. `baseline` names, for a case,
 * the case whose peers it is compared with (default: itself).
 */
export function table(
  results: readonly Measurement[],
  baseline: (benchCase: string) => string = (name) => name,
): string {
  const lines = [
    "| case | server | c | req/s | p50 | p99 | errors | RSS MiB | req/s vs best peer | p50 vs best peer |",
    "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
  ];
  for (const m of results) {
    const peers = results.filter((p) =>
      p.benchCase === baseline(m.benchCase) && p.concurrency === m.concurrency && PEERS.includes(p.server)
    );
    const ours = m.server === "cortex-serve" && peers.length > 0;
    const bestRps = Math.max(...peers.map((p) => p.rps));
    const bestP50 = Math.min(...peers.map((p) => p.p50Us));
    lines.push(
      `| ${m.benchCase} | ${m.server} | ${m.concurrency} | ${Math.round(m.rps).toLocaleString("en")} | ${
        duration(m.p50Us)
      } | ${duration(m.p99Us)} | ${m.errors} | ${memory(m)} | ${ours ? ratio(m.rps / bestRps) : ""} | ${
        ours ? ratio(m.p50Us / bestP50) : ""
      } |`,
    );
  }
  return lines.join("\n");
}

function duration(us: number): string {
  return us < 1000 ? `${us} µs` : `${(us / 1000).toFixed(us < 10_000 ? 2 : 1)} ms`;
}

function memory(m: Measurement): string {
  const mib = (kib: number) => (kib / 1024).toFixed(0);
  return m.server === "cortex-serve" ? `${mib(m.serverKiB)} / ${mib(m.totalKiB)}` : mib(m.totalKiB);
}

function ratio(value: number): string {
  return `${value.toFixed(2)}×`;
}

/**
 * The batching targets, from the `batch` (off) and `batch+on` runs of
 * cortex-serve: req/s and p99 at the highest concurrency, p50 at c=1.
 */
export function batchingSummary(results: readonly Measurement[], intervalMs: number): string | undefined {
  const ours = (name: string, c: number) =>
    results.find((m) => m.benchCase === name && m.server === "cortex-serve" && m.concurrency === c);
  const high = Math.max(...results.filter((m) => m.benchCase === "batch+on").map((m) => m.concurrency));
  const [offHigh, onHigh, offOne, onOne] = [
    ours("batch", high),
    ours("batch+on", high),
    ours("batch", 1),
    ours("batch+on", 1),
  ];
  const lines: string[] = [];
  if (offHigh !== undefined && onHigh !== undefined) {
    lines.push(
      `batching at c=${high}: ${ratio(onHigh.rps / offHigh.rps)} the req/s without it (target ≥ 5×); ` +
        `p99 ${duration(onHigh.p99Us)} against ${duration(offHigh.p99Us)} (target: no worse)`,
    );
  }
  if (offOne !== undefined && onOne !== undefined) {
    const allowed = offOne.p50Us * 1.1 + intervalMs * 1000;
    lines.push(
      `batching at c=1: p50 ${duration(onOne.p50Us)} against ${duration(offOne.p50Us)} without it; ` +
        `allowed ${duration(Math.round(allowed))} (batch_interval ${intervalMs} ms + 10 %)`,
    );
  }
  return lines.length === 0 ? undefined : lines.join("\n");
}
