/**
 * The replicas behind one pool: which they are (set at start and on
 * reload, grown and shrunk by autoscaling), their state events, counts by
 * state, and whether any of them takes work.
 *
 * @module
 */
import type { SupervisionCounters } from "./counters.ts";
import type { Replica } from "./replica.ts";
import { countStates, isReady, type ReplicaState } from "./replica_states.ts";

/** The replicas of one pool; `onChange` runs after any of them changed state. */
export class ReplicaSet {
  readonly #api: string;
  readonly #counters: SupervisionCounters;
  readonly #onChange: () => void;
  #replicas: readonly Replica[] = [];
  /** Unsubscribe functions of the replicas' state events. */
  readonly #watching = new Map<Replica, () => void>();
  #scaledUp = 0;
  #scaledDown = 0;

  constructor(api: string, counters: SupervisionCounters, onChange: () => void) {
    this.#api = api;
    this.#counters = counters;
    this.#onChange = onChange;
  }

  get all(): readonly Replica[] {
    return this.#replicas;
  }

  /** Scale events so far. */
  get scaleEvents(): { readonly up: number; readonly down: number } {
    return { up: this.#scaledUp, down: this.#scaledDown };
  }

  /** Replaces the set. */
  set(replicas: readonly Replica[]): void {
    this.#replicas = replicas;
    this.#watch();
  }

  /** Adds a replica (scale up). */
  add(replica: Replica): void {
    this.#scaledUp++;
    this.#counters.scaled(this.#api, "up");
    this.set([...this.#replicas, replica]);
  }

  /** Takes out an idle (ready) replica, the one with the highest index; undefined when none is idle. */
  retireIdle(): Replica | undefined {
    const idle = this.#replicas.filter((r) => r.state === "ready");
    const replica = idle.reduce<Replica | undefined>((a, r) => (a && a.index > r.index ? a : r), undefined);
    if (replica === undefined) return undefined;
    this.#scaledDown++;
    this.#counters.scaled(this.#api, "down");
    this.set(this.#replicas.filter((r) => r !== replica));
    return replica;
  }

  /** Replica counts by state. */
  counts(): Record<ReplicaState, number> {
    return countStates(this.#replicas.map((r) => r.state));
  }

  /** True when new work may queue: some replica is ready, busy or coming back from a crash. */
  get accepting(): boolean {
    // A loop, not `some` with an arrow: asked twice per request, it allocates nothing.
    for (const replica of this.#replicas) {
      if (isReady(replica.state) || replica.serving) return true;
    }
    return false;
  }

  /** Subscribes to the state of every current replica and drops the ones that left. */
  #watch(): void {
    const current = new Set(this.#replicas);
    for (const [replica, off] of this.#watching) {
      if (current.has(replica)) continue;
      off();
      this.#watching.delete(replica);
    }
    for (const replica of current) {
      if (this.#watching.has(replica)) continue;
      this.#watching.set(replica, replica.changes.on(this.#onChange));
    }
  }
}
