/**
 * One replica of an API: a supervised worker. Starts it, restarts it with
 * backoff when it exits, fails init or goes over its memory cap, and runs
 * one prediction at a time with a time limit; a request whose client went
 * away or whose time is up is cancelled in the worker, and a worker that
 * does not stop it within the cancel grace is restarted. Every state change goes
 * through the transition table of ./replica_states.ts, is logged at debug
 * and announced on {@link Replica.changes}.
 *
 * The replica owns its worker and its state; the pool (./pool.ts) owns the
 * queue and hands one job at a time to a `ready` replica through
 * {@link Replica.run}.
 */
import type { InitMessage } from "../python/protocol.ts";
import {
  type CallEnd,
  describeExit,
  InitFailedError,
  PredictFailedError,
  type WorkerExit,
} from "../python/worker_process.ts";
import type { Logger } from "../log/logger.ts";
import { ApiError } from "../errors/api_error.ts";
import { backoffDelay, type BackoffOptions } from "./backoff.ts";
import { Emitter } from "./events.ts";
import { readRssBytes } from "./rss.ts";
import { nextState, type ReplicaEvent, type ReplicaState } from "./replica_states.ts";
import type { ReplicaWorker, SpawnWorker } from "./replica_worker.ts";

export type { ReplicaState } from "./replica_states.ts";

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
  /** Reads a process's RSS in bytes; default /proc (see ./rss.ts). */
  readonly readRss?: (pid: number) => Promise<number | undefined>;
}

const RSS_POLL_MS = 200;

/** Why a running request was cancelled: its client went away, or its deadline passed. */
export type CancelReason = "client" | "timeout";

/** The first answer of a prediction: a body, or a stream of items (failures as ApiError). */
export type RunAnswer =
  | { readonly type: "body"; readonly body: Uint8Array }
  | { readonly type: "stream"; readonly stream: AsyncIterable<Uint8Array> };

/**
 * How a replica was done with a request: `done` once it ran (answered,
 * failed, cancelled or lost with its worker), `returned` when the worker was
 * lost before it started a request sent behind another one: that request did
 * not run, its answer never settles, and the caller queues it again.
 */
export type RunEnd = "done" | "returned";

/** A prediction sent to a replica. */
export interface ReplicaRun {
  /** The first answer; rejects with an ApiError. */
  readonly answer: Promise<RunAnswer>;
  /** Resolves when the replica is done with the request (ready again, busy with the next one, or restarting). */
  readonly finished: Promise<RunEnd>;
  /** The client went away: cancel the request (logged and counted; 499). */
  cancel(): void;
  /** Its `--predict-timeout` passed (counted from its start): cancel the request (logged and counted; 504). */
  timeOut(): void;
  /**
   * Takes back a request sent behind the running one before it started:
   * answers `error` at once and has the worker drop it. Does nothing once
   * the request started.
   */
  withdraw(error: ApiError): void;
}

/** A batch running on a replica (see {@link Replica.runBatch}). */
export interface ReplicaBatchRun {
  /** One answer per sample, in order; rejects with one ApiError when the batch was lost or cancelled. */
  readonly answers: Promise<(Uint8Array | ApiError)[]>;
  /** Resolves when the replica is done with the batch (ready again, or restarting). */
  readonly finished: Promise<RunEnd>;
  /** Every request of the batch has gone: cancel it (logged and counted). */
  cancel(): void;
  /** Its `--predict-timeout` passed: cancel it (logged and counted; 504 for every request). */
  timeOut(): void;
}

/** A request or batch the current worker has been sent and not finished, oldest first. */
interface InWorker {
  /** False while it waits behind the running one (pipelining). */
  started: boolean;
  readonly batch: boolean;
  /** Set once cancelled or withdrawn. */
  cancelled: CancelReason | "withdrawn" | undefined;
  readonly onStart: (() => void) | undefined;
  /** Starts the cancel grace of a cancelled request; deferred until it starts. */
  graceOnStart: (() => void) | undefined;
}

/** A supervised worker. */
export class Replica {
  readonly index: number;
  /** Emits this replica after every state change. */
  readonly changes: Emitter<Replica> = new Emitter();
  readonly #o: ReplicaOptions;
  readonly #log: Logger;
  #state: ReplicaState = "starting";
  #worker: ReplicaWorker | undefined;
  #lastError: string | undefined;
  #restarts = 0;
  #attempt = 0;
  #readyAt = 0;
  /** Requests the current worker answered (result or Python error). */
  #answered = 0;
  #retryAt = 0;
  /** True from the first `ready` until init fails: queued work may wait for it. */
  #serving = false;
  #stopping = false;
  #wake: (() => void) | undefined;
  #oom: string | undefined;
  #loop: Promise<void> | undefined;
  #initMs: number | undefined;
  readonly #cancels: Record<CancelReason, number> = { client: 0, timeout: 0 };
  /** What the current worker was sent and has not finished: the running request first. */
  readonly #inWorker: InWorker[] = [];

