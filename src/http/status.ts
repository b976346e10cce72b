/**
 * What `GET /`, `GET /healthz` and `GET <endpoint>` say about an API. The
 * states, their groups and the API's overall state come from the one list
 * in src/supervision/replica_states.ts.
 */
import type { ApiPool, ReplicaCounts } from "../supervision/pool.ts";
import { type ApiState, apiState, REPLICA_STATES, STATE_INFO } from "../supervision/replica_states.ts";
import type { JobDepth } from "../jobs/job.ts";

export type { ApiState } from "../supervision/replica_states.ts";

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

/** Summarises a pool's replicas, and the API's jobs when they are on. */
export function apiStatus(pool: ApiPool, endpoint: string, jobs?: JobDepth): ApiStatus {
  const counts = pool.counts();
  const replicas = pool.replicas;
  const groups = { ready: 0, starting: 0, failed: 0, stopped: 0 };
  for (const state of REPLICA_STATES) groups[STATE_INFO[state].group] += counts[state];
  return {
    name: pool.api,
    endpoint,
    status: apiState(replicas.map((r) => r.state)),
    replicas: {
      ready: groups.ready,
      starting: groups.starting,
      failed: groups.failed,
      total: replicas.length,
      states: counts,
    },
    last_error: replicas.find((r) => r.lastError !== undefined)?.lastError,
    queue: pool.queueLength,
    in_flight: pool.inFlight,
    jobs: jobs === undefined ? null : { in_queue: jobs.inQueue, in_progress: jobs.inProgress },
  };
}
