/**
 * The replicas of one API and the bounded queue in front of them. A replica
 * runs one request at a time; requests wait in FIFO order, and a full queue
 * answers 503 at once.
 *
 * Two separate limits: a queued job waits at most `queueTimeoutMs` for a
 * replica - past it, it is answered 503 from the queue and never
 * dispatched, so waiting never costs a worker; once handed to a replica,
 * `predictTimeoutMs` bounds how long predict runs (504, the request is
 * cancelled in the worker). A client that leaves is answered 499: a queued
 * request is dropped, a running one is cancelled in the worker.
 *
 * The job (./job.ts, one lifecycle state) is the unit the pool hands to a
 * replica ({@link Replica.run}): the pool owns the queue, the deadlines
 * (./deadlines.ts) and the client's signal; the replica owns the worker and
 * its state machine.
 *
 * Pipelining (./pipelining.ts decides when): when no replica is free, a
 * busy replica may be sent the next request behind the one it runs. It
 * waits there as it would in the queue: its queue timeout still applies,
 * and its predict timeout starts when the worker starts it. If the worker
 * is lost, only the request it was running fails; the one behind it goes
 * back to the head of the queue. Batches (./batch_run.ts) never pipeline.
 *
 * Admission, dispatch, deadlines and drain share the queue and the
 * in-flight count, so they stay in this class; what a pool takes and gives
 * (its options, a submit's, a prediction) is ./pool_types.ts, and the
 * decisions that separate (the job's lifecycle, deadlines, pipelining,
 * batches, queue errors, the replica set) are in their own files.
 */
import type { ApiError } from "../errors/api_error.ts";
import type { ResolvedBatching } from "../config/types.ts";
import { runBatch, takeBatch } from "./batch_run.ts";
import { Batcher } from "./batcher.ts";
import { NO_COUNTERS } from "./counters.ts";
import { DeadlineTicker, tickMs } from "./deadlines.ts";
import { Emitter, waitUntil } from "./events.ts";
import { Job, type JobOwner } from "./job.ts";
import { PipeliningPolicy } from "./pipelining.ts";
import {
  clientGoneError,
  cutOffError,
  notReadyError,
  QueueFullErrors,
  queueTimeoutError,
  shuttingDownError,
} from "./pool_errors.ts";
import { BoundedQueue } from "./queue.ts";
import type { Replica, RunAnswer } from "./replica.ts";
import type { RunEnd } from "./worker_calls.ts";
import { ReplicaSet } from "./replica_set.ts";

export { PIPELINE_MAX_SERVICE_MS } from "./pipelining.ts";

import type { PoolOptions, Prediction, ReplicaCounts, SubmitOptions } from "./pool_types.ts";

export type { PoolOptions, Prediction, ReplicaCounts, SubmitOptions };

/** One API's replicas and queue. */
export class ApiPool {
  readonly api: string;
  readonly #o: PoolOptions;
  readonly #queue: BoundedQueue<Job>;
  readonly #replicas: ReplicaSet;
  #inFlight = 0;
  /** Where the next dispatch starts looking, so work rotates over ready replicas. */
  #nextReplica = 0;
  #closed = false;
  #dispatching = false;
  readonly #debug: boolean;
  readonly #queueTimeoutMs: number;
  /**
   * Emits this pool when a replica changed state, the replica set changed,
   * or a job left the queue or finished.
   */
  readonly changes: Emitter<ApiPool> = new Emitter();
  /** Jobs queued or running, until the replica is done with them. */
  readonly #deadlines: DeadlineTicker<Job>;
  readonly #queueFull: QueueFullErrors;
  readonly #batcher: Batcher<Job> | undefined;
  readonly #batchListeners: ((size: number) => void)[] = [];
  readonly #pipelining: PipeliningPolicy;
  /** How long a job waits before its client is listened to: a tick of the deadlines. */
  readonly #clientAfterMs: number;
  /** What every job reports to: one object, not closures per job. */
  readonly #owner: JobOwner;

