/** `cortex-serve serve` flags: parsing into a resolved options object. */
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import type { LogFormat, LogLevel } from "../log/logger.ts";
import {
  parseSecurityFlags,
  SECURITY_FLAGS,
  SECURITY_HELP,
  type SecurityOptions,
} from "./security_options.ts";
import {
  CONNECTION_FLAGS,
  CONNECTION_HELP,
  type ConnectionOptions,
  parseConnectionFlags,
} from "./connection_options.ts";
import { parseBytes, parseDuration, parsePositiveInt, UsageError } from "./units.ts";

/** Everything `serve` needs, defaults applied. */
export interface ServeOptions {
  readonly projectDir: string;
  readonly host: string;
  readonly port: number;
  readonly python: string | undefined;
  readonly stateDir: string | undefined;
  /** `--project-mount`: absolute path where the staged project is also visible. */
  readonly projectMount: string | undefined;
  /** `--run-dependencies-sh`: run the project's dependencies.sh at startup. */
  readonly runDependenciesSh: boolean;
  /** `--no-requirements`: skip requirements.txt, serve with the interpreter's packages. */
  readonly noRequirements: boolean;
  /** `--enforce-mem`: kill a worker whose memory goes over `compute.mem`. */
  readonly enforceMem: boolean;
  readonly queuePerReplica: number;
  readonly maxBodyBytes: number;
  /** `--body-timeout`: longest gap between two bytes of a request body before it is answered 408. */
  readonly bodyTimeoutMs: number;
  readonly maxFrameBytes: number;
  /** `--predict-timeout`: how long predict may run once a replica took the request. */
  readonly predictTimeoutMs: number;
  /** After `cancel`, how long the worker may take to stop the request before it is restarted. */
  readonly cancelGraceMs: number;
  /** `--queue-timeout`: how long a request may wait for a replica; default the predict timeout. */
  readonly queueTimeoutMs: number;
  readonly initTimeoutMs: number | undefined;
  readonly drainTimeoutMs: number;
  /** Scale-up averaging window (`--scale-window`). */
  readonly scaleWindowMs: number;
  /** Idle time before a replica above min_replicas is retired (`--scale-cooldown`). */
  readonly scaleCooldownMs: number;
  readonly logFormat: LogFormat;
  readonly logLevel: LogLevel;
  readonly debug: boolean;
  /** `--latency-breakdown`: time each prediction's segments (docs/performance.md). */
  readonly latencyBreakdown: boolean;
  /** `--api-key-file`, `--tls-cert`, `--tls-key`, `--cors-origin`. */
  readonly security: SecurityOptions;
  /** `--header-timeout`, `--keepalive-timeout`, `--max-connections`. */
  readonly connections: ConnectionOptions;
  /** `--jobs`, `--job-ttl`, `--job-lease`, `--job-attempts` (docs/async.md). */
  readonly jobs: JobsOptions;
}

/** Where durable jobs are kept, and their limits. */
export interface JobsOptions {
  /** `sqlite` under the state directory (default), `off`, or a `redis://` / `rediss://` URL. */
  readonly store: { readonly kind: "sqlite" } | { readonly kind: "off" } | {
    readonly kind: "redis";
    readonly url: string;
  };
  readonly ttlMs: number;
  readonly leaseMs: number;
  readonly maxAttempts: number;
  /** `--job-queue`: jobs that may wait per API. */
  readonly maxQueued: number;
}

