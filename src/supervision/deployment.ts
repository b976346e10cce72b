/**
 * A running deployment: for each API of a resolved project, a pool with its
 * replicas, all pointing at one staged project tree. Started, drained and
 * stopped as a whole.
 */
import type { ResolvedApi, ResolvedProject } from "../config/types.ts";
import type { Logger } from "../log/logger.ts";
import { apiInitMessage, apiWorkerEnv } from "../python/worker_launch.ts";
import { WorkerProcess } from "../python/worker_process.ts";
import { Autoscaler, DEFAULT_SCALE, type ScaleSettings } from "./autoscale.ts";
import type { BackoffOptions } from "./backoff.ts";
import { ApiPool } from "./pool.ts";
import { Replica } from "./replica.ts";

const READY_POLL_MS = 25;

/** How workers are run; the same for every API. */
export interface RuntimeOptions {
  /** Interpreter command or path. */
  readonly python: string;
  /** worker.py as written to the state directory. */
  readonly workerPath: string;
  readonly maxFrameBytes: number;
  /** Queue places per replica (`--queue`). */
  readonly queuePerReplica: number;
  readonly predictTimeoutMs: number;
  /** After a cancel, how long predict may take to stop before the worker is restarted. */
  readonly cancelGraceMs: number;
  readonly initTimeoutMs: number | undefined;
  readonly killGraceMs: number;
  readonly backoff: BackoffOptions;
  readonly maxLogLineChars: number;
  /** The server's environment, filtered before it reaches workers. */
  readonly serverEnv: Readonly<Record<string, string>>;
  readonly logger: Logger;
  /** Autoscaling of APIs whose max_replicas is above min_replicas; default DEFAULT_SCALE. */
  readonly scale?: ScaleSettings;
}

/** Pools of every API of one project version. */
export class Deployment {
  readonly project: ResolvedProject;
  readonly stagedDir: string;
  readonly pools: ReadonlyMap<string, ApiPool>;
  readonly #runtime: RuntimeOptions;
  readonly #autoscalers: Autoscaler[] = [];

  constructor(project: ResolvedProject, stagedDir: string, runtime: RuntimeOptions) {
    this.project = project;
    this.stagedDir = stagedDir;
    this.#runtime = runtime;
    this.pools = new Map(project.apis.map((api) => [api.name, this.#pool(api)]));
  }

  /** Starts every replica's supervision loop. */
  start(): void {
    for (const pool of this.pools.values()) {
      for (const replica of pool.replicas) replica.start();
    }
    for (const autoscaler of this.#autoscalers) autoscaler.start();
  }

  /**
   * Resolves when every API has a ready replica. Rejects when `signal`
   * aborts, and with `failOnInitError` as soon as every replica of some API
   * has failed to start (a reload candidate then is not worth waiting for;
   * at startup replicas keep retrying instead).
   */
  whenReady(signal?: AbortSignal, options: { readonly failOnInitError?: boolean } = {}): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const pools = [...this.pools.values()];
        const failed = options.failOnInitError
          ? pools.find((pool) =>
            pool.replicas.length > 0 &&
            pool.replicas.every((r) => r.state === "init_failed" || r.state === "out_of_memory")
          )
          : undefined;
        if (failed !== undefined) {
          const why = failed.replicas.find((r) => r.lastError !== undefined)?.lastError ?? "init failed";
          return finish(new Error(`api ${failed.api}: ${why}`));
        }
        const ready = pools.every((pool) =>
          pool.replicas.length === 0 || pool.replicas.some((r) => r.state === "ready" || r.state === "busy")
        );
        if (ready) finish(undefined);
      };
      const onAbort = () => finish(signal?.reason instanceof Error ? signal.reason : new Error("Aborted"));
      const timer = setInterval(check, READY_POLL_MS);
      signal?.addEventListener("abort", onAbort, { once: true });
      function finish(error: Error | undefined): void {
        clearInterval(timer);
        signal?.removeEventListener("abort", onAbort);
        if (error === undefined) resolve();
        else reject(error);
      }
      if (signal?.aborted) onAbort();
      else check();
    });
  }

  /**
   * Stops taking requests, lets queued and running ones finish within
   * `drainMs`, then stops every worker. Returns true when nothing was cut off.
   */
  async stop(drainMs: number): Promise<boolean> {
    await Promise.all(this.#autoscalers.map((a) => a.stop()));
    const drained = await Promise.all([...this.pools.values()].map((pool) => pool.drain(drainMs)));
    await Promise.all([...this.pools.values()].flatMap((pool) => pool.replicas.map((r) => r.stop())));
    return drained.every(Boolean);
  }

  #pool(api: ResolvedApi): ApiPool {
    const rt = this.#runtime;
    if (api.compute.cpu !== undefined) {
      rt.logger.info("compute.cpu is not enforced: workers share the machine's cores", {
        api: api.name,
        cpu: api.compute.cpu,
      });
    }
    const count = api.compute.initReplicas;
    const pool = new ApiPool({
      api: api.name,
      queuePerReplica: rt.queuePerReplica,
      maxReplicas: api.compute.maxReplicas,
      predictTimeoutMs: rt.predictTimeoutMs,
      logger: rt.logger,
    });
    const replicas = Array.from({ length: count }, (_, index) => this.#replica(api, index, pool));
    pool.setReplicas(replicas);
    const { minReplicas, maxReplicas } = api.compute;
    if (maxReplicas > minReplicas) {
      this.#autoscalers.push(
        new Autoscaler({
          pool,
          minReplicas,
          maxReplicas,
          settings: rt.scale ?? DEFAULT_SCALE,
          create: (index) => this.#replica(api, index, pool),
          logger: rt.logger,
        }),
      );
    }
    return pool;
  }

  #replica(api: ResolvedApi, index: number, pool: ApiPool): Replica {
    const rt = this.#runtime;
    const dir = this.stagedDir;
    const env = apiWorkerEnv(rt.serverEnv, api, { dir, index });
    return new Replica({
      api: api.name,
      index,
      spawn: (onLog) =>
        WorkerProcess.spawn({
          python: rt.python,
          workerPath: rt.workerPath,
          cwd: dir,
          env,
          maxFrameBytes: rt.maxFrameBytes,
          onLog,
          maxLogLineChars: rt.maxLogLineChars,
        }),
      init: apiInitMessage(this.project, api, dir),
      initTimeoutMs: rt.initTimeoutMs,
      killGraceMs: rt.killGraceMs,
      cancelGraceMs: rt.cancelGraceMs,
      backoff: rt.backoff,
      memBytes: api.compute.memBytes,
      memText: api.compute.mem,
      logger: rt.logger,
      onChange: () => pool.dispatch(),
    });
  }
}
