/**
 * One replica of an API: a supervised worker. Starts it, restarts it with
 * backoff (./backoff.ts) when it exits, fails init or goes over its memory
 * cap (./memory_watch.ts), and runs the requests the pool hands it. Every
 * state change goes through the transition table of ./replica_states.ts,
 * which also says what the replica does on the way; each is logged at debug
 * and announced on {@link Replica.changes}.
 *
 * What a worker was sent and how cancels, the cancel grace and pipelining
 * play out per request is ./worker_calls.ts; what a failed request is
 * answered is ./request_errors.ts. The replica owns its worker and its
 * state; the pool (./pool.ts) owns the queue and hands one job at a time to
 * a `ready` replica through {@link Replica.run}.
 *
 * About 400 lines, on purpose: the supervision loop and the state it drives
 * are one class, whose private fields both read; the parts that separate
 * (calls, errors, init, memory, backoff, the table) are apart already.
 */
import type { InitMessage } from "../python/protocol.ts";
import { describeExit, type WorkerExit } from "../python/worker_process.ts";
import type { Logger } from "../log/logger.ts";
import { type BackoffOptions, RestartBackoff } from "./backoff.ts";
import { NO_COUNTERS, type SupervisionCounters } from "./counters.ts";
import { Emitter } from "./events.ts";
import { watchMemory } from "./memory_watch.ts";
import {
  isReady,
  nextState,
  type ReplicaEffect,
  type ReplicaEvent,
  type ReplicaState,
} from "./replica_states.ts";
import type { ReplicaWorker, SpawnWorker } from "./replica_worker.ts";
import type { CancelReason, FailureContext } from "./request_errors.ts";
import {
  PromisedRun,
  type ReplicaBatchRun,
  type ReplicaRun,
  type RunControl,
  type RunListener,
  SingleRun,
  startBatchRun,
} from "./replica_run.ts";
import { type CallHooks, WorkerCalls } from "./worker_calls.ts";
import { initErrorText, initWithTimeout } from "./worker_init.ts";

export type { ReplicaState } from "./replica_states.ts";
export type { CancelReason } from "./request_errors.ts";
export type { RunEnd } from "./worker_calls.ts";
export type { ReplicaBatchRun, ReplicaRun, RunAnswer, RunControl, RunListener } from "./replica_run.ts";

/** What a replica needs; the pool builds one per replica. */
export interface ReplicaOptions {
  readonly api: string;
  readonly index: number;
  /** Starts a worker; `onLog` receives its output lines. */
  readonly spawn: SpawnWorker;
  readonly init: Omit<InitMessage, "type">;
  readonly initTimeoutMs: number | undefined;
  /** Between SIGTERM and SIGKILL when a worker is stopped or timed out. */
  readonly killGraceMs: number;
  /** After a cancel, how long predict may take to stop before the worker is restarted. */
  readonly cancelGraceMs: number;
  readonly backoff: BackoffOptions;
  /** Memory cap (RSS) in bytes, from `compute.mem`. */
  readonly memBytes: number | undefined;
  readonly memText: string | undefined;
  readonly logger: Logger;
  /** Reads a process's RSS in bytes; default /proc (see ./memory_watch.ts). */
  readonly readRss?: (pid: number) => Promise<number | undefined>;
  /** Where restarts and cancels are counted; default none. */
  readonly counters?: SupervisionCounters;
}

/** A supervised worker. */
export class Replica {
  readonly index: number;
  /** Emits this replica after every state change. */
  readonly changes: Emitter<Replica> = new Emitter();
  readonly #o: ReplicaOptions;
  readonly #log: Logger;
  readonly #counters: SupervisionCounters;
  readonly #backoff: RestartBackoff;
  #state: ReplicaState = "starting";
  #worker: ReplicaWorker | undefined;
  /** What the current worker was sent and has not finished. */
  #calls: WorkerCalls;
  readonly #hooks: CallHooks;
  #lastError: string | undefined;
  #restarts = 0;
  #retryAt = 0;
  /** True from the first `ready` until init fails: queued work may wait for it. */
  #serving = false;
  #stopping = false;
  #wake: (() => void) | undefined;
  /** Why the current worker was killed for its memory, if it was. */
  #oom: string | undefined;
  #loop: Promise<void> | undefined;
  #initMs: number | undefined;
  readonly #cancels: Record<CancelReason, number> = { client: 0, timeout: 0 };

