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
  /** 200 answers per second. */
  readonly okPerS: number;
  /** 503 answers per second (counted in overload cases only). */
  readonly refusedPerS: number;
  /** 503s that came without Retry-After. */
  readonly refusedWithoutRetryAfter: number;
  /** CPU time per request of the server process (for peers: the whole process), in µs. */
  readonly serverCpuUs: number;
  /** CPU time per request of the server's children (cortex-serve's Python workers), in µs. */
  readonly workerCpuUs: number;
  /** Worker restarts seen in the server's log (overload cases only). */
  readonly restarts: number;
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
    "| case | server | c | req/s | p50 | p99 | errors | RSS MiB | CPU µs/req | req/s vs best peer | p50 vs best peer |",
    "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
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
      } | ${duration(m.p99Us)} | ${m.errors} | ${memory(m)} | ${cpu(m)} | ${
        ours ? ratio(m.rps / bestRps) : ""
      } | ${ours ? ratio(m.p50Us / bestP50) : ""} |`,
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

/** Server CPU per request; for cortex-serve, `server / worker`. */
function cpu(m: Measurement): string {
  const server = Math.round(m.serverCpuUs);
  return m.server === "cortex-serve" ? `${server} / ${Math.round(m.workerCpuUs)}` : `${server}`;
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

/**
 * The overload table: predictions (200s) and 503s per second at each
 * concurrency, and the predictions as a ratio of the case's lowest
 * concurrency (clients that fit the queue).
 */
export function overloadTable(results: readonly Measurement[]): string {
  const lines = [
    "| case | server | c | req/s | 200/s | 503/s | 503 without Retry-After | p50 | p99 | worker restarts | RSS MiB | 200/s vs c=32 |",
    "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
  ];
  for (const m of results) {
    const base = results.find((b) => b.benchCase === m.benchCase && b.server === m.server);
    const n = (v: number) => Math.round(v).toLocaleString("en");
    lines.push(
      `| ${m.benchCase} | ${m.server} | ${m.concurrency} | ${n(m.rps)} | ${n(m.okPerS)} | ${
        n(m.refusedPerS)
      } | ${m.refusedWithoutRetryAfter} | ${duration(m.p50Us)} | ${duration(m.p99Us)} | ${m.restarts} | ${
        memory(m)
      } | ${base ? ratio(m.okPerS / base.okPerS) : ""} |`,
    );
  }
  return lines.join("\n");
}
