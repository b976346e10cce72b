/**
 * The benchmark cases: which project, which request body, which servers.
 * Every server of a case loads the same inference file.
 */
import { join } from "node:path";

const HERE = import.meta.dirname!;
const PROJECTS = join(HERE, "projects");
const IRIS = join(HERE, "..", "..", "examples", "iris-classifier");

/** A server under test. */
export type ServerKind = "cortex-serve" | "flask+waitress" | "fastapi+uvicorn" | "deno-floor";

/** One benchmark case. */
export interface Case {
  readonly name: string;
  /** The project directory; may be generated inside `work`. */
  readonly project: (work: string) => string;
  /** Inference file, relative to the project. */
  readonly inference: string;
  readonly metadata: Readonly<Record<string, unknown>>;
  /** cortex-serve's endpoint (the peers answer on /predict). */
  readonly endpoint: string;
  /** Worker processes (cortex-serve replicas, uvicorn workers). */
  readonly replicas: number;
  readonly servers: readonly ServerKind[];
  /** The request body. */
  readonly body: () => string;
  /** wrk connections, one run each (default 1 and 16). */
  readonly concurrency?: readonly number[];
  /** Extra `cortex-serve serve` arguments; may write files into `work`. */
  readonly serveArgs?: (work: string) => string[];
  /** Extra request headers. */
  readonly headers?: Readonly<Record<string, string>>;
  /** Report 200s and 503s per second (the overload table). */
  readonly overload?: boolean;
  /** Another case whose peers this case's cortex-serve is compared with (same model, other settings). */
  readonly baseline?: string;
}

const PEERS: readonly ServerKind[] = ["cortex-serve", "flask+waitress", "fastapi+uvicorn"];
const SAMPLE = { sepal_length: 5.2, sepal_width: 3.6, petal_length: 1.4, petal_width: 0.3 };

/** About 1 MB of JSON: a list of floats. */
function megabyte(): string {
  const data = Array.from({ length: 60_000 }, (_, i) => Math.round(Math.sin(i) * 1e6) / 1e6 + i);
  return JSON.stringify({ data });
}

/** The CPU-bound project with `min_replicas: replicas`, written into `work`. */
function cpuProject(work: string, replicas: number): string {
  const dir = join(work, `cpu-${replicas}`);
  Deno.mkdirSync(dir, { recursive: true });
  Deno.copyFileSync(join(PROJECTS, "cpu", "inference.py"), join(dir, "inference.py"));
  Deno.writeTextFileSync(
    join(dir, "cortex.yaml"),
    Deno.readTextFileSync(join(PROJECTS, "cpu", "cortex.yaml")).replace(
      "min_replicas: 1",
      `min_replicas: ${replicas}`,
    ),
  );
  return dir;
}

/** The `batch` case's batching: up to 32 requests per call, waiting at most 2 ms. */
export const BATCHING = { maxBatchSize: 32, batchIntervalMs: 2 } as const;

/** The per-call-cost project, with `server_side_batching` or without, written into `work`. */
function batchProject(work: string, batching: boolean): string {
  const dir = join(work, batching ? "batch-on" : "batch-off");
  Deno.mkdirSync(dir, { recursive: true });
  Deno.copyFileSync(join(PROJECTS, "batch", "inference.py"), join(dir, "inference.py"));
  const config = Deno.readTextFileSync(join(PROJECTS, "batch", "cortex.yaml"));
  const settings = `  server_side_batching:\n    max_batch_size: ${BATCHING.maxBatchSize}\n` +
    `    batch_interval: ${BATCHING.batchIntervalMs}ms\n`;
  Deno.writeTextFileSync(join(dir, "cortex.yaml"), batching ? config + settings : config);
  return dir;
}

