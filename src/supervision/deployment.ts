/**
 * A running deployment: for each API of a resolved project, a pool with its
 * replicas, all pointing at one staged project tree. Started, drained and
 * stopped as a whole.
 */
import type { ResolvedApi, ResolvedProject } from "../config/types.ts";
import type { Logger } from "../log/logger.ts";
import { apiInitMessage, apiWorkerEnv } from "../python/worker_launch.ts";
import { WorkerProcess } from "../python/worker_process.ts";
import type { ModelMessage } from "../python/protocol.ts";
import { Autoscaler, DEFAULT_SCALE, type ScaleSettings } from "./autoscale.ts";
import type { BackoffOptions } from "./backoff.ts";
import { ApiPool } from "./pool.ts";
import { Replica } from "./replica.ts";
import { waitUntil } from "./events.ts";
import { isReady, STATE_INFO } from "./replica_states.ts";
import type { SpawnWorker } from "./replica_worker.ts";
import type { SupervisionCounters } from "./counters.ts";

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
  /** How long a request may wait for a replica (`--queue-timeout`); default `predictTimeoutMs`. */
  readonly queueTimeoutMs?: number;
  readonly initTimeoutMs: number | undefined;
  readonly killGraceMs: number;
  readonly backoff: BackoffOptions;
  readonly maxLogLineChars: number;
  /** The server's environment, filtered before it reaches workers. */
  readonly serverEnv: Readonly<Record<string, string>>;
  readonly logger: Logger;
  /** Autoscaling of APIs whose max_replicas is above min_replicas; default DEFAULT_SCALE. */
  readonly scale?: ScaleSettings;
  /** Starts workers another way than a Python child (in-process tests). */
  readonly spawnWorker?: SpawnWorker;
  /** `--enforce-mem`: kill a worker over its `compute.mem` (a request only, as in Cortex, otherwise). */
  readonly enforceMem?: boolean;
  /** Where workers download `s3://` models. */
  readonly modelDir?: string;
  /** Where restarts, cancels and scale events are counted (the server's metrics); default none. */
  readonly counters?: SupervisionCounters;
  /** Told of every model load and eviction of a multi-model API's workers. */
  readonly onModelEvent?: (api: string, event: ModelMessage) => void;
  /** Ask workers for each request's timings (`--latency-breakdown`); default false. */
  readonly workerTimings?: boolean;
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
    const pools = [...this.pools.values()];
    return waitUntil(pools.map((pool) => pool.changes), () => {
      if (options.failOnInitError) {
        const failed = pools.find((pool) =>
          pool.replicas.length > 0 &&
          pool.replicas.every((r) => STATE_INFO[r.state].group === "failed")
        );
        if (failed !== undefined) {
          const why = failed.replicas.find((r) => r.lastError !== undefined)?.lastError ?? "init failed";
          throw new Error(`api ${failed.api}: ${why}`);
        }
      }
      return pools.every(hasReadyReplica) ? true : undefined;
    }, { signal }).then(() => {});
  }

  /**
   * Calls `onReady(api)` once for each API, when it first has a ready
   * replica (at once for one that already has). Returns the unsubscribe
   * function; it also unsubscribes itself once every API was announced.
   */
  onApiReady(onReady: (api: ResolvedApi) => void): () => void {
    const pending = new Map(this.project.apis.map((api) => [api.name, api]));
    const offs: (() => void)[] = [];
    const off = () => offs.splice(0).forEach((f) => f());
    const check = (pool: ApiPool) => {
      const api = pending.get(pool.api);
      if (api === undefined || !pool.replicas.some((r) => isReady(r.state))) return;
      pending.delete(pool.api);
      if (pending.size === 0) off();
      onReady(api);
    };
    for (const pool of this.pools.values()) offs.push(pool.changes.on(check));
    for (const pool of this.pools.values()) check(pool);
    return off;
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
    const queueTimeoutMs = rt.queueTimeoutMs ?? rt.predictTimeoutMs;
    if (api.batching !== undefined && api.batching.batchIntervalMs >= queueTimeoutMs) {
      rt.logger.warn(
        "server_side_batching.batch_interval is not shorter than --queue-timeout: " +
          "requests of a batch that is not full time out before it leaves",
        { api: api.name, batch_interval_ms: api.batching.batchIntervalMs, queue_timeout_ms: queueTimeoutMs },
      );
    }
    const count = api.compute.initReplicas;
    const pool = new ApiPool({
      api: api.name,
      queuePerReplica: rt.queuePerReplica,
      maxReplicas: api.compute.maxReplicas,
      predictTimeoutMs: rt.predictTimeoutMs,
      ...(rt.queueTimeoutMs === undefined ? {} : { queueTimeoutMs: rt.queueTimeoutMs }),
      batching: api.batching,
      ...(rt.counters === undefined ? {} : { counters: rt.counters }),
      logger: rt.logger,
    });
    const replicas = Array.from({ length: count }, (_, index) => this.#replica(api, index));
    pool.setReplicas(replicas);
    const { minReplicas, maxReplicas } = api.compute;
    if (maxReplicas > minReplicas) {
      this.#autoscalers.push(
        new Autoscaler({
          pool,
          minReplicas,
          maxReplicas,
          settings: rt.scale ?? DEFAULT_SCALE,
          create: (index) => this.#replica(api, index),
          logger: rt.logger,
        }),
      );
    }
    return pool;
  }

  #replica(api: ResolvedApi, index: number): Replica {
    const rt = this.#runtime;
    const dir = this.stagedDir;
    const env = apiWorkerEnv(rt.serverEnv, api, { dir, index });
    return new Replica({
      api: api.name,
      index,
      spawn: rt.spawnWorker ?? ((onLog) =>
        WorkerProcess.spawn({
          python: rt.python,
          workerPath: rt.workerPath,
          cwd: dir,
          env,
          maxFrameBytes: rt.maxFrameBytes,
          onLog,
          maxLogLineChars: rt.maxLogLineChars,
          onModel: rt.onModelEvent === undefined ? undefined : (event) => rt.onModelEvent?.(api.name, event),
          timings: rt.workerTimings === true,
        })),
      init: apiInitMessage(this.project, api, dir, rt.modelDir),
      initTimeoutMs: rt.initTimeoutMs,
      killGraceMs: rt.killGraceMs,
      cancelGraceMs: rt.cancelGraceMs,
      backoff: rt.backoff,
      memBytes: rt.enforceMem ? api.compute.memBytes : undefined,
      memText: api.compute.mem,
      logger: rt.logger,
      ...(rt.counters === undefined ? {} : { counters: rt.counters }),
    });
  }
}

function hasReadyReplica(pool: ApiPool): boolean {
  return pool.replicas.length === 0 || pool.replicas.some((r) => isReady(r.state));
}
