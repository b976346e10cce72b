/**
 * The replica lifecycle as a table: for each state, the events it accepts,
 * the state each leads to, and what the replica does on the way. An event a
 * state does not list is a bug in the supervisor: {@link nextState} throws.
 *
 * ```
 * starting ──ready──▶ ready ──dispatch──▶ busy ──done──▶ ready
 *    │                  │                  │ ▲
 *    ├─init_failed──▶ init_failed          │ ├─cancel (client gone or timeout; still busy)
 *    │                                     │ ├─pipeline (a second request sent behind the running one)
 *    │                                     │ └─next (the running one finished; the second one runs)
 *    └─oom──▶ out_of_memory                ├─stuck──▶ restarting
 *                                          └─lost───▶ restarting
 * restarting / init_failed / out_of_memory ──spawn──▶ starting
 * any state but stopped ──stop──▶ stopped
 * ```
 *
 * @module
 */

/** Named replica states (see README, "What happens when your code fails"). */
export type ReplicaState =
  | "starting"
  | "ready"
  | "busy"
  | "restarting"
  | "init_failed"
  | "out_of_memory"
  | "stopped";

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
  /** A cancelled request did not stop within `--cancel-grace`: the worker is being killed. */
  | "stuck"
  /** The worker exited, broke the protocol or closed its channel. */
  | "lost"
  /** The server stopped the replica. */
  | "stop";

/** Where an event leads and what the replica does then (for the debug log and readers). */
export interface Transition {
  readonly to: ReplicaState;
  readonly action: string;
}

const STOP: Transition = { to: "stopped", action: "worker shut down; no restart" };
const RESPAWN: Transition = { to: "starting", action: "spawn a worker and send init" };

/** Every legal transition. */
export const TRANSITIONS: Readonly<
  Record<ReplicaState, Readonly<Partial<Record<ReplicaEvent, Transition>>>>
> = {
  starting: {
    ready: { to: "ready", action: "take requests" },
    init_failed: { to: "init_failed", action: "kill the worker; retry init after backoff" },
    oom: { to: "out_of_memory", action: "retry after backoff" },
    stop: STOP,
  },
  ready: {
    dispatch: { to: "busy", action: "send predict" },
    lost: { to: "restarting", action: "restart after backoff" },
    oom: { to: "out_of_memory", action: "restart after backoff" },
    stop: STOP,
  },
  busy: {
    done: { to: "ready", action: "take the next request" },
    pipeline: { to: "busy", action: "send predict behind the running one" },
    next: { to: "busy", action: "start the predict timeout of the request sent behind" },
    cancel: { to: "busy", action: "answer 499 or 504; send cancel; wait --cancel-grace for predict to stop" },
    stuck: { to: "restarting", action: "kill the worker; restart after backoff" },
    lost: { to: "restarting", action: "answer 502; restart after backoff" },
    oom: { to: "out_of_memory", action: "answer 502; restart after backoff" },
    stop: STOP,
  },
  restarting: {
    spawn: RESPAWN,
    oom: { to: "out_of_memory", action: "restart after backoff" },
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