/** The iris example with `min_replicas: 2`, copied into `work`. */
function irisTwoReplicas(work: string): string {
  const dir = join(work, "iris-2");
  Deno.mkdirSync(join(dir, "src"), { recursive: true });
  for (const file of ["iris_model.npz", "src/inference.py", "src/model.py"]) {
    Deno.copyFileSync(join(IRIS, file), join(dir, file));
  }
  Deno.writeTextFileSync(
    join(dir, "cortex.yaml"),
    Deno.readTextFileSync(join(IRIS, "cortex.yaml")) + "  compute:\n    min_replicas: 2\n",
  );
  return dir;
}

/** The API key of the keyed overload case. */
const BENCH_KEY = "bench-key-0123456789abcdef";

/** Every case, in table order. */
export const CASES: readonly Case[] = [
  {
    name: "noop",
    project: () => join(PROJECTS, "noop"),
    inference: "inference.py",
    metadata: {},
    endpoint: "/bench/noop",
    replicas: 1,
    servers: [...PEERS, "deno-floor"],
    body: () => JSON.stringify(SAMPLE),
  },
  {
    name: "iris",
    project: () => IRIS,
    inference: "src/inference.py",
    metadata: { model: "iris_model.npz" },
    endpoint: "/iris/classifier",
    replicas: 1,
    servers: PEERS,
    body: () => JSON.stringify(SAMPLE),
  },
  {
    name: "1mb",
    project: () => join(PROJECTS, "noop"),
    inference: "inference.py",
    metadata: {},
    endpoint: "/bench/noop",
    replicas: 1,
    servers: PEERS,
    body: megabyte,
  },
  {
    // Clients retrying at once: 32 fit the default queue of 64; 256 are far past it.
    name: "overload",
    project: () => IRIS,
    inference: "src/inference.py",
    metadata: { model: "iris_model.npz" },
    endpoint: "/iris/classifier",
    replicas: 1,
    servers: ["cortex-serve"],
    body: () => JSON.stringify(SAMPLE),
    concurrency: [32, 256],
    overload: true,
  },
  {
    // The same with two replicas and API keys on.
    name: "overload2k",
    project: (work) => irisTwoReplicas(work),
    inference: "src/inference.py",
    metadata: { model: "iris_model.npz" },
    endpoint: "/iris/classifier",
    replicas: 2,
    servers: ["cortex-serve"],
    body: () => JSON.stringify(SAMPLE),
    concurrency: [32, 256],
    serveArgs: (work) => {
      const keys = join(work, "keys");
      Deno.writeTextFileSync(keys, `${BENCH_KEY}\n`, { mode: 0o600 });
      return [`--api-key-file=${keys}`];
    },
    headers: { authorization: `Bearer ${BENCH_KEY}` },
    overload: true,
  },
  {
    name: "cpu1",
    project: (work) => cpuProject(work, 1),
    inference: "inference.py",
    metadata: {},
    endpoint: "/bench/cpu",
    replicas: 1,
    servers: PEERS,
    body: () => JSON.stringify({ n: 150_000 }),
  },
  {
    name: "cpu2",
    project: (work) => cpuProject(work, 2),
    inference: "inference.py",
    metadata: {},
    endpoint: "/bench/cpu",
    replicas: 2,
    // waitress serves from one process: it has no two-replica setup.
    servers: ["cortex-serve", "fastapi+uvicorn"],
    body: () => JSON.stringify({ n: 150_000 }),
  },
  {
    name: "batch",
    project: (work) => batchProject(work, false),
    inference: "inference.py",
    metadata: {},
    endpoint: "/bench/batch",
    replicas: 1,
    servers: PEERS,
    body: () => JSON.stringify({ id: 1, ...SAMPLE }),
    concurrency: [1, 32],
  },
  {
    name: "batch+on",
    project: (work) => batchProject(work, true),
    inference: "inference.py",
    metadata: {},
    endpoint: "/bench/batch",
    replicas: 1,
    // The peers cannot batch: this case is compared with theirs in "batch".
    servers: ["cortex-serve"],
    body: () => JSON.stringify({ id: 1, ...SAMPLE }),
    concurrency: [1, 32],
    baseline: "batch",
  },
];
