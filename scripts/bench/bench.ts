/**
 * The benchmark behind scripts/bench/run: cortex-serve against Flask +
 * waitress and FastAPI + uvicorn (and, for the no-op case, a bare
 * `Deno.serve` echo: the floor), all on 127.0.0.1, all driven by wrk, one
 * markdown table on stdout. Progress goes to stderr. Every process started
 * here is stopped before it returns, on Ctrl-C and SIGTERM too.
 *
 * Usage: deno run -A scripts/bench/bench.ts [--duration 5] [--warmup 8]
 *   [--cases noop,iris,1mb,overload,overload2k,cpu1,cpu2,batch,batch+on]
 *   [--breakdown]
 *
 * Each server's first run follows a `--warmup` of wrk at that run's
 * concurrency: V8 compiles the server's hot code on its helper threads for
 * the first 4-8 s of load, and on 2 cores those compilations are the 1-client
 * tail, which a run right after start would measure instead of the server
 * (docs/performance.md). Later runs of the same process warm up for 1 s.
 *
 * `--breakdown` runs cortex-serve alone (default cases noop and iris) with
 * `--latency-breakdown` and `--trace-gc`, and prints, after the table, which
 * segment of a request grew in the slowest 1 % against the median, and how
 * the server's scavenges line up with the slowest requests (./breakdown.ts).
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { BATCHING, type Case, CASES, type ServerKind } from "./cases.ts";
import { batchingSummary, type Measurement, overloadTable, table } from "./table.ts";
import { cpuSeconds, Processes, rssKiB } from "./processes.ts";
import { breakdownTable, fetchBreakdown, gcAlignment } from "./breakdown.ts";
import type { BreakdownReport } from "../../src/http/latency_breakdown.ts";

const HERE = import.meta.dirname!;
const ROOT = join(HERE, "..", "..");
const PYTHON = "/usr/bin/python3";
const CONCURRENCY = [1, 16] as const;

const { values } = parseArgs({
  args: Deno.args,
  options: {
    duration: { type: "string", default: "5" },
    warmup: { type: "string", default: "8" },
    cases: { type: "string" },
    breakdown: { type: "boolean", default: false },
  },
  strict: true,
});
const seconds = Number(values.duration);
const firstWarmup = Number(values.warmup);
const breakdown = values.breakdown;
const wanted = values.cases?.split(",") ?? (breakdown ? ["noop", "iris"] : undefined);
const breakdowns: string[] = [];
/** The runs of the server being measured, broken down (`--breakdown`). */
const broken: { title: string; report: BreakdownReport }[] = [];
const cases = CASES.filter((c) => wanted === undefined || wanted.includes(c.name));

const processes = new Processes();
const work = await Deno.makeTempDir({ prefix: "cortex-serve-bench-" });
const stop = () => processes.stopAll().finally(() => Deno.exit(130));
Deno.addSignalListener("SIGINT", stop);
Deno.addSignalListener("SIGTERM", stop);

