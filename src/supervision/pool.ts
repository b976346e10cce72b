/**
 * The replicas of one API and the bounded queue in front of them. A replica
 * runs one request at a time; requests wait in FIFO order, and a full queue
 * answers 503 at once.
 *
 * Two separate limits (SPEC §6): a queued job waits at most
 * `queueTimeoutMs` for a replica — past it, it is answered 503 from the
 * queue and never dispatched, so waiting never costs a worker; once handed
 * to a replica, `predictTimeoutMs` bounds how long predict runs (504, the
 * request is cancelled in the worker). A client that leaves cancels its
 * running request the same way.
 *
 * The job is the unit the pool hands to a replica ({@link Replica.run}):
 * the pool owns the queue, the deadlines and the client's signal; the
 * replica owns the worker and its state machine.
 *
 * Pipelining: while predictions are short (under
 * {@link PIPELINE_MAX_SERVICE_MS} on average) and no replica is free, a
 * busy replica is sent the next request behind the one it runs, so its
 * worker goes on without waiting for the server to hear of each answer. It
 * waits there as it would in the queue: its queue timeout still applies,
 * and its predict timeout starts when the worker starts it. If the worker is
 * lost, only the request it was running fails; the one behind it goes back
 * to the head of the queue. Never for batches, nor for an API that has
 * answered with a stream (a stream holds its worker for as long as its
 * client reads).
 */
import type { Logger } from "../log/logger.ts";
import { ApiError } from "../errors/api_error.ts";
import { Emitter, waitUntil } from "./events.ts";
import { BoundedQueue } from "./queue.ts";
import { Batcher, RunningBatch } from "./batcher.ts";
import type { ResolvedBatching } from "../config/types.ts";
import type { Replica, ReplicaRun, ReplicaState, RunAnswer } from "./replica.ts";
import { decodeAnswer, encodeRequest, type RequestMeta } from "../python/envelope.ts";

/**
 * Average predict time (ms) under which a busy replica is sent the next
 * request behind the running one. Above it, pipelining gains nothing and
 * would hold a request back from a replica that frees sooner.
 */
export const PIPELINE_MAX_SERVICE_MS = 10;
/** Weight of the newest predict time in the pool's running average. */
const SERVICE_EWMA_WEIGHT = 0.2;

/** What {@link ApiPool.submit} needs besides the sample. */
export interface SubmitOptions {
  readonly debug: boolean;
  /** Aborts when the client went away; a queued request is then dropped. */
  readonly signal?: AbortSignal;
  /** Told the size of the batch the request runs in (server-side batching only). */
  readonly onBatch?: ((size: number) => void) | undefined;
  /**
   * The request's Content-Type, query and headers, for an API whose worker
   * parses the payload by Content-Type (`realtime_predictor`, Cortex 0.17+):
   * the sample is then the raw body, sent with them in one envelope
   * (../python/envelope.ts), and the answer carries its own content type,
   * status and headers. Absent for the other dialects (the sample is JSON).
   */
  readonly request?: RequestMeta | undefined;
}

/** A prediction (a body, or a stream of items) and how long it waited for a replica. */
export interface Prediction {
  readonly answer: RunAnswer;
  readonly queueMs: number;
  /** With {@link SubmitOptions.request}: the answer's Content-Type (a body answer only). */
  readonly contentType?: string;
  /** With {@link SubmitOptions.request}: the answer's HTTP status (a body answer only). */
  readonly status?: number;
  /** With {@link SubmitOptions.request}: headers the answer sets, e.g. a passed-through Response's. */
  readonly headers?: readonly (readonly [string, string])[];
}

