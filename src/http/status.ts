/** What `GET /`, `GET /healthz` and `GET <endpoint>` say about an API. */
import type { ApiPool, ReplicaCounts } from "../supervision/pool.ts";
import type { ReplicaState } from "../supervision/replica.ts";
import type { JobDepth } from "../jobs/job.ts";

/** Overall state of an API, from its replicas. */
export type ApiState = "ready" | "starting" | "restarting" | "init_failed" | "out_of_memory" | "stopped";

/** One API's status. */
export interface ApiStatus {
  readonly name: string;
  readonly endpoint: string;
  readonly status: ApiState;
  readonly replicas: {
    readonly ready: number;
    readonly starting: number;
    readonly failed: number;
    readonly total: number;
    readonly states: ReplicaCounts;
  };
  /** Last error of a replica, e.g. the last line of an init traceback. */
  readonly last_error: string | undefined;
  readonly queue: number;
  readonly in_flight: number;
  /** Durable jobs queued and running (docs/async.md); null when jobs are off. */
  readonly jobs: { readonly in_queue: number; readonly in_progress: number } | null;
}

const PRECEDENCE: readonly ApiState[] = [
  "ready",
  "restarting",
  "starting",
  "out_of_memory",
  "init_failed",
  "stopped",
];

function overall(states: readonly ReplicaState[]): ApiState {
  const mapped = new Set<ApiState>(states.map((s) => (s === "busy" ? "ready" : s)));
  return PRECEDENCE.find((state) => mapped.has(state)) ?? "starting";
}

/** Summarises a pool's replicas, and the API's jobs when they are on. */
export function apiStatus(pool: ApiPool, endpoint: string, jobs?: JobDepth): ApiStatus {
  const counts = pool.counts();
  const replicas = pool.replicas;
  return {
    name: pool.api,
    endpoint,
    status: overall(replicas.map((r) => r.state)),
    replicas: {
      ready: counts.ready + counts.busy,
      starting: counts.starting + counts.restarting,
      failed: counts.init_failed + counts.out_of_memory,
      total: replicas.length,
      states: counts,
    },
    last_error: replicas.find((r) => r.lastError !== undefined)?.lastError,
    queue: pool.queueLength,
    in_flight: pool.inFlight,
    jobs: jobs === undefined ? null : { in_queue: jobs.inQueue, in_progress: jobs.inProgress },
  };
}