const results: Measurement[] = [];
const OVERLOAD = new Set(CASES.filter((c) => c.overload === true).map((c) => c.name));
let idleServerKiB: number | undefined;
let idleFloorKiB: number | undefined;
try {
  for (const benchCase of cases) {
    const body = join(work, `${benchCase.name}.json`);
    await Deno.writeTextFile(body, benchCase.body());
    for (const kind of benchCase.servers.filter((k) => !breakdown || k === "cortex-serve")) {
      const port = freePort();
      const server = await start(kind, benchCase, port);
      const url = `http://127.0.0.1:${port}${kind === "cortex-serve" ? benchCase.endpoint : "/predict"}`;
      const headers = benchCase.headers ?? {};
      try {
        await untilServing(url, body, server, headers);
        if (kind === "cortex-serve" && benchCase.name === "noop") {
          idleServerKiB = await rssKiB(server.pid, false);
        }
        if (kind === "deno-floor") idleFloorKiB = await rssKiB(server.pid, false);
        let warmup = firstWarmup;
        for (const c of benchCase.concurrency ?? CONCURRENCY) {
          const options = { headers, status: benchCase.overload === true };
          await wrk(url, body, c, warmup, options);
          warmup = 1;
          const peak = await processes.peakRss(server.pid);
          const since = breakdown ? (await fetchBreakdown(base(port), 0)).recorded : 0;
          const cpuBefore = await cpuSeconds(server.pid);
          const run = await wrk(url, body, c, seconds, options);
          const cpuAfter = await cpuSeconds(server.pid);
          const rss = await peak.stop();
          if (breakdown) {
            const title = `${benchCase.name} c=${c} (wrk: p50 ${Math.round(run.p50Us)} µs, p99 ${
              Math.round(run.p99Us)
            } µs)`;
            broken.push({ title, report: await fetchBreakdown(base(port), since) });
          }
          const requests = run.rps * seconds;
          const cpu = {
            serverCpuUs: ((cpuAfter.own - cpuBefore.own) / requests) * 1e6,
            workerCpuUs: ((cpuAfter.children - cpuBefore.children) / requests) * 1e6,
          };
          const restarts = benchCase.overload === true ? await workerRestarts(benchCase, kind) : 0;
          results.push({
            benchCase: benchCase.name,
            server: kind,
            concurrency: c,
            ...run,
            ...rss,
            ...cpu,
            restarts,
          });
          log(
            `${benchCase.name} ${kind} c=${c}: ${Math.round(run.rps)} req/s, ${Math.round(run.okPerS)} 200/s`,
          );
        }
      } finally {
        await processes.stop(server);
      }
      // V8 writes --trace-gc through a buffered stdout: its lines are all there once the server stopped.
      const gcLog = await Deno.readTextFile(gcLogPath(benchCase)).catch(() => "");
      let offset: number | undefined; // the clocks' offset, searched on the first (c=1) run
      for (const { title, report } of broken.splice(0)) {
        const gc = gcAlignment(gcLog, report, offset);
        offset = gc.offset;
        breakdowns.push(`${breakdownTable(title, report)}\n\n${gc.text}`);
      }
    }
  }
} finally {
  await processes.stopAll();
  await Deno.remove(work, { recursive: true }).catch(() => {});
}
console.log(await header());
const plain = results.filter((m) => !OVERLOAD.has(m.benchCase));
if (plain.length > 0) {
  console.log(table(plain, (name) => CASES.find((c) => c.name === name)?.baseline ?? name));
}
if (results.some((m) => OVERLOAD.has(m.benchCase))) {
  console.log(`\n${overloadTable(results.filter((m) => OVERLOAD.has(m.benchCase)))}`);
}
for (const text of breakdowns) console.log(`\n${text}`);
const summary = batchingSummary(results, BATCHING.batchIntervalMs);
if (summary !== undefined) console.log(`\n${summary}`);
if (idleServerKiB !== undefined) {
  const floor = idleFloorKiB === undefined
    ? ""
    : `; the floor at idle: ${(idleFloorKiB / 1024).toFixed(0)} MiB`;
  console.log(
    `\ncortex-serve server process at idle (no Python): ${(idleServerKiB / 1024).toFixed(0)} MiB RSS${floor}`,
  );
}

function start(kind: ServerKind, benchCase: Case, port: number): Promise<Deno.ChildProcess> {
  const project = benchCase.project(work);
  const env = {
    BENCH_PROJECT: project,
    BENCH_INFERENCE: benchCase.inference,
    BENCH_METADATA: JSON.stringify(benchCase.metadata),
  };
  const log = logPath(benchCase, kind);
  switch (kind) {
    case "cortex-serve":
      return processes.spawn(Deno.execPath(), [
        "run",
        "-A",
        "--frozen",
        // As the compile task, the bundle's command and scripts/serve-example run it.
        `--v8-flags=--max-semi-space-size=2,--no-maglev${breakdown ? ",--trace-gc" : ""}`,
        `--config=${join(ROOT, "deno.json")}`,
        join(ROOT, "main.ts"),
        "serve",
        project,
        ...(benchCase.serveArgs?.(work) ?? []),
        `--port=${port}`,
        `--python=${PYTHON}`,
        `--state-dir=${join(work, "state")}`,
        "--log-format=json",
        ...(breakdown ? ["--latency-breakdown"] : []),
      ], { log, ...(breakdown ? { stdoutLog: gcLogPath(benchCase) } : {}) });
    case "flask+waitress":
      return processes.spawn(PYTHON, [join(HERE, "peers", "flask_app.py"), String(port)], { env, log });
    case "fastapi+uvicorn":
      return processes.spawn(
        PYTHON,
        [join(HERE, "peers", "fastapi_app.py"), String(port), String(benchCase.replicas)],
        { env, log },
      );
    case "deno-floor":
      return processes.spawn(Deno.execPath(), ["run", "--allow-net", join(HERE, "floor.ts"), String(port)], {
        log,
      });
  }
}

