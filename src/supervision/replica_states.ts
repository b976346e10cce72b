/**
 * The replica lifecycle, the one list of its states and the one table of its
 * transitions. Everything else that names a state (pool counts, status
 * pages, metrics, the console) takes it from {@link REPLICA_STATES} and
 * {@link STATE_INFO}; "is it ready" is {@link isReady}.
 *
 * The table gives, for each state, the events it accepts, the state each
 * leads to and the {@link ReplicaEffect} the replica carries out on the way
 * (./replica.ts applies it in one place). An event a state does not list is
 * a bug in the supervisor: {@link nextState} throws.
 *
 * ```
 * starting --ready--> ready --dispatch--> busy --done--> ready
 *    |                  |                  | ^
 *    +-init_failed--> init_failed          | +-cancel (client gone or timeout; still busy)
 *    |                                     | +-pipeline (a second request sent behind the running one)
 *    |                                     | +-next (the running one finished; the second one runs)
 *    +-oom--> out_of_memory                +-stuck--> restarting
 *                                          +-lost---> restarting
 * restarting / init_failed / out_of_memory --spawn--> starting
 * any state but stopped --stop--> stopped
 * ```
 *
 * @module
 */

/** Every replica state, in the order status pages and metrics list them. */
export const REPLICA_STATES = [
  "starting",
  "ready",
  "busy",
  "restarting",
  "init_failed",
  "out_of_memory",
  "stopped",
] as const;

/** Named replica states (docs/inference.md, "Replica states"). */
export type ReplicaState = typeof REPLICA_STATES[number];

/** The state of an API as a whole: its replicas' states, `busy` counted as `ready`. */
export type ApiState = Exclude<ReplicaState, "busy">;

/** What the rest of the server needs to know about a state. */
export interface StateInfo {
  /** For people (console, logs): `init failed`. */
  readonly label: string;
  /** The worker is up and takes requests. */
  readonly ready: boolean;
  /** How status pages count it. */
  readonly group: "ready" | "starting" | "failed" | "stopped";
  /** What an API with a replica in this state is, as a whole. */
  readonly api: ApiState;
}

/** Facts about each state. */
export const STATE_INFO: Readonly<Record<ReplicaState, StateInfo>> = {
  starting: { label: "starting", ready: false, group: "starting", api: "starting" },
  ready: { label: "ready", ready: true, group: "ready", api: "ready" },
  busy: { label: "busy", ready: true, group: "ready", api: "ready" },
  restarting: { label: "restarting", ready: false, group: "starting", api: "restarting" },
  init_failed: { label: "init failed", ready: false, group: "failed", api: "init_failed" },
  out_of_memory: { label: "out of memory", ready: false, group: "failed", api: "out_of_memory" },
  stopped: { label: "stopped", ready: false, group: "stopped", api: "stopped" },
};

/** Which API state wins when replicas differ: the first one any replica is in. */
const API_PRECEDENCE: readonly ApiState[] = [
  "ready",
  "restarting",
  "starting",
  "out_of_memory",
  "init_failed",
  "stopped",
];

/** True when a replica in `state` has a worker taking requests (`ready` or `busy`). */
export function isReady(state: ReplicaState): boolean {
  return STATE_INFO[state].ready;
}

/** How many of `states` are in each state (every state present, zero or more). */
export function countStates(states: Iterable<ReplicaState>): Record<ReplicaState, number> {
  const counts = Object.fromEntries(REPLICA_STATES.map((s) => [s, 0])) as Record<ReplicaState, number>;
  for (const state of states) counts[state]++;
  return counts;
}

/** The state of an API whose replicas are in `states`; `starting` with none. */
export function apiState(states: Iterable<ReplicaState>): ApiState {
  const present = new Set<ApiState>();
  for (const state of states) present.add(STATE_INFO[state].api);
  return API_PRECEDENCE.find((state) => present.has(state)) ?? "starting";
}