/** Settings of a pool. */
export interface PoolOptions {
  readonly api: string;
  /** Requests allowed to wait per replica in the pool (`--queue`). */
  readonly queuePerReplica: number;
  /** Most replicas the pool will have (`compute.max_replicas`): sizes the ring. */
  readonly maxReplicas: number;
  /** How long predict may run once a replica took the job (`--predict-timeout`). */
  readonly predictTimeoutMs: number;
  /** How long a job may wait for a replica (`--queue-timeout`); default `predictTimeoutMs`. */
  readonly queueTimeoutMs?: number;
  /** Server-side batching (`server_side_batching:`); one request per call when absent. */
  readonly batching?: ResolvedBatching | undefined;
  /** Send a busy replica the next request behind the running one (see above); default true. */
  readonly pipelining?: boolean;
  readonly logger: Logger;
}

/** Replica counts by state, for status pages and metrics. */
export type ReplicaCounts = Record<ReplicaState, number>;

interface Job {
  cancelled: boolean;
  queued: boolean;
  readonly sample: Uint8Array;
  /** The sample is a request envelope, and a body answer an answer envelope. */
  readonly enveloped: boolean;
  readonly debug: boolean;
  readonly arrived: number;
  /** Set once the worker started it (a job sent behind a running one waits first). */
  started: boolean;
  /** `performance.now()` when the worker started it. */
  startedAt: number;
  /**
   * `performance.now()` value at which the job times out: the end of its
   * queue wait until it started, the end of its predict time once running.
   */
  deadlineAt: number;
  /** Set once the job was handed to a replica: stops it when its predict time is up. */
  timeOut: (() => void) | undefined;
  readonly resolve: (value: Prediction) => void;
  readonly reject: (error: Error) => void;
  readonly onBatch: ((size: number) => void) | undefined;
  /** The batch the request runs in, once it left the queue (server-side batching). */
  batch: RunningBatch<Job> | undefined;
  /** Stops watching the deadline and the client. */
  cleanup: () => void;
  /** Set once the job runs on a replica. */
  run: ReplicaRun | undefined;
}

/** One API's replicas and queue. */
export class ApiPool {
  readonly api: string;
  readonly #o: PoolOptions;
  readonly #queue: BoundedQueue<Job>;
  #replicas: readonly Replica[] = [];
  #inFlight = 0;
  /** Where the next dispatch starts looking, so work rotates over ready replicas. */
  #nextReplica = 0;
  #scaledUp = 0;
  #scaledDown = 0;
  #closed = false;
  #dispatching = false;
  readonly #debug: boolean;
  readonly #queueTimeoutMs: number;
  /** Unsubscribe functions of the replicas' state events. */
  readonly #watching = new Map<Replica, () => void>();
  /**
   * Emits this pool when a replica changed state, the replica set changed,
   * or a job left the queue or finished.
   */
  readonly changes: Emitter<ApiPool> = new Emitter();
  /** Requests queued or running, watched for their deadline by one ticking timer. */
  readonly #active = new Set<Job>();
  #fullError: { readonly waiting: number; readonly error: ApiError } | undefined;
  #ticker: ReturnType<typeof setInterval> | undefined;
  readonly #batcher: Batcher<Job> | undefined;
  readonly #batchListeners: ((size: number) => void)[] = [];
  /** Running average of predict time (ms), once one finished. */
  #serviceMs: number | undefined;
  /** Set once a prediction of this API streamed: no more pipelining. */
  #streamed = false;

  constructor(options: PoolOptions) {
    this.api = options.api;
    this.#o = options;
    this.#queueTimeoutMs = options.queueTimeoutMs ?? options.predictTimeoutMs;
    this.#debug = options.logger.enabled("debug");
    const replicas = Math.max(options.maxReplicas, 1);
    // A spare slot per replica: a job sent behind a running one may come back.
    this.#queue = new BoundedQueue(options.queuePerReplica * replicas, replicas);
    if (options.batching !== undefined) {
      this.#batcher = new Batcher({ settings: options.batching, onDue: () => this.dispatch() });
    }
  }

  /** Server-side batching settings, `undefined` when off. */
  get batching(): ResolvedBatching | undefined {
    return this.#batcher?.settings;
  }

  /** Calls `listener` with the size of every batch sent to a worker. */
  addBatchListener(listener: (size: number) => void): void {
    this.#batchListeners.push(listener);
  }