async function untilServing(
  url: string,
  body: string,
  child: Deno.ChildProcess,
  headers: Readonly<Record<string, string>>,
): Promise<void> {
  const sample = await Deno.readFile(body);
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(url, { method: "POST", body: sample, headers });
      await res.body?.cancel();
      if (res.status === 200) return;
    } catch {
      // Not listening yet.
    }
    if (await processes.exited(child)) throw new Error(`${url}: the server exited during startup`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${url} did not answer 200 within 60 s`);
}

interface WrkOptions {
  readonly headers: Readonly<Record<string, string>>;
  /** Count 503s (and those with Retry-After). */
  readonly status: boolean;
}

async function wrk(url: string, body: string, concurrency: number, duration: number, options: WrkOptions) {
  const threads = Math.min(concurrency, 2);
  const out = await new Deno.Command("wrk", {
    args: [
      `-t${threads}`,
      `-c${concurrency}`,
      `-d${duration}s`,
      "--timeout=10s",
      ...Object.entries(options.headers).flatMap(([name, value]) => ["-H", `${name}: ${value}`]),
      "-s",
      join(HERE, "report.lua"),
      url,
    ],
    env: { BENCH_BODY: body, ...(options.status ? { BENCH_STATUS: "1" } : {}) },
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const line = new TextDecoder().decode(out.stdout).split("\n").find((l) => l.startsWith("BENCH "));
  if (!out.success || line === undefined) throw new Error(`wrk failed against ${url}`);
  const r = JSON.parse(line.slice(6));
  const seconds = r.duration_us / 1e6;
  return {
    rps: r.requests / seconds,
    okPerS: (r.requests - r.non2xx) / seconds,
    refusedPerS: r.n503 / seconds,
    refusedWithoutRetryAfter: (r.n503 as number) - (r.retry_after as number),
    p50Us: r.p50_us as number,
    p99Us: r.p99_us as number,
    errors: (r.socket_errors as number) + (r.non2xx as number),
  };
}

/** "worker stopped; restarting" lines in the server's log so far. */
async function workerRestarts(benchCase: Case, kind: ServerKind): Promise<number> {
  const text = await Deno.readTextFile(logPath(benchCase, kind)).catch(() => "");
  return text.split("\n").filter((line) => line.includes("worker stopped; restarting")).length;
}

function logPath(benchCase: Case, kind: ServerKind): string {
  return join(work, `${benchCase.name}-${kind}.log`);
}

/** The cortex-serve server's `--trace-gc` lines of a case (`--breakdown` only). */
function gcLogPath(benchCase: Case): string {
  return join(work, `${benchCase.name}-cortex-serve.gc.log`);
}

function base(port: number): string {
  return `http://127.0.0.1:${port}`;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  return port;
}

async function header(): Promise<string> {
  const cpu = (await Deno.readTextFile("/proc/cpuinfo")).match(/model name\s*:\s*(.*)/)?.[1] ?? "unknown CPU";
  const version = async (cmd: string, args: string[]) => {
    const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
    return new TextDecoder().decode(out.stdout.length > 0 ? out.stdout : out.stderr).split("\n")[0]!.trim();
  };
  return [
    `Benchmark of ${
      new Date().toISOString().slice(0, 10)
    } on ${cpu}, ${navigator.hardwareConcurrency} cores;`,
    `Deno ${Deno.version.deno}, ${await version(PYTHON, ["--version"])}, ${await version("wrk", ["-v"])};`,
    `${seconds} s per run after a warm-up (${firstWarmup} s before a server's first run, 1 s before its others), wrk on 127.0.0.1. RSS: peak during the run, whole process tree`,
    `(cortex-serve: server process / with its Python workers).`,
    "",
  ].join("\n");
}

function log(message: string): void {
  console.error(`bench: ${message}`);
}