  constructor(options: ReplicaOptions) {
    this.index = options.index;
    this.#o = options;
    this.#log = options.logger.child({ api: options.api, replica: options.index });
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
    if (this.#state !== "busy" || this.#inWorker.length !== 1 || this.#worker?.alive !== true) return false;
    const running = this.#inWorker[0]!;
    return !running.batch && running.cancelled === undefined;
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
   * from its start) is
   * answered at once (499 or 504) and cancelled in the worker, which raises
   * inside `predict` (or drops it, not started); if predict has not stopped
   * within `--cancel-grace`, the worker is killed and restarted.
   *
   * When the worker is lost, the request it was running fails (502); one
   * sent behind it that had not started is `returned`, never run.
   *
   * The answer rejects with an ApiError: PREDICT_FAILED, BAD_REQUEST (the
   * worker could not parse the sample), WORKER_DIED, OUT_OF_MEMORY,
   * PREDICT_TIMEOUT or CLIENT_CLOSED, or the error given to `withdraw`.
   */
  run(sample: Uint8Array, debug: boolean, onStart?: () => void): ReplicaRun {
    const worker = this.#dispatch();
    const call = worker.run(sample, debug);
    const answer = Promise.withResolvers<RunAnswer>();
    answer.promise.catch(() => {}); // after a cancel nobody may wait for it
    const tracked = this.#track(worker, call, (error) => answer.reject(error), false, onStart);
    // Lost with its worker: answered once `finished` tells whether it ran (502) or goes back (never answered).
    let lost: unknown;
    call.answer.then(
      (first) =>
        answer.resolve(
          first.type === "body"
            ? first
            : { type: "stream", stream: this.#mapErrors(first.stream, tracked.cancelled) },
        ),
      (error) => {
        if (error instanceof PredictFailedError || error instanceof ApiError) {
          answer.reject(this.#requestError(error));
        } else lost = error;
      },
    );
    const finished = tracked.finished.then((end) => {
      if (end === "done" && lost !== undefined) answer.reject(this.#requestError(lost));
      return end;
    });
    return {
      answer: answer.promise,
      finished,
      cancel: tracked.cancel,
      timeOut: tracked.timeOut,
      withdraw: tracked.withdraw,
    };
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
   * is `ready`.
   */
  runBatch(samples: readonly Uint8Array[], debug: boolean): ReplicaBatchRun {
    if (this.#state !== "ready") throw new Error(`Replica ${this.index} is ${this.#state}, not ready`);
    const worker = this.#dispatch();
    const call = worker.runBatch(samples, debug);
    const answers = Promise.withResolvers<(Uint8Array | ApiError)[]>();
    answers.promise.catch(() => {}); // after a cancel nobody may wait for it
    const tracked = this.#track(worker, call, (error) => answers.reject(error), true, undefined);
    call.outcomes.then(
      (outcomes) => answers.resolve(outcomes.map((o) => o.ok ? o.body : this.#requestError(o.error))),
      (error) => answers.reject(error instanceof ApiError ? error : this.#requestError(error)),
    );
    return {
      answers: answers.promise,
      finished: tracked.finished,
      cancel: tracked.cancel,
      timeOut: tracked.timeOut,
    };
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

  /**
   * Cancellation, the deadline and the end of one call (a request or a
   * batch): a cancel answers at once through `fail` and asks the worker to
   * stop; past `--cancel-grace` the worker is restarted. When the worker is
   * done with its running call it goes on to the one sent behind it, if
   * any; with none the replica is ready again (or restarting, if the worker
   * is gone).
   */
  #track(
    worker: ReplicaWorker,
    call: { readonly finished: Promise<CallEnd>; cancel(): void },
    fail: (error: ApiError) => void,
    batch: boolean,
    onStart: (() => void) | undefined,
  ): {
    finished: Promise<RunEnd>;
    cancel: () => void;
    timeOut: () => void;
    withdraw: (error: ApiError) => void;
    cancelled: () => CancelReason | undefined;
  } {
    const entry: InWorker = {
      started: this.#inWorker.length === 0,
      batch,
      cancelled: undefined,
      onStart,
      graceOnStart: undefined,
    };
    this.#inWorker.push(entry);
    if (entry.started) onStart?.();
    const stop = (reason: CancelReason | "withdrawn", error: ApiError) => {
      if (entry.cancelled !== undefined || this.#worker !== worker || !this.#inWorker.includes(entry)) return;
      entry.cancelled = reason;
      if (reason !== "withdrawn") {
        this.#cancels[reason]++;
        this.#log.info("request cancelled", {
          reason: reason === "client" ? "client closed the connection" : "--predict-timeout passed",
          pid: worker.pid,
          ...(entry.started ? {} : { started: false }),
        });
        this.#fire("cancel");
      }
      // Settled before the worker hears of it: whatever it answers now is too late.
      fail(error);
      call.cancel();
      // One not started is dropped when the worker gets to it: its grace starts then.
      if (entry.started) grace();
      else entry.graceOnStart = grace;
    };
    // Code stuck in C may never see the cancellation: the grace bounds it.
    const grace = () => {
      const timer = setTimeout(() => {
        if (this.#worker !== worker || !this.#inWorker.includes(entry)) return;
        this.#log.warn("predict did not stop within --cancel-grace: restarting the worker", {
          pid: worker.pid,
          grace_ms: this.#o.cancelGraceMs,
        });
        this.#fire("stuck");
        this.#terminate(worker);
      }, this.#o.cancelGraceMs);
      void call.finished.then(() => clearTimeout(timer));
    };
    const cancel = (reason: CancelReason) => stop(reason, this.#cancelError(reason));
    const finished = call.finished.then((end): RunEnd => {
      const at = this.#inWorker.indexOf(entry);
      if (at >= 0) this.#inWorker.splice(at, 1);
      // Lost before the worker started it: it never ran, so it may run elsewhere.
      if (end === "lost" && !entry.started && entry.cancelled === undefined) return "returned";
      if (end !== "lost") this.#answered++;
      if (at !== 0) {
        // Dropped while it waited behind the running one: a place is free again.
        if (this.#worker === worker) this.changes.emit(this);
        return "done";
      }
      // The worker went on to the next request as soon as it was done with this one.
      const next = this.#inWorker[0];
      if (end !== "lost" && next !== undefined && !next.started) {
        next.started = true;
        next.onStart?.();
        next.graceOnStart?.();
      }
      if (this.#worker !== worker || this.#state !== "busy") return "done";
      if (worker.alive) {
        this.#fire(next === undefined ? "done" : "next");
      } else {
        // Dead, or alive but unusable (protocol broken, channel closed):
        // make sure it is gone; its replacement takes the queued work.
        this.#terminate(worker);
        this.#fire(this.#oom !== undefined ? "oom" : "lost");
      }
      return "done";
    });
    return {
      finished,
      cancel: () => cancel("client"),
      timeOut: () => cancel("timeout"),
      withdraw: (error) => {
        if (!entry.started) stop("withdrawn", error);
      },
      cancelled: () => entry.cancelled === "withdrawn" ? undefined : entry.cancelled,
    };
  }

  /** Requests cancelled so far on this replica, by reason. */
  get cancels(): Readonly<Record<CancelReason, number>> {
    return this.#cancels;
  }

  /** The stream with its failures as ApiErrors (what the HTTP layer shows). */
  async *#mapErrors(
    stream: AsyncIterable<Uint8Array>,
    cancelled: () => CancelReason | undefined,
  ): AsyncGenerator<Uint8Array> {
    try {
      yield* stream;
    } catch (error) {
      const reason = cancelled();
      if (reason !== undefined) throw this.#cancelError(reason);
      throw error instanceof ApiError ? error : this.#requestError(error);
    }
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

  #cancelError(reason: CancelReason): ApiError {
    if (reason === "client") return new ApiError("CLIENT_CLOSED", "The client closed the connection");
    return new ApiError(
      "PREDICT_TIMEOUT",
      "predict did not finish within --predict-timeout; it was cancelled",
    );
  }

  #requestError(error: unknown): ApiError {
    if (error instanceof ApiError) return error;
    const api = this.#o.api;
    if (error instanceof PredictFailedError) {
      if (error.kind === "out_of_memory") {
        return new ApiError("OUT_OF_MEMORY", error.message, { detail: error.traceback });
      }
      if (error.kind === "sample") {
        // The Cortex 0.17+ worker parses by Content-Type and words its own message.
        const own = error.message.startsWith("The request body");
        return new ApiError(
          "BAD_REQUEST",
          own ? error.message : `The request body is not valid JSON: ${error.message}`,
        );
      }
      return new ApiError("PREDICT_FAILED", error.message, { detail: error.traceback });
    }
    if (this.#oom !== undefined) {
      return new ApiError("OUT_OF_MEMORY", `The worker of api ${api} ${this.#oom}; it is restarting`);
    }
    const reason = error instanceof Error ? error.message : String(error);
    if (this.#stopping) {
      return new ApiError(
        "WORKER_DIED",
        `The server stopped the worker of api ${api} before the request finished (${lowerFirst(reason)})`,
      );
    }
    return new ApiError(
      "WORKER_DIED",
      `The worker of api ${api} stopped during the request (${lowerFirst(reason)}); it is restarting`,
    );
  }

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
      // A worker that had a healthy period (it answered requests, or stayed
      // up for resetAfterMs) restarts with the shortest delay; one that dies
      // before doing any work backs off further each time.
      const healthy = this.#readyAt > 0 &&
        (this.#answered > 0 || Date.now() - this.#readyAt >= this.#o.backoff.resetAfterMs);
      if (healthy) this.#attempt = 0;
      this.#readyAt = 0;
      const delay = backoffDelay(this.#attempt++, this.#o.backoff);
      this.#retryAt = Date.now() + delay;
      if (exit !== undefined) {
        this.#restarts++;
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
    this.#answered = 0;
    this.#inWorker.length = 0; // the last worker's calls all ended with it
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
      const ready = await this.#initWithTimeout(worker);
      if (this.#stopping) {
        stopWatch();
        await worker.exited;
        return undefined;
      }
      this.#initMs = performance.now() - started;
      this.#readyAt = Date.now();
      this.#serving = true;
      this.#lastError = undefined;
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
      this.#initFailed(this.#initErrorText(error, exit));
      return undefined;
    }
    const exit = await worker.exited;
    stopWatch();
    if (this.#stopping) return exit;
    this.#lastError = this.#oom !== undefined ? `Worker ${this.#oom}` : `Worker ${describeExit(exit)}`;
    if (this.#oom !== undefined && this.#state !== "out_of_memory") this.#fire("oom");
    else if (this.#state === "ready" || this.#state === "busy") this.#fire("lost");
    return exit;
  }

  #initWithTimeout(worker: ReplicaWorker) {
    const init = worker.init(this.#o.init);
    const limit = this.#o.initTimeoutMs;
    if (limit === undefined) return init;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`init did not finish within --init-timeout (${limit / 1000} s)`)),
        limit,
      );
    });
    return Promise.race([init, timeout]).finally(() => clearTimeout(timer));
  }

  #initErrorText(error: unknown, exit: WorkerExit): string {
    if (this.#oom !== undefined) return `Worker ${this.#oom} during init`;
    if (error instanceof InitFailedError) return `${error.phase} failed: ${error.message}`;
    const text = error instanceof Error ? error.message : String(error);
    return text.startsWith("Worker ") ? `Worker ${describeExit(exit)} during init` : text;
  }

  #initFailed(message: string): void {
    this.#lastError = message;
    this.#serving = false;
    this.#worker = undefined;
    this.#log.error("init failed", { error: message });
    this.#fire(this.#oom !== undefined ? "oom" : "init_failed");
  }

  /** Samples the worker's RSS; kills it when over `compute.mem`. One read at a time. */
  #watchMemory(worker: ReplicaWorker): () => void {
    const cap = this.#o.memBytes;
    if (cap === undefined) return () => {};
    const readRss = this.#o.readRss ?? readRssBytes;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let stopped = false;
    const sample = async () => {
      const rss = await readRss(worker.pid).catch(() => undefined);
      if (stopped) return;
      if (rss !== undefined && rss > cap && this.#oom === undefined) {
        this.#oom = `used ${mib(rss)} MiB, over compute.mem ${
          this.#o.memText ?? mib(cap) + " MiB"
        }, and was killed (out of memory)`;
        this.#log.error("worker over its memory cap: killing it", { rss_bytes: rss, cap_bytes: cap });
        worker.kill("SIGKILL");
        return;
      }
      timer = setTimeout(sample, RSS_POLL_MS);
    };
    timer = setTimeout(sample, RSS_POLL_MS);
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
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
   * Applies `event` through the transition table. While the replica is being
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
    // Two transitions per request: build the record only when it is written.
    if (this.#log.enabled("debug")) {
      this.#log.debug("replica state", { from, event, to: transition.to, action: transition.action });
    }
    this.changes.emit(this);
  }
}

function mib(bytes: number): string {
  return (bytes / 1048576).toFixed(0);
}

function lowerFirst(text: string): string {
  return text.charAt(0).toLowerCase() + text.slice(1);
}