  /** Replicas currently behind this pool. */
  get replicas(): readonly Replica[] {
    return this.#replicas;
  }
  get queueLength(): number {
    return this.#queue.length;
  }
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Sets the replicas (at start and on reload) and dispatches waiting work. */
  setReplicas(replicas: readonly Replica[]): void {
    this.#replicas = replicas;
    this.#watch();
    this.dispatch();
    this.changes.emit(this);
  }

  /** True when nothing is queued or running. */
  get idle(): boolean {
    return this.#queue.length === 0 && this.#inFlight === 0;
  }

  /** Scale events of this pool so far (see ./autoscale.ts). */
  get scaleEvents(): { readonly up: number; readonly down: number } {
    return { up: this.#scaledUp, down: this.#scaledDown };
  }

  /** Adds a replica (scale up); the caller starts it. */
  addReplica(replica: Replica): void {
    this.#scaledUp++;
    this.setReplicas([...this.#replicas, replica]);
  }

  /**
   * Takes an idle (ready) replica out of dispatch, the one with the highest
   * index, and returns it for the caller to stop; undefined when none is idle.
   */
  retireIdle(): Replica | undefined {
    const idle = this.#replicas.filter((r) => r.state === "ready");
    const replica = idle.reduce<Replica | undefined>((a, r) => (a && a.index > r.index ? a : r), undefined);
    if (replica === undefined) return undefined;
    this.#scaledDown++;
    this.#replicas = this.#replicas.filter((r) => r !== replica);
    this.#watch();
    this.changes.emit(this);
    return replica;
  }

  /** Replica counts by state. */
  counts(): ReplicaCounts {
    const counts: ReplicaCounts = {
      starting: 0,
      ready: 0,
      busy: 0,
      restarting: 0,
      init_failed: 0,
      out_of_memory: 0,
      stopped: 0,
    };
    for (const replica of this.#replicas) counts[replica.state]++;
    return counts;
  }

  /**
   * Queues one prediction and resolves with the worker's JSON bytes.
   *
   * @throws {ApiError} NOT_READY, QUEUE_FULL, QUEUE_TIMEOUT, SHUTTING_DOWN,
   *   BAD_REQUEST (the worker could not parse the sample), PREDICT_FAILED,
   *   WORKER_DIED, OUT_OF_MEMORY or PREDICT_TIMEOUT
   */
  submit(sample: Uint8Array, options: SubmitOptions): Promise<Prediction> {
    const refused = this.refusal();
    if (refused !== undefined) return Promise.reject(refused);
    return new Promise<Prediction>((resolve, reject) => {
      const arrived = performance.now();
      const job: Job = {
        cancelled: false,
        queued: true,
        sample: options.request === undefined ? sample : encodeRequest(options.request, sample),
        enveloped: options.request !== undefined,
        debug: options.debug,
        arrived,
        started: false,
        startedAt: 0,
        deadlineAt: arrived + this.#queueTimeoutMs,
        timeOut: undefined,
        resolve,
        reject,
        onBatch: options.onBatch,
        batch: undefined,
        cleanup: () => {},
        run: undefined,
      };
      if (!this.#queue.push(job)) {
        reject(this.#queueFull());
        return;
      }
      this.#arm(job, options.signal);
      this.dispatch();
      if (job.queued && this.#debug) {
        this.#o.logger.debug("request queued", { api: this.api, queue: this.#queue.length });
      }
    });
  }

  /**
   * Why a request arriving now would be refused (shutting down, not ready,
   * queue full), or undefined when it would be queued. Cheap: the app asks
   * before reading the body, so shedding load costs little.
   */
  refusal(): ApiError | undefined {
    if (this.#closed) return new ApiError("SHUTTING_DOWN", "The server is shutting down", { retryAfter: 5 });
    if (!this.#accepting()) return this.#notReady();
    // The queue grows and shrinks with the replicas: --queue places each.
    const limit = this.#o.queuePerReplica * Math.max(this.#replicas.length, 1);
    if (this.#queue.length >= limit || this.#queue.length >= this.#queue.capacity) return this.#queueFull();
    return undefined;
  }

  /** One error object while the queue stays full: a refusal under overload allocates no error of its own. */
  #queueFull(): ApiError {
    const waiting = this.#queue.length;
    if (this.#fullError?.waiting !== waiting) {
      this.#fullError = {
        waiting,
        error: new ApiError(
          "QUEUE_FULL",
          `Api ${this.api} is at capacity: ${waiting} requests are already waiting`,
          { retryAfter: 1 },
        ),
      };
    }
    return this.#fullError.error;
  }

  /** Starts queued work on free replicas; called whenever a replica changes state. */
  dispatch(): void {
    // A replica announces `busy` from inside #start: that nested call is
    // folded into the running one.
    if (this.#dispatching) return;
    this.#dispatching = true;
    try {
      this.#dispatchOnce();
    } finally {
      this.#dispatching = false;
    }
  }

  #dispatchOnce(): void {
    if (!this.#accepting()) {
      for (const job of this.#queue.drain()) this.#settle(job, this.#notReady());
    }
    // A replica runs one request at a time, so the least busy replicas are
    // the ready ones: take them in turn.
    const replicas = this.#replicas;
    const first = this.#nextReplica;
    for (let i = 0; i < replicas.length && this.#queue.length > 0; i++) {
      const at = (first + i) % replicas.length;
      const replica = replicas[at]!;
      if (replica.state !== "ready") continue;
      if (this.#batcher !== undefined) {
        // Several waiting requests leave together, or none until the batch is due.
        const batch = this.#nextBatch(this.#batcher);
        if (batch === undefined) break;
        this.#startBatch(replica, batch);
      } else {
        const job = this.#nextJob();
        if (job === undefined) break;
        this.#start(replica, job);
      }
      this.#nextReplica = at + 1;
    }
    if (this.#queue.length > 0 && this.#pipelining()) {
      // No replica is free: send the next requests behind running ones.
      for (let i = 0; i < replicas.length && this.#queue.length > 0; i++) {
        const replica = replicas[(first + i) % replicas.length]!;
        if (!replica.canTakeNext) continue;
        const job = this.#nextJob();
        if (job === undefined) break;
        this.#start(replica, job);
      }
    }
    if (this.#queue.length === 0) this.#batcher?.clear();
  }

  /** True when busy replicas may be sent a request behind the running one. */
  #pipelining(): boolean {
    return this.#o.pipelining !== false && this.#batcher === undefined && !this.#streamed &&
      this.#serviceMs !== undefined && this.#serviceMs < PIPELINE_MAX_SERVICE_MS;
  }

  /**
   * Stops taking new requests and waits until queued and running ones are
   * done, or `timeoutMs` passes. Returns true when everything finished.
   */
  async drain(timeoutMs: number): Promise<boolean> {
    this.#closed = true;
    const finished = this.idle || await waitUntil(
      [this.changes],
      () => this.idle ? true : undefined,
      { timeoutMs },
    ).catch(() => false);
    if (!finished) {
      for (const job of this.#queue.drain()) {
        this.#settle(job, new ApiError("SHUTTING_DOWN", "The server shut down before this request ran"));
      }
    }
    this.#batcher?.close();
    return finished;
  }

  /** True when new work may queue: some replica is ready, busy or coming back from a crash. */
  #accepting(): boolean {
    return this.#replicas.some((r) => r.state === "ready" || r.state === "busy" || r.serving);
  }

  #notReady(): ApiError {
    const starting = this.#replicas.filter((r) => r.state === "starting");
    const failed = this.#replicas.find((r) => r.lastError !== undefined);
    const why = failed?.lastError !== undefined
      ? `${failed.state.replace("_", " ")}: ${failed.lastError}`
      : starting.length > 0
      ? "starting"
      : "no replica is running";
    const retryAfter = Math.min(...this.#replicas.map((r) => r.retryAfterSeconds), 30);
    return new ApiError("NOT_READY", `Api ${this.api} is not ready (${why})`, {
      retryAfter: Number.isFinite(retryAfter) ? retryAfter : 1,
    });
  }

  /**
   * Deadline and client-disconnect handling for a new job. Deadlines are
   * checked by one timer per pool ticking while requests are active (every
   * 100 ms, or a tenth of the timeout when that is shorter), not by a timer
   * per request.
   */
  #arm(job: Job, signal: AbortSignal | undefined): void {
    this.#active.add(job);
    this.#ticker ??= setInterval(() => this.#expire(), this.#tickMs());
    const onClientGone = () => {
      // Running: the worker is asked to stop it; a batch only once every
      // request in it has gone (./batcher.ts).
      if (!job.queued) return job.batch !== undefined ? void job.batch.leave(job) : job.run?.cancel();
      this.#queue.cancel(job);
      this.#settle(job, new ApiError("BAD_REQUEST", "The client closed the connection"));
      this.#o.logger.debug("client went away while queued", { api: this.api });
    };
    signal?.addEventListener("abort", onClientGone, { once: true });
    job.cleanup = () => {
      this.#active.delete(job);
      signal?.removeEventListener("abort", onClientGone);
      // The ticker stops itself at its next tick with nothing active: not
      // here, or every request of a lone client would start and stop one.
    };
  }

  #tickMs(): number {
    return Math.max(10, Math.min(100, this.#o.predictTimeoutMs / 10, this.#queueTimeoutMs / 10));
  }

  /**
   * Times out every active job past its deadline: a queued one is answered
   * 503 here (its worker-to-be never sees it), one waiting behind a running
   * request is taken back from the worker and answered 503, a running one
   * is stopped.
   */
  #expire(): void {
    const now = performance.now();
    for (const job of this.#active) {
      if (now < job.deadlineAt) continue;
      if (job.queued) {
        this.#queue.cancel(job);
        this.#settle(job, this.#queueTimeout());
      } else if (!job.started) {
        this.#active.delete(job);
        job.run?.withdraw(this.#queueTimeout());
      } else {
        this.#active.delete(job);
        job.timeOut?.(); // the replica answers 504 and cancels the request
      }
    }
    if (this.#active.size === 0) this.#stopTicker();
  }

  /** The oldest queued job whose wait is not over; overdue ones are answered on the way. */
  #nextJob(): Job | undefined {
    const now = performance.now();
    for (let job = this.#queue.shift(); job !== undefined; job = this.#queue.shift()) {
      if (now < job.deadlineAt) return job;
      this.#settle(job, this.#queueTimeout());
    }
    return undefined;
  }

  #queueTimeout(): ApiError {
    const seconds = this.#queueTimeoutMs / 1000;
    return new ApiError(
      "QUEUE_TIMEOUT",
      `Api ${this.api} is overloaded: the request waited ${seconds} s (--queue-timeout) without a free replica`,
      { retryAfter: 1 },
    );
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
      this.#watching.set(
        replica,
        replica.changes.on(() => {
          this.dispatch();
          this.changes.emit(this);
        }),
      );
    }
  }

  #stopTicker(): void {
    clearInterval(this.#ticker);
    this.#ticker = undefined;
  }

  /**
   * Hands `job` to `replica`: it starts at once on a ready replica, or when
   * the running request is done on a busy one (pipelining).
   */
  #start(replica: Replica, job: Job): void {
    job.queued = false;
    this.#inFlight++;
    const run = replica.run(job.sample, job.debug, () => {
      const now = performance.now();
      job.started = true;
      job.startedAt = now;
      job.deadlineAt = now + this.#o.predictTimeoutMs;
    });
    job.run = run;
    job.timeOut = run.timeOut;
    run.answer.then(
      (answer) => {
        if (answer.type === "stream") this.#streamed = true;
        const queueMs = job.startedAt - job.arrived;
        if (job.enveloped && answer.type === "body") _resolveEnveloped(job, answer.body, queueMs);
        else job.resolve({ answer, queueMs });
      },
      (error: Error) => job.reject(error),
    );
    // The client is watched until the replica is done: for a stream, until its last item.
    void run.finished.then((end) => {
      this.#inFlight--;
      if (end === "returned") {
        this.#requeue(job);
      } else {
        job.cleanup();
        if (job.started) this.#observeService(performance.now() - job.startedAt);
      }
      this.dispatch();
      this.changes.emit(this);
    });
  }

  /** A job whose worker was lost before it started goes back to the head of the queue. */
  #requeue(job: Job): void {
    job.queued = true;
    job.run = undefined;
    job.timeOut = undefined;
    if (!this.#queue.unshift(job)) this.#settle(job, this.#queueFull());
    else if (this.#debug) this.#o.logger.debug("request back in the queue", { api: this.api });
  }

  #observeService(ms: number): void {
    const average = this.#serviceMs;
    this.#serviceMs = average === undefined ? ms : average + SERVICE_EWMA_WEIGHT * (ms - average);
  }

  /**
   * The next batch for a free replica (see ./batcher.ts); requests whose
   * queue wait is over are answered on the way and left out.
   */
  #nextBatch(batcher: Batcher<Job>): Job[] | undefined {
    for (;;) {
      const taken = batcher.take(this.#queue);
      if (taken === undefined) return undefined;
      const now = performance.now();
      const batch = taken.filter((job) => {
        if (now < job.deadlineAt) return true;
        this.#settle(job, this.#queueTimeout());
        return false;
      });
      if (batch.length > 0) return batch;
    }
  }

  /**
   * Runs a batch on one replica: one `predict` call whose time limit is
   * `predictTimeoutMs` from now; each request gets its own answer.
   */
  #startBatch(replica: Replica, jobs: Job[]): void {
    const batch = new RunningBatch(jobs);
    const size = jobs.length;
    const now = performance.now();
    let debug = false;
    for (const job of jobs) {
      job.queued = false;
      job.batch = batch;
      job.started = true;
      job.startedAt = now;
      job.deadlineAt = now + this.#o.predictTimeoutMs; // the pool's ticker aborts them together
      debug ||= job.debug;
      job.onBatch?.(size);
    }
    for (const listener of this.#batchListeners) listener(size);
    this.#inFlight += size;
    const run = replica.runBatch(jobs.map((job) => job.sample), debug);
    for (const job of jobs) job.timeOut = run.timeOut; // the first to time out stops the batch
    batch.signal.addEventListener("abort", () => run.cancel(), { once: true });
    run.answers.then(
      (answers) =>
        jobs.forEach((job, i) => {
          const answer = answers[i]!;
          if (answer instanceof ApiError) job.reject(answer);
          else if (job.enveloped) _resolveEnveloped(job, answer, now - job.arrived);
          else job.resolve({ answer: { type: "body", body: answer }, queueMs: now - job.arrived });
        }),
      (error: Error) => jobs.forEach((job) => job.reject(error)),
    );
    // The clients are watched until the replica is done with the batch.
    void run.finished.then(() => {
      for (const job of jobs) job.cleanup();
      this.#inFlight -= size;
      this.dispatch();
      this.changes.emit(this);
    });
  }

  /** Answers a job with `error`; one that left the queue wakes whoever waits for the pool. */
  #settle(job: Job, error: Error): void {
    const wasQueued = job.queued;
    job.queued = false;
    job.cleanup();
    job.reject(error);
    if (wasQueued) this.changes.emit(this);
  }
}

/** Resolves a job of the `realtime_predictor` interface with its answer envelope read. */
function _resolveEnveloped(job: Job, bytes: Uint8Array, queueMs: number): void {
  let answer;
  try {
    answer = decodeAnswer(bytes);
  } catch (error) {
    job.reject(new ApiError("PREDICT_FAILED", `The worker's answer could not be read: ${String(error)}`));
    return;
  }
  job.resolve({
    answer: { type: "body", body: answer.body },
    queueMs,
    contentType: answer.contentType,
    status: answer.status,
    headers: answer.headers,
  });
}