export const SERVE_HELP = `Usage: cortex-serve serve [DIR] [options]

Serves the Cortex project in DIR (default: the current directory), the
directory holding cortex.yaml, over HTTP.

Options:
  --host HOST             address to listen on (default 127.0.0.1; use 0.0.0.0
                          to accept connections from other machines)
  --port PORT             port to listen on (default 8888; 0 picks a free one)
  --python PATH           Python interpreter (default: $CORTEX_PYTHON, else python3)
  --state-dir DIR         where staged projects and the worker live (default:
                          $CORTEX_SERVE_STATE_DIR, $STATE_DIRECTORY,
                          $XDG_STATE_HOME/cortex-serve or ~/.local/state/cortex-serve)
  --project-mount PATH    also make the staged project visible at PATH (a symbolic
                          link), for code that reads /mnt/project/... literally
  --run-dependencies-sh   run the project's dependencies.sh (system packages) at
                          startup, as this user; without it, it is only reported
  --no-requirements       skip requirements.txt (logged): serve with the packages
                          the interpreter has
  --enforce-mem           kill and restart a worker whose memory goes over its
                          compute.mem (beyond Cortex, where mem is only a request)
  --queue N               requests that may wait per replica (default 64)
  --max-body SIZE         largest request body (default 32Mi)
  --body-timeout DUR      a request body with no byte for DUR is answered 408
                          (default 30s)
  --max-frame SIZE        largest worker message (default: max-body + 32Mi)
  --predict-timeout DUR   how long predict may run; past it the request gets 504
                          and predict is cancelled (default 60s)
  --cancel-grace DUR      after a cancel (client gone, timeout), how long predict
                          may take to stop before its worker is restarted (default 5s)
  --queue-timeout DUR     how long a request may wait for a free replica; past it
                          503 with Retry-After, no worker affected (default: the
                          predict timeout)
  --init-timeout DUR      deadline of import + init() (default: none)
  --drain-timeout DUR     on SIGTERM, time to finish queued work (default 30s)
  --scale-window DUR      with max_replicas above min_replicas: add a replica when
                          the load averaged over DUR needs one (default 10s)
  --scale-cooldown DUR    retire an idle replica after DUR without the load
                          that needed it (default 60s)
  --log-format FORMAT     text or json (default text)
  --log-level LEVEL       debug, info, warn or error (default info)
  --jobs STORE            where durable jobs (docs/async.md) are kept: sqlite (default,
                          under the state directory), redis://HOST:PORT/DB to share
                          one queue between servers, or off
  --job-ttl DUR           delete finished jobs and their results DUR after they
                          ended (default 7d)
  --job-lease DUR         a job whose server stopped renewing its lease for DUR
                          is run again (default 30s)
  --job-attempts N        a job whose worker dies N times is failed (default 3)
  --job-queue N           jobs that may wait per API; past it a submit is answered
                          503 (default 100000)
${CONNECTION_HELP}
${SECURITY_HELP}
  --debug                 tracebacks in error bodies, debug logs, no line cap
  --latency-breakdown     time where each prediction's time goes (histograms
                          cortex_serve_request_segment_seconds, recent requests
                          at GET /metrics/latency-breakdown; docs/performance.md)
  -h, --help              this help

Examples:
  cortex-serve serve examples/iris-classifier
  cortex-serve serve . --host 0.0.0.0 --port 8080 --log-format json
  curl -s http://127.0.0.1:8888/iris/classifier -d @sample.json
`;

const FLAGS = {
  host: { type: "string" },
  port: { type: "string" },
  python: { type: "string" },
  "state-dir": { type: "string" },
  "project-mount": { type: "string" },
  "run-dependencies-sh": { type: "boolean" },
  "no-requirements": { type: "boolean" },
  "enforce-mem": { type: "boolean" },
  queue: { type: "string" },
  "max-body": { type: "string" },
  "body-timeout": { type: "string" },
  "max-frame": { type: "string" },
  "predict-timeout": { type: "string" },
  "cancel-grace": { type: "string" },
  "queue-timeout": { type: "string" },
  "init-timeout": { type: "string" },
  "drain-timeout": { type: "string" },
  "scale-window": { type: "string" },
  "scale-cooldown": { type: "string" },
  "log-format": { type: "string" },
  "log-level": { type: "string" },
  debug: { type: "boolean" },
  "latency-breakdown": { type: "boolean" },
  jobs: { type: "string" },
  "job-ttl": { type: "string" },
  "job-lease": { type: "string" },
  "job-attempts": { type: "string" },
  "job-queue": { type: "string" },
  ...CONNECTION_FLAGS,
  ...SECURITY_FLAGS,
  help: { type: "boolean", short: "h" },
} as const;

