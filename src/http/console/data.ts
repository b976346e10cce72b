/**
 * The JSON behind the console page (`GET /_console/data`) and the sample
 * requests of the try-it form (`GET /_console/samples`).
 *
 * @module
 */
import { dirname, join } from "node:path";
import type { ResolvedProject } from "../../config/types.ts";
import type { ApiPool } from "../../supervision/pool.ts";
import type { RequestStats } from "../stats.ts";
import { type ApiState, type ReplicaState, STATE_INFO } from "../../supervision/replica_states.ts";
import { apiStatus } from "../status.ts";
import { splitterStatus } from "../splitter.ts";
import type { ConsoleActivity } from "./activity.ts";
import type { JobService } from "../../jobs/service.ts";

/** What the console reads. */
export interface ConsoleSources {
  readonly project: ResolvedProject;
  readonly pools: ReadonlyMap<string, ApiPool>;
  readonly stats: RequestStats;
  readonly activity: ConsoleActivity;
  /** Durable jobs, whose queue the console shows; none when off. */
  readonly jobs?: JobService | undefined;
}

/** Largest `sample.json` offered to the form, in bytes. */
export const MAX_SAMPLE_BYTES = 256 * 1024;

/** The state the console shows: the API's status, or `busy` when every ready replica is predicting. */
export function consoleState(status: ApiState, states: { ready: number; busy: number }): ReplicaState {
  return status === "ready" && states.ready === 0 && states.busy > 0 ? "busy" : status;
}

/** Everything the page shows, as one JSON value. */
export function consoleData(sources: ConsoleSources, nowMs = Date.now()): Record<string, unknown> {
  const { project, pools, stats, activity, jobs } = sources;
  return {
    deployment: project.deployment.name,
    time: nowMs,
    apis: project.apis.map((api) => {
      const status = apiStatus(pools.get(api.name)!, api.endpoint, jobs?.depth(api.name));
      const state = consoleState(status.status, status.replicas.states);
      return {
        ...status,
        state,
        // The page shows the server's words for a state: it keeps no list of its own.
        state_label: STATE_INFO[state].label,
        last_error: status.last_error ?? null,
        ...stats.of(api.name).snapshot(),
        last_minute: activity.lastMinute(api.name, nowMs),
      };
    }),
    splitters: (project.splitters ?? []).map((splitter) =>
      splitterStatus(splitter, pools, new Map(project.apis.map((api) => [api.name, api.endpoint])))
    ),
    requests: activity.recentRequests(),
    logs: activity.recentLogs(),
  };
}

/**
 * Each API's sample request as text: `sample.json` next to its inference
 * file, else at the project root; `null` when there is none (or it is over
 * {@link MAX_SAMPLE_BYTES}).
 */
export async function samples(project: ResolvedProject): Promise<Record<string, string | null>> {
  const entries = await Promise.all(project.apis.map(async (api) => {
    const candidates = [
      join(project.root, dirname(api.inference), "sample.json"),
      join(project.root, "sample.json"),
    ];
    for (const path of new Set(candidates)) {
      const text = await readSmall(path);
      if (text !== undefined) return [api.name, text] as const;
    }
    return [api.name, null] as const;
  }));
  return Object.fromEntries(entries);
}

async function readSmall(path: string): Promise<string | undefined> {
  try {
    const info = await Deno.stat(path);
    if (!info.isFile || info.size > MAX_SAMPLE_BYTES) return undefined;
    return await Deno.readTextFile(path);
  } catch {
    return undefined;
  }
}
