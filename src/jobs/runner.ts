/**
 * Takes jobs from the store and runs them on the API's replicas, sharing
 * them with synchronous requests under one policy (docs/async.md):
 *
 * - a job starts only when no synchronous request waits in the pool's queue
 *   and a replica is free (`ready`);
 * - jobs occupy at most `replicas - 1` replicas of an API with two or more,
 *   so one stays free for interactive traffic; with one replica, at most
 *   one job runs and a synchronous request waits at most for it.
 *
 * The runner wakes when a pool changes (a replica freed, the queue
 * emptied), when a job is submitted here, and on a slow tick that also
 * requeues jobs of dead runners, renews its own leases and notices jobs
 * cancelled elsewhere.
 *
 * @module
 */
import type { Logger } from "../log/logger.ts";
import type { ApiPool } from "../supervision/pool.ts";
import type { JobOutcome, JobRecord, JobStore, LeasedJob } from "./job.ts";
import { predictJob } from "./predict_job.ts";

/** Settings of a {@link JobRunner}. */
export interface RunnerOptions {
  readonly store: JobStore;
  /** This runner's name in leases: unique per process. */
  readonly owner: string;
  /** How long a lease lasts unless renewed (`--job-lease`). */
  readonly leaseMs: number;
  /** Tries before a job whose worker keeps dying is failed (`--job-attempts`). */
  readonly maxAttempts: number;
  /** Period of the tick (requeue, renew, look for jobs submitted elsewhere). */
  readonly tickMs: number;
  readonly logger: Logger;
  /** Told when a job started running here. */
  readonly onStart?: (job: LeasedJob) => void;
  /** Told when a run here made a job final. */
  readonly onFinish?: (record: JobRecord) => void;
  /** Told when the number of queued or running jobs may have changed. */
  readonly onChange?: () => void;
}

interface Running {
  readonly api: string;
  readonly controller: AbortController;
}

/** Runs stored jobs on the current pools. */
export class JobRunner {
  readonly #o: RunnerOptions;
  #pools: ReadonlyMap<string, ApiPool> = new Map();
  /** APIs whose worker parses the payload by Content-Type (Cortex 0.17+ dialects). */
  #typed: ReadonlySet<string> = new Set();
  readonly #unwatch: (() => void)[] = [];
  readonly #running = new Map<string, Running>();
  /** APIs with a lease request under way. */
  readonly #leasing = new Set<string>();
  /** APIs whose queue was empty at the last look. */
  readonly #empty = new Set<string>();
  readonly #ticker: ReturnType<typeof setInterval>;
  #closing = false;
  #ticking = false;
  readonly #idle = new Set<() => void>();

  constructor(options: RunnerOptions) {
    this.#o = options;
    this.#ticker = setInterval(() => void this.#tick(), options.tickMs);
  }

  /** Jobs running here now. */
  get running(): number {
    return this.#running.size;
  }