/** Parsed `serve` arguments, or `"help"`. */
export function parseServeArgs(args: readonly string[]): ServeOptions | "help" {
  const { values, positionals } = parseStrict(args);
  if (values.help) return "help";
  if (positionals.length > 1) {
    throw new UsageError(
      `serve takes one project directory, got ${positionals.length}: ${positionals.join(" ")}`,
    );
  }
  const maxBodyBytes = values["max-body"] === undefined
    ? 32 * 1024 * 1024
    : parseBytes("max-body", values["max-body"]);
  const debug = values.debug ?? false;
  const predictTimeoutMs = parseDuration("predict-timeout", values["predict-timeout"] ?? "60");
  return {
    projectDir: resolve(positionals[0] ?? "."),
    host: values.host ?? "127.0.0.1",
    port: values.port === undefined ? 8888 : parsePort(values.port),
    python: values.python,
    stateDir: values["state-dir"] === undefined ? undefined : resolve(values["state-dir"]),
    projectMount: values["project-mount"] === undefined ? undefined : resolve(values["project-mount"]),
    runDependenciesSh: values["run-dependencies-sh"] ?? false,
    noRequirements: values["no-requirements"] ?? false,
    enforceMem: values["enforce-mem"] ?? false,
    queuePerReplica: values.queue === undefined ? 64 : parsePositiveInt("queue", values.queue),
    maxBodyBytes,
    bodyTimeoutMs: positiveDuration("body-timeout", values["body-timeout"] ?? "30"),
    maxFrameBytes: values["max-frame"] === undefined
      ? maxBodyBytes + 32 * 1024 * 1024
      : parseBytes("max-frame", values["max-frame"]),
    predictTimeoutMs,
    queueTimeoutMs: values["queue-timeout"] === undefined
      ? predictTimeoutMs
      : parseDuration("queue-timeout", values["queue-timeout"]),
    cancelGraceMs: parseDuration("cancel-grace", values["cancel-grace"] ?? "5"),
    initTimeoutMs: values["init-timeout"] === undefined
      ? undefined
      : parseDuration("init-timeout", values["init-timeout"]),
    drainTimeoutMs: parseDuration("drain-timeout", values["drain-timeout"] ?? "30"),
    scaleWindowMs: parseDuration("scale-window", values["scale-window"] ?? "10"),
    scaleCooldownMs: parseDuration("scale-cooldown", values["scale-cooldown"] ?? "60"),
    logFormat: oneOf("log-format", values["log-format"] ?? "text", ["text", "json"] as const),
    logLevel: debug
      ? "debug"
      : oneOf("log-level", values["log-level"] ?? "info", ["debug", "info", "warn", "error"] as const),
    debug,
    latencyBreakdown: values["latency-breakdown"] ?? false,
    security: parseSecurityFlags(values),
    jobs: {
      store: parseJobStore(values.jobs ?? "sqlite"),
      ttlMs: parseDuration("job-ttl", values["job-ttl"] ?? "7d"),
      leaseMs: parseDuration("job-lease", values["job-lease"] ?? "30"),
      maxAttempts: values["job-attempts"] === undefined
        ? 3
        : parsePositiveInt("job-attempts", values["job-attempts"]),
      maxQueued: values["job-queue"] === undefined
        ? 100_000
        : parsePositiveInt("job-queue", values["job-queue"]),
    },
    connections: parseConnectionFlags(values),
  };
}

function parseJobStore(value: string): JobsOptions["store"] {
  if (value === "sqlite" || value === "off") return { kind: value };
  if (/^rediss?:\/\/./.test(value)) return { kind: "redis", url: value };
  throw new UsageError(
    `--jobs: ${JSON.stringify(value)} is not sqlite, off or a redis:// URL (e.g. redis://127.0.0.1:6379/0)`,
  );
}

function parseStrict(args: readonly string[]) {
  try {
    return parseArgs({ args: [...args], options: FLAGS, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError(`${error instanceof Error ? error.message : error} (see cortex-serve serve --help)`);
  }
}

function positiveDuration(flag: string, value: string): number {
  const ms = parseDuration(flag, value);
  if (ms > 0) return ms;
  throw new UsageError(`--${flag}: ${JSON.stringify(value)} must be more than 0`);
}

function parsePort(value: string): number {
  const port = Number(value);
  if (!/^\d+$/.test(value) || port > 65535) {
    throw new UsageError(`--port: ${JSON.stringify(value)} must be a number from 0 to 65535`);
  }
  return port;
}

function oneOf<T extends string>(flag: string, value: string, allowed: readonly T[]): T {
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new UsageError(`--${flag}: ${JSON.stringify(value)} is not one of ${allowed.join(", ")}`);
}
