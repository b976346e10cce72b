/**
 * The jobs of a server: the store, the runner, the webhooks, and the
 * counts the status page, the console and the metrics read. One per
 * server, across reloads (the runner is told of new pools).
 *
 * @module
 */
import { ApiError } from "../errors/api_error.ts";
import type { Logger } from "../log/logger.ts";
import type { ApiPool } from "../supervision/pool.ts";
import type { JobDepth, JobRecord, JobRequest, JobStore, Webhook } from "./job.ts";
import { JobRunner } from "./runner.ts";
import { jobView } from "./view.ts";
import { type WebhookOptions, WebhookSender } from "./webhooks.ts";

/** Settings of a {@link JobService}. */
export interface JobServiceOptions {
  readonly store: JobStore;
  readonly logger: Logger;
  /** `--job-lease` (default 30 s). */
  readonly leaseMs?: number;
  /** `--job-attempts` (default 3). */
  readonly maxAttempts?: number;
  /** `--job-queue`: jobs that may wait per API; past it a submit is refused with 503 (default 100 000). */
  readonly maxQueued?: number;
  /** `--job-ttl`: final jobs are deleted this long after they ended (default 7 days). */
  readonly ttlMs?: number;
  /** Period of the runner's tick (default 1 s). */
  readonly tickMs?: number;
  /** Webhook tries and deadlines; defaults in ./webhooks.ts. */
  readonly webhooks?: Pick<WebhookOptions, "timeoutMs" | "attempts" | "backoffMs" | "concurrency">;
}

const NO_JOBS: JobDepth = { inQueue: 0, inProgress: 0 };
/** Period of the retention sweep. */
const SWEEP_EVERY_MS = 60_000;
/** Period of the look for webhooks left pending (a busy sender, a restart). */
const WEBHOOK_SWEEP_MS = 5000;

/** Durable jobs for every API of a server. */
export class JobService implements AsyncDisposable {
  readonly store: JobStore;
  readonly #runner: JobRunner;
  readonly #webhooks: WebhookSender;
  readonly #logger: Logger;
  readonly #ttlMs: number;
  readonly #maxQueued: number;
  #depth: ReadonlyMap<string, JobDepth> = new Map();
  #counting = false;
  #recount = false;
  #sweptAt = 0;
  readonly #sweeper: ReturnType<typeof setInterval>;

  constructor(options: JobServiceOptions) {
    this.store = options.store;
    this.#logger = options.logger;
    this.#ttlMs = options.ttlMs ?? 7 * 24 * 3600_000;
    this.#maxQueued = options.maxQueued ?? 100_000;
    this.#webhooks = new WebhookSender({
      store: options.store,
      logger: options.logger,
      view: jobView,
      ...options.webhooks,
    });
    this.#runner = new JobRunner({
      store: options.store,
      owner: crypto.randomUUID(),
      leaseMs: options.leaseMs ?? 30_000,
      maxAttempts: options.maxAttempts ?? 3,
      tickMs: options.tickMs ?? 1000,
      logger: options.logger,
      onStart: (job) =>
        this.#webhooks.started({
          ...job,
          status: "in_progress",
          startedAt: Date.now(),
          finishedAt: undefined,
          error: undefined,
          result: undefined,
        }),
      onFinish: (record) => this.#webhooks.finished(record),
      onChange: () => this.#count(),
    });
    this.#sweeper = setInterval(() => void this.#housekeeping(), WEBHOOK_SWEEP_MS);
    void this.#housekeeping();
  }

  /**
   * Runs jobs on `pools` from now on (at start and after a reload); `typed`
   * names the APIs whose worker parses the payload by Content-Type.
   */
  usePools(pools: ReadonlyMap<string, ApiPool>, typed?: ReadonlySet<string>): void {
    this.#runner.usePools(pools, typed);
  }

  /**
   * Stores a new job of `api`; resolves with its id once it is durable.
   *
   * @throws {ApiError} QUEUE_FULL when `maxQueued` jobs of `api` wait (at the last count)
   */
  async submit(api: string, request: JobRequest, webhook: Webhook | undefined): Promise<string> {
    const waiting = this.depth(api).inQueue;
    if (waiting >= this.#maxQueued) {
      throw new ApiError("QUEUE_FULL", `Api ${api} has ${waiting} jobs waiting (--job-queue)`, {
        retryAfter: 5,
      });
    }
    const id = crypto.randomUUID();
    await this.store.submit({ id, api, request, webhook, createdAt: Date.now() });
    this.#count();
    this.#runner.wake(api);
    return id;
  }

  /** The job `id` of `api`, or undefined. */
  get(api: string, id: string): Promise<JobRecord | undefined> {
    return this.store.get(api, id);
  }

  /** Cancels a job (stopping it if it runs here); resolves with its record, or undefined when unknown. */
  async cancel(api: string, id: string): Promise<JobRecord | undefined> {
    const record = await this.store.cancel(api, id);
    if (record?.status === "cancelled") {
      this.#runner.abort(id);
      this.#webhooks.finished(record);
      this.#count();
    }
    return record;
  }

  /** Queued and running jobs of `api` at the last count. */
  depth(api: string): JobDepth {
    return this.#depth.get(api) ?? NO_JOBS;
  }

  /**
   * Stops taking jobs and waits, at most `timeoutMs`, for the runs under way
   * to record their end (they end with the pools' drain).
   */
  async close(timeoutMs = 60_000): Promise<void> {
    clearInterval(this.#sweeper);
    // The runs end with the pools' drain; a store that stopped answering must not hold the exit.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<"late">((resolve) => timer = setTimeout(() => resolve("late"), timeoutMs));
    const ended = await Promise.race([this.#runner.close(), late]);
    clearTimeout(timer);
    if (ended === "late") {
      this.#logger.warn("jobs still recording their end at exit: their leases expire and they run again", {
        store: this.store.description,
      });
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
    await this.#webhooks[Symbol.asyncDispose]();
    await this.store[Symbol.asyncDispose]();
  }

  /** Recounts queued and running jobs, at most one count under way (one more if asked meanwhile). */
  #count(): void {
    if (this.#counting) {
      this.#recount = true;
      return;
    }
    this.#counting = true;
    this.store.depth().then(
      (depth) => this.#depth = depth,
      (error) => this.#logger.warn("cannot count jobs", { error: String(error) }),
    ).finally(() => {
      this.#counting = false;
      if (this.#recount) {
        this.#recount = false;
        this.#count();
      }
    });
  }

  async #housekeeping(): Promise<void> {
    try {
      const now = Date.now();
      if (now - this.#sweptAt >= Math.min(SWEEP_EVERY_MS, this.#ttlMs)) {
        this.#sweptAt = now;
        const swept = await this.store.sweep(this.#ttlMs);
        if (swept > 0) this.#logger.info("old jobs deleted (--job-ttl)", { jobs: swept });
      }
      await this.#webhooks.sweep();
    } catch (error) {
      this.#logger.error("job housekeeping failed", { store: this.store.description, error: String(error) });
    }
    this.#count();
  }
}