  /** Runs jobs on `pools` from now on (at start and after a reload). */
  usePools(pools: ReadonlyMap<string, ApiPool>, typed: ReadonlySet<string> = new Set()): void {
    for (const off of this.#unwatch.splice(0)) off();
    this.#pools = pools;
    this.#typed = typed;
    for (const [api, pool] of pools) this.#unwatch.push(pool.changes.on(() => this.#pump(api)));
    void this.#tick();
  }

  /** A job of `api` was submitted here: look for work now. */
  wake(api: string): void {
    this.#empty.delete(api);
    this.#pump(api);
  }

  /** Cancels the run of `id` if it runs here. */
  abort(id: string): void {
    this.#running.get(id)?.controller.abort();
  }

  /**
   * Stops taking jobs; resolves once the runs under way have ended (they
   * end with the pools' drain). Leases of runs cut short expire and their
   * jobs are requeued by the next server.
   */
  async close(): Promise<void> {
    this.#closing = true;
    clearInterval(this.#ticker);
    for (const off of this.#unwatch.splice(0)) off();
    if (this.#running.size > 0 || this.#leasing.size > 0) {
      await new Promise<void>((resolve) => this.#idle.add(resolve));
    }
  }

  /** True when `pool` may start one more job of this runner now (the policy above). */
  #mayStart(pool: ApiPool, api: string): boolean {
    if (pool.queueLength > 0) return false;
    const counts = pool.counts();
    if (counts.ready === 0) return false;
    const serving = counts.ready + counts.busy;
    const limit = serving >= 2 ? serving - 1 : 1;
    let mine = 0;
    for (const run of this.#running.values()) if (run.api === api) mine++;
    return mine < limit;
  }

  #pump(api: string): void {
    if (this.#closing || this.#leasing.has(api) || this.#empty.has(api)) return;
    const pool = this.#pools.get(api);
    if (pool === undefined || !this.#mayStart(pool, api)) return;
    this.#leasing.add(api);
    this.#o.store.lease(api, this.#o.owner, this.#o.leaseMs).then(
      (job) => {
        this.#leasing.delete(api);
        if (job === undefined) {
          this.#empty.add(api);
          this.#settled();
          return;
        }
        void this.#run(job);
        this.#pump(api);
      },
      (error) => {
        this.#leasing.delete(api);
        this.#o.logger.error("cannot take a job from the store", { api, error: String(error) });
        this.#settled();
      },
    );
  }

  async #run(job: LeasedJob): Promise<void> {
    const controller = new AbortController();
    this.#running.set(job.id, { api: job.api, controller });
    const pool = this.#pools.get(job.api);
    let outcome: JobOutcome;
    if (pool === undefined || this.#closing || pool.queueLength > 0 || pool.counts().ready === 0) {
      // Taken by a synchronous request while the lease was on its way.
      outcome = { kind: "released" };
    } else {
      this.#o.onChange?.();
      this.#o.onStart?.(job);
      this.#o.logger.debug("job started", { api: job.api, job: job.id, attempt: job.attempts });
      outcome = await predictJob(
        pool,
        job.request,
        controller.signal,
        this.#typed.has(job.api) ? { jobId: job.id } : undefined,
      );
    }
    // A worker lost because the server is stopping is no fault of the job.
    if (this.#closing && outcome.kind === "crashed") outcome = { kind: "released" };
    try {
      const record = await this.#o.store.finish(job.id, this.#o.owner, outcome, this.#o.maxAttempts);
      if (outcome.kind === "crashed" && record === undefined) {
        this.#o.logger.warn("job requeued: its worker was lost", {
          api: job.api,
          job: job.id,
          attempt: job.attempts,
        });
      }
      if (record !== undefined) {
        this.#o.logger.info("job finished", {
          api: job.api,
          job: job.id,
          status: record.status,
          ...(record.error === undefined ? {} : { error: record.error }),
        });
        this.#o.onFinish?.(record);
      }
    } catch (error) {
      this.#o.logger.error("cannot record a job's end; its lease will expire and it will run again", {
        api: job.api,
        job: job.id,
        error: String(error),
      });
    }
    this.#running.delete(job.id);
    this.#o.onChange?.();
    if (outcome.kind === "released") {
      this.#empty.add(job.api); // not now: the tick or a pool change retries
      if (this.#closing) {
        this.#o.logger.info("job back in the queue: the server stopped before it ended", {
          api: job.api,
          job: job.id,
        });
      }
    }
    this.#settled();
    this.#pump(job.api);
  }

  /** Wakes {@link close} once nothing is under way. */
  #settled(): void {
    if (!this.#closing || this.#running.size > 0 || this.#leasing.size > 0) return;
    for (const resolve of this.#idle) resolve();
    this.#idle.clear();
  }

  async #tick(): Promise<void> {
    if (this.#ticking || this.#closing) return;
    this.#ticking = true;
    const store = this.#o.store;
    try {
      if (this.#running.size > 0) {
        const lost = await store.renew([...this.#running.keys()], this.#o.owner, this.#o.leaseMs);
        for (const id of lost) this.#running.get(id)?.controller.abort();
      }
      const moved = await store.requeueExpired(this.#o.maxAttempts);
      if (moved > 0) {
        this.#o.logger.info("jobs of a stopped server requeued", { jobs: moved });
        this.#o.onChange?.();
      }
    } catch (error) {
      this.#o.logger.error("job store unavailable", { store: store.description, error: String(error) });
    } finally {
      this.#ticking = false;
    }
    this.#empty.clear();
    for (const api of this.#pools.keys()) this.#pump(api);
  }
}