  constructor(options: ReplicaOptions) {
    this.index = options.index;
    this.#o = options;
    this.#log = options.logger.child({ api: options.api, replica: options.index });
    this.#counters = options.counters ?? NO_COUNTERS;
    this.#backoff = new RestartBackoff(options.backoff);
    this.#hooks = {
      cancelled: (reason, started) => this.#cancelled(reason, started),
      stuck: () => {
        this.#log.warn("predict did not stop within --cancel-grace: restarting the worker", {
          pid: this.#worker?.pid,
          grace_ms: this.#o.cancelGraceMs,
        });
        this.#fire("stuck");
      },
      answered: () => this.#backoff.answered(),
      ended: (next) => this.#ended(next),
      dropped: () => this.changes.emit(this),
    };
    this.#calls = new WorkerCalls(options.cancelGraceMs, this.#hooks);
  }

  get state(): ReplicaState {
    return this.#state;
  }
  /** The last error line (init failure, crash cause), for status pages. */
  get lastError(): string | undefined {
    return this.#lastError;
  }
  get restarts(): number {
    return this.#restarts;
  }
  get pid(): number | undefined {
    return this.#worker?.pid;
  }
  /** Milliseconds the last successful init took. */
  get initMs(): number | undefined {
    return this.#initMs;
  }
  /** True when queued requests should wait for this replica. */
  get serving(): boolean {
    return !this.#stopping && this.#serving;
  }
  /** Seconds until the next start attempt (for `Retry-After`), at least 1. */
  get retryAfterSeconds(): number {
    return Math.max(1, Math.ceil((this.#retryAt - Date.now()) / 1000));
  }
  /** Requests cancelled so far on this replica, by reason. */
  get cancels(): Readonly<Record<CancelReason, number>> {
    return this.#cancels;
  }

  /** Starts the supervision loop. */
  start(): void {
    this.#loop ??= this.#supervise();
  }

  /**
   * True when a request may be sent behind the running one (pipelining): the
   * replica is busy with one single request that was not cancelled. The
   * worker runs it as soon as it is done with the running one, without
   * waiting for the server to hear of that answer.
   */
  get canTakeNext(): boolean {
    return this.#state === "busy" && this.#calls.canTakeNext && this.#worker?.alive === true;
  }

  /**
   * Runs one job: sends `sample` to the worker. Only call when `state` is
   * `ready`, or when {@link canTakeNext}: then the request waits in the
   * worker behind the running one and starts when that one is done. The
   * replica is `busy` until the worker is done with every request it was
   * sent (for a stream, its last item): see {@link ReplicaRun.finished}.
   * `onStart` is called when the worker starts the request: at once, or
   * when the one before it finished.
   *
   * A request whose client went away ({@link ReplicaRun.cancel}) or whose
   * time is up ({@link ReplicaRun.timeOut}; `--predict-timeout`, counted
   * from its start) is answered at once (499 or 504) and cancelled in the
   * worker (see ./worker_calls.ts).
   *
   * When the worker is lost, the request it was running fails (502); one
   * sent behind it that had not started is `returned`, never run.
   *
   * The answer rejects with an ApiError (see ./request_errors.ts), or the
   * error given to `withdraw`. `trace` is sent with the request: the W3C
   * trace context user code runs in (only while tracing).
   */
  run(sample: Uint8Array, debug: boolean, onStart?: () => void, trace?: Uint8Array): ReplicaRun {
    const run = new PromisedRun(onStart);
    return run.follow(this.runFor(run, sample, debug, trace));
  }

  /**
   * {@link run} with its outcome going to `listener` (the pool's way: no
   * promise per request; see RunListener).
   */
  runFor(listener: RunListener, sample: Uint8Array, debug: boolean, trace?: Uint8Array): RunControl {
    const worker = this.#dispatch();
    const run = new SingleRun(listener, this.#calls, this.#failure);
    run.send((sink) => worker.runTo(sink, sample, debug, trace));
    return run;
  }

  /**
   * Runs one batch (server-side batching): the user's `predict` receives
   * every sample in one list. `answers` resolves with one answer per sample,
   * in order: the prediction's JSON bytes, or that request's ApiError (the
   * worker answers a raise or a wrong return of `predict` for every id, one
   * unserialisable prediction for its id only). It rejects with one ApiError
   * for the whole batch when the worker died (502) or its time is up
   * (`timeOut`, 504; the batch is cancelled in the worker). `cancel` cancels the batch:
   * call it only once every request of it has gone. Only call when `state`
   * is `ready`. `traces`: one W3C trace context per sample, only while tracing.
   */
  runBatch(samples: readonly Uint8Array[], debug: boolean, traces?: readonly Uint8Array[]): ReplicaBatchRun {
    if (this.#state !== "ready") throw new Error(`Replica ${this.index} is ${this.#state}, not ready`);
    const worker = this.#dispatch();
    return startBatchRun(worker.runBatch(samples, debug, traces), this.#calls, this.#failure);
  }

  /** Stops the worker (shutdown message, then SIGKILL after the grace period). */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#wake?.();
    const worker = this.#worker;
    if (worker) await worker.shutdown(this.#o.killGraceMs);
    await this.#loop;
    if (this.#state !== "stopped") this.#fire("stop");
  }

  /** Checks that the replica may take a request and marks it busy; returns its worker. */
  #dispatch(): ReplicaWorker {
    const worker = this.#worker;
    if (worker !== undefined && this.#state === "ready") {
      this.#fire("dispatch");
      return worker;
    }
    if (worker !== undefined && this.canTakeNext) {
      this.#fire("pipeline");
      return worker;
    }
    throw new Error(`Replica ${this.index} is ${this.#state}, not ready`);
  }

  #cancelled(reason: CancelReason, started: boolean): void {
    this.#cancels[reason]++;
    this.#counters.cancelled(this.#o.api, reason);
    this.#log.info("request cancelled", {
      reason: reason === "client" ? "client closed the connection" : "--predict-timeout passed",
      pid: this.#worker?.pid,
      ...(started ? {} : { started: false }),
    });
    this.#fire("cancel");
  }

  /** The running call ended: ready again, on to the next one, or the worker is gone. */
  #ended(next: boolean): void {
    if (this.#state !== "busy") return;
    if (this.#worker?.alive) this.#fire(next ? "next" : "done");
    // Dead, or alive but unusable (protocol broken, channel closed): the
    // transition makes sure it is gone; its replacement takes the queued work.
    else this.#fire(this.#oom !== undefined ? "oom" : "lost");
  }

  /** What a failed request's answer depends on (see ./request_errors.ts). */
  readonly #failure = (): FailureContext => ({ api: this.#o.api, oom: this.#oom, stopping: this.#stopping });

  /** SIGTERM, then SIGKILL after the grace period. */
  #terminate(worker: ReplicaWorker): void {
    worker.kill("SIGTERM");
    const timer = setTimeout(() => worker.kill("SIGKILL"), this.#o.killGraceMs);
    void worker.exited.then(() => clearTimeout(timer));
  }

  async #supervise(): Promise<void> {
    while (!this.#stopping) {
      const exit = await this.#runOnce();
      if (this.#stopping) break;
      const delay = this.#backoff.next();
      this.#retryAt = Date.now() + delay;
      if (exit !== undefined) {
        this.#restarts++;
        this.#counters.restarted(this.#o.api);
        this.#log.warn("worker stopped; restarting", { reason: this.#lastError, restart_in_ms: delay });
      } else {
        this.#log.warn("init failed; retrying", { error: this.#lastError, retry_in_ms: delay });
      }
      await this.#sleep(delay);
    }
  }

  /** One worker's life. Returns its exit after it was ready, or undefined if init failed. */
  async #runOnce(): Promise<WorkerExit | undefined> {
    this.#oom = undefined;
    this.#backoff.starting();
    // The last worker's calls all ended with it.
    this.#calls.retire();
    this.#calls = new WorkerCalls(this.#o.cancelGraceMs, this.#hooks);
    if (this.#state !== "starting") this.#fire("spawn");
    const started = performance.now();
    let worker: ReplicaWorker;
    try {
      worker = this.#o.spawn((line) => this.#log.info(line, { stream: "python" }));
    } catch (error) {
      this.#initFailed(`Cannot start Python: ${error instanceof Error ? error.message : error}`);
      return undefined;
    }
    this.#worker = worker;
    const stopWatch = this.#watchMemory(worker);
    try {
      const ready = await initWithTimeout(worker, this.#o.init, this.#o.initTimeoutMs);
      if (this.#stopping) {
        stopWatch();
        await worker.exited;
        return undefined;
      }
      this.#initMs = performance.now() - started;
      this.#log.info("worker ready", {
        pid: ready.pid,
        python: ready.python,
        init_ms: Math.round(this.#initMs),
      });
      this.#fire("ready");
    } catch (error) {
      this.#terminate(worker);
      const exit = await worker.exited;
      stopWatch();
      // Stopped by the server while starting: not a failure of the user's code.
      if (this.#stopping) return undefined;
      this.#initFailed(initErrorText(error, exit, this.#oom));
      return undefined;
    }
    const exit = await worker.exited;
    stopWatch();
    if (this.#stopping) return exit;
    this.#lastError = this.#oom !== undefined ? `Worker ${this.#oom}` : `Worker ${describeExit(exit)}`;
    if (this.#oom !== undefined && this.#state !== "out_of_memory") this.#fire("oom");
    else if (isReady(this.#state)) this.#fire("lost");
    return exit;
  }

  #initFailed(message: string): void {
    this.#lastError = message;
    this.#log.error("init failed", { error: message });
    this.#fire(this.#oom !== undefined ? "oom" : "init_failed");
  }

  /** Kills the worker when over `compute.mem`; returns the function that stops watching. */
  #watchMemory(worker: ReplicaWorker): () => void {
    const bytes = this.#o.memBytes;
    if (bytes === undefined) return () => {};
    return watchMemory(worker, {
      bytes,
      text: this.#o.memText,
      readRss: this.#o.readRss,
      onOver: (reason, rss) => {
        this.#oom = reason;
        this.#log.error("worker over its memory cap: killing it", { rss_bytes: rss, cap_bytes: bytes });
      },
    });
  }

  #sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = done;
    }).finally(() => {
      this.#wake = undefined;
    });
  }

  /**
   * Applies `event` through the transition table: the new state, then the
   * transition's effect, then the announcement. While the replica is being
   * stopped only `stop` moves it: the other events of a worker being shut
   * down are expected and ignored.
   */
  #fire(event: ReplicaEvent): void {
    if (this.#stopping && event !== "stop") {
      this.#log.debug("replica event ignored while stopping", { state: this.#state, event });
      return;
    }
    const from = this.#state;
    let transition;
    try {
      transition = nextState(from, event);
    } catch (error) {
      this.#log.error("illegal replica transition", { state: from, event });
      throw error;
    }
    this.#state = transition.to;
    this.#apply(transition.effect);
    // Two transitions per request: build the record only when it is written.
    if (this.#log.enabled("debug")) {
      this.#log.debug("replica state", { from, event, to: transition.to, action: transition.action });
    }
    this.changes.emit(this);
  }

  /** Carries out what a transition does besides changing the state (see {@link ReplicaEffect}). */
  #apply(effect: ReplicaEffect): void {
    switch (effect) {
      case "none":
        return;
      case "serve":
        this.#serving = true;
        this.#lastError = undefined;
        this.#backoff.ready();
        return;
      case "kill":
        if (this.#worker !== undefined) this.#terminate(this.#worker);
        return;
      case "drop":
        this.#serving = false;
        this.#worker = undefined;
        return;
    }
  }
}