  constructor(options: PoolOptions) {
    this.api = options.api;
    this.#o = options;
    this.#queueTimeoutMs = options.queueTimeoutMs ?? options.predictTimeoutMs;
    this.#debug = options.logger.enabled("debug");
    this.#replicas = new ReplicaSet(options.api, options.counters ?? NO_COUNTERS, () => {
      this.dispatch();
      this.changes.emit(this);
    });
    const replicas = Math.max(options.maxReplicas, 1);
    // A spare slot per replica: a job sent behind a running one may come back.
    this.#queue = new BoundedQueue(options.queuePerReplica * replicas, replicas);
    this.#queueFull = new QueueFullErrors(options.api);
    this.#clientAfterMs = tickMs(options.predictTimeoutMs, this.#queueTimeoutMs);
    this.#deadlines = new DeadlineTicker(
      this.#clientAfterMs,
      (job) => this.#expire(job),
      (job, now) => this.#watchClient(job, now),
    );
    const deadlines = this.#deadlines;
    this.#owner = {
      predictTimeoutMs: options.predictTimeoutMs,
      unwatch: (job) => deadlines.release(job),
      answered: (job, answer) => this.#answered(job, answer),
      finished: (job, end) => this.#finished(job, end),
    };
    if (options.batching !== undefined) {
      this.#batcher = new Batcher({ settings: options.batching, onDue: () => this.dispatch() });
    }
    this.#pipelining = new PipeliningPolicy(options.pipelining !== false && this.#batcher === undefined);
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
    return this.#replicas.all;
  }
  get queueLength(): number {
    return this.#queue.length;
  }
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Sets the replicas (at start and on reload) and dispatches waiting work. */
  setReplicas(replicas: readonly Replica[]): void {
    this.#replicas.set(replicas);
    this.dispatch();
    this.changes.emit(this);
  }

  /** True when nothing is queued or running. */
  get idle(): boolean {
    return this.#queue.length === 0 && this.#inFlight === 0;
  }

  /** Scale events of this pool so far (see ./autoscale.ts). */
  get scaleEvents(): { readonly up: number; readonly down: number } {
    return this.#replicas.scaleEvents;
  }

  /** Adds a replica (scale up); the caller starts it. */
  addReplica(replica: Replica): void {
    this.#replicas.add(replica);
    this.dispatch();
    this.changes.emit(this);
  }

  /**
   * Takes an idle (ready) replica out of dispatch, the one with the highest
   * index, and returns it for the caller to stop; undefined when none is idle.
   */
  retireIdle(): Replica | undefined {
    const replica = this.#replicas.retireIdle();
    if (replica !== undefined) this.changes.emit(this);
    return replica;
  }

  /** Replica counts by state. */
  counts(): ReplicaCounts {
    return this.#replicas.counts();
  }

  /**
   * Queues one prediction and resolves with the worker's JSON bytes.
   *
   * @throws {ApiError} NOT_READY, QUEUE_FULL, QUEUE_TIMEOUT, SHUTTING_DOWN,
   *   CLIENT_CLOSED, BAD_REQUEST (the worker could not parse the sample),
   *   PREDICT_FAILED, WORKER_DIED, OUT_OF_MEMORY or PREDICT_TIMEOUT
   */
  submit(sample: Uint8Array, options: SubmitOptions): Promise<Prediction> {
    const refused = this.refusal();
    if (refused !== undefined) return Promise.reject(refused);
    return new Promise<Prediction>((resolve, reject) => {
      const job = new Job(sample, options, this.#queueTimeoutMs, resolve, reject);
      if (!this.#queue.push(job)) {
        reject(this.#queueFull.of(this.#queue.length));
        return;
      }
      this.#arm(job, options);
      this.dispatch();
      if (job.state === "queued" && this.#debug) {
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
    if (this.#closed) return shuttingDownError();
    if (!this.#replicas.accepting) return notReadyError(this.api, this.#replicas.all);
    // The queue grows and shrinks with the replicas: --queue places each.
    const limit = this.#o.queuePerReplica * Math.max(this.#replicas.all.length, 1);
    if (this.#queue.length >= limit || this.#queue.length >= this.#queue.capacity) {
      return this.#queueFull.of(this.#queue.length);
    }
    return undefined;
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
    if (!this.#replicas.accepting) {
      const error = notReadyError(this.api, this.#replicas.all);
      for (const job of this.#queue.drain()) this.#answer(job, error);
    }
    // A replica runs one request at a time, so the least busy replicas are
    // the ready ones: take them in turn.
    const replicas = this.#replicas.all;
    const first = this.#nextReplica;
    for (let i = 0; i < replicas.length && this.#queue.length > 0; i++) {
      const at = (first + i) % replicas.length;
      const replica = replicas[at]!;
      if (replica.state !== "ready") continue;
      if (this.#batcher !== undefined) {
        // Several waiting requests leave together, or none until the batch is due.
        const jobs = takeBatch(this.#batcher, this.#queue, (job) => this.#answer(job, this.#queueTimeout()));
        if (jobs === undefined) break;
        this.#startBatch(replica, jobs);
      } else {
        const job = this.#nextJob();
        if (job === undefined) break;
        this.#start(replica, job);
      }
      this.#nextReplica = at + 1;
    }
    if (this.#queue.length > 0 && this.#pipelining.allowed) {
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
      const error = cutOffError();
      for (const job of this.#queue.drain()) this.#answer(job, error);
    }
    this.#batcher?.close();
    return finished;
  }

  /**
   * Watches a new job's deadline until the replica is done with it, and its
   * client: from now with `signal`, from the deadlines' next tick with
   * `client` (see {@link SubmitOptions.client}).
   */
  #arm(job: Job, options: SubmitOptions): void {
    this.#deadlines.watch(job);
    job.owner = this.#owner;
    if (options.signal !== undefined) this.#listen(job, options.signal);
    else job.client = options.client;
  }

  /**
   * A tick of the deadlines found `job` still waiting or running: once it has
   * waited a whole tick, its client is listened to from now on. Not sooner:
   * under load every tick finds requests that arrived a moment before, and
   * a listened request's objects stay alive until the next full collection.
   */
  #watchClient(job: Job, now: number): void {
    const client = job.client;
    if (client === undefined || now - job.arrived < this.#clientAfterMs) return;
    job.client = undefined;
    const signal = client.signal;
    if (signal.aborted) this.#clientGone(job);
    else this.#listen(job, signal);
  }

  #listen(job: Job, signal: AbortSignal): void {
    const onClientGone = () => this.#clientGone(job);
    signal.addEventListener("abort", onClientGone, { once: true });
    job.unlisten = () => signal.removeEventListener("abort", onClientGone);
  }

  /**
   * The client went away: a queued job is dropped and answered 499; a
   * running one is cancelled in the worker (499); a batch only once every
   * request in it has gone (./batcher.ts).
   */
  #clientGone(job: Job): void {
    if (!job.clientGone()) return;
    this.#queue.cancel(job);
    this.#answer(job, clientGoneError());
    this.#o.logger.debug("client went away while queued", { api: this.api });
  }

  /**
   * A job past its deadline: a queued one is answered 503 here (its
   * worker-to-be never sees it), one waiting behind a running request is
   * taken back from the worker and answered 503, a running one is stopped
   * (the replica answers 504 and cancels it in the worker).
   */
  #expire(job: Job): void {
    if (!job.expired(() => this.#queueTimeout())) return;
    this.#queue.cancel(job);
    this.#answer(job, this.#queueTimeout());
  }

  /** The oldest queued job whose wait is not over; overdue ones are answered on the way. */
  #nextJob(): Job | undefined {
    const now = performance.now();
    for (let job = this.#queue.shift(); job !== undefined; job = this.#queue.shift()) {
      if (now < job.deadlineAt) return job;
      this.#answer(job, this.#queueTimeout());
    }
    return undefined;
  }

  #queueTimeout(): ApiError {
    return queueTimeoutError(this.api, this.#queueTimeoutMs);
  }

  /**
   * Hands `job` to `replica`: it starts at once on a ready replica, or when
   * the running request is done on a busy one (pipelining).
   */
  #start(replica: Replica, job: Job): void {
    this.#inFlight++;
    job.send(replica.runFor(job, job.sample, job.debug, job.trace?.()));
  }

  /** A job's run answered: its caller gets the answer. */
  #answered(job: Job, answer: RunAnswer): void {
    if (answer.type === "stream") {
      this.#pipelining.streamed();
      // Watched until its last item, from now: a stream is long, and its client can leave.
      this.#watchClient(job, Infinity);
    }
    const queueMs = job.startedAt - job.arrived;
    if (job.enveloped && answer.type === "body") job.resolveEnveloped(answer.body, queueMs);
    else job.resolve({ answer, queueMs });
  }

  /** The replica is done with a job (for a stream, after its last item): its client is watched no more. */
  #finished(job: Job, end: RunEnd): void {
    this.#inFlight--;
    if (end === "returned") {
      this.#requeue(job);
    } else {
      const ran = job.started;
      job.finish();
      if (ran) this.#pipelining.observe(performance.now() - job.startedAt);
    }
    this.dispatch();
    this.changes.emit(this);
  }

  /** A job whose worker was lost before it started goes back to the head of the queue. */
  #requeue(job: Job): void {
    job.returned();
    if (!this.#queue.unshift(job)) this.#answer(job, this.#queueFull.of(this.#queue.length));
    else if (this.#debug) this.#o.logger.debug("request back in the queue", { api: this.api });
  }

  /** Runs a batch on one replica (see ./batch_run.ts). */
  #startBatch(replica: Replica, jobs: Job[]): void {
    const size = jobs.length;
    for (const listener of this.#batchListeners) listener(size);
    this.#inFlight += size;
    void runBatch(replica, jobs, this.#o.predictTimeoutMs).then(() => {
      this.#inFlight -= size;
      this.dispatch();
      this.changes.emit(this);
    });
  }

  /** Answers a job that left the queue without running; wakes whoever waits for the pool. */
  #answer(job: Job, error: ApiError): void {
    job.answer(error);
    this.changes.emit(this);
  }
}
