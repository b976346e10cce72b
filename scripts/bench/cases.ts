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
];