/** What can happen to a replica. */
export type ReplicaEvent =
  /** A new worker was spawned and `init` sent. */
  | "spawn"
  /** The worker answered `ready`. */
  | "ready"
  /** Import, signature check or `init` failed, or init timed out. */
  | "init_failed"
  /** The worker went over `compute.mem` and was killed. */
  | "oom"
  /** A request was handed to the worker. */
  | "dispatch"
  /** The worker answered the request (result or Python error) and is usable. */
  | "done"
  /** A second request was sent behind the running one (pipelining; see ./pool.ts). */
  | "pipeline"
  /** The running request finished and the worker went on to the one sent behind it. */
  | "next"
  /** The request's client went away or `--predict-timeout` passed: `cancel` sent. */
  | "cancel"
  /** A cancelled request did not stop within `--cancel-grace`. */
  | "stuck"
  /** The worker exited, broke the protocol or closed its channel. */
  | "lost"
  /** The server stopped the replica. */
  | "stop";

/**
 * What the replica does on a transition, besides announcing its new state:
 * - `none`: nothing more (the caller already did what the event says: sent
 *   predict, sent cancel, spawned a worker; or the supervision loop will
 *   restart after backoff once the worker exited);
 * - `serve`: the worker is ready: queued work may wait for this replica,
 *   its last error is cleared;
 * - `kill`: the worker is no longer wanted (stuck, unusable, over its
 *   memory): SIGTERM, SIGKILL after the kill grace; its exit restarts it;
 * - `drop`: init failed: the worker is gone, queued work stops waiting for
 *   this replica until one is ready again.
 */
export type ReplicaEffect = "none" | "serve" | "kill" | "drop";

/** Where an event leads, what the replica does then, and why (for the debug log and readers). */
export interface Transition {
  readonly to: ReplicaState;
  readonly effect: ReplicaEffect;
  readonly action: string;
}

const STOP: Transition = { to: "stopped", effect: "none", action: "worker shut down; no restart" };
const RESPAWN: Transition = { to: "starting", effect: "none", action: "spawn a worker and send init" };

/** Every legal transition. */
export const TRANSITIONS: Readonly<
  Record<ReplicaState, Readonly<Partial<Record<ReplicaEvent, Transition>>>>
> = {
  starting: {
    ready: { to: "ready", effect: "serve", action: "take requests" },
    init_failed: { to: "init_failed", effect: "drop", action: "retry init after backoff" },
    oom: { to: "out_of_memory", effect: "drop", action: "retry after backoff" },
    stop: STOP,
  },
  ready: {
    dispatch: { to: "busy", effect: "none", action: "send predict" },
    lost: { to: "restarting", effect: "none", action: "restart after backoff" },
    oom: { to: "out_of_memory", effect: "kill", action: "restart after backoff" },
    stop: STOP,
  },
  busy: {
    done: { to: "ready", effect: "none", action: "take the next request" },
    pipeline: { to: "busy", effect: "none", action: "send predict behind the running one" },
    next: { to: "busy", effect: "none", action: "start the predict timeout of the request sent behind" },
    cancel: {
      to: "busy",
      effect: "none",
      action: "answer 499 or 504; send cancel; wait --cancel-grace for predict to stop",
    },
    stuck: { to: "restarting", effect: "kill", action: "kill the worker; restart after backoff" },
    lost: { to: "restarting", effect: "kill", action: "answer 502; make sure the worker is gone; restart" },
    oom: { to: "out_of_memory", effect: "kill", action: "answer 502; restart after backoff" },
    stop: STOP,
  },
  restarting: {
    spawn: RESPAWN,
    oom: { to: "out_of_memory", effect: "none", action: "restart after backoff" },
    stop: STOP,
  },
  init_failed: { spawn: RESPAWN, stop: STOP },
  out_of_memory: { spawn: RESPAWN, stop: STOP },
  stopped: {},
};

/** The transition `event` causes in `state`. Throws on an illegal one (a supervisor bug). */
export function nextState(state: ReplicaState, event: ReplicaEvent): Transition {
  const transition = TRANSITIONS[state][event];
  if (transition === undefined) {
    throw new Error(`Illegal replica transition: event "${event}" in state "${state}"`);
  }
  return transition;
}
