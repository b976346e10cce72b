/**
 * One replica of an API: a supervised worker process. Starts it, restarts it
 * with backoff when it exits, fails init or goes over its memory cap, and
 * runs one prediction at a time with a deadline. A request whose client went
 * away or whose deadline passed is cancelled in the worker; a worker that does
 * not stop it within the cancel grace is restarted. State transitions happen
 * only in `#setState`.
 */
import type { InitMessage } from "../python/protocol.ts";
import {
  describeExit,
  InitFailedError,
  PredictFailedError,
  type WorkerExit,
  type WorkerProcess,
} from "../python/worker_process.ts";
import type { Logger } from "../log/logger.ts";
import { ApiError } from "../errors/api_error.ts";
import { backoffDelay, type BackoffOptions } from "./backoff.ts";
import { readRssBytes } from "./rss.ts";

/** Named replica states (see README, "What happens when your code fails"). */
export type ReplicaState =
  | "starting"
  | "ready"
  | "busy"
  | "restarting"
  | "init_failed"
  | "out_of_memory"
  | "stopped";

/** What a replica needs; the pool builds one per replica. */
export interface ReplicaOptions {
  readonly api: string;
  readonly index: number;
  /** Starts a worker process; `onLog` receives its output lines. */
  readonly spawn: (onLog: (line: string) => void) => WorkerProcess;
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
  /** Called after every state change. */
  readonly onChange: (replica: Replica) => void;
}

const RSS_POLL_MS = 200;

/** Why a running request was cancelled: its client went away, or its deadline passed. */
export type CancelReason = "client" | "timeout";

/** The first answer of a prediction: a body, or a stream of items (failures as ApiError). */
export type RunAnswer =
  | { readonly type: "body"; readonly body: Uint8Array }
  | { readonly type: "stream"; readonly stream: AsyncIterable<Uint8Array> };

/** A prediction running on a replica. */
export interface ReplicaRun {
  /** The first answer; rejects with an ApiError. */
  readonly answer: Promise<RunAnswer>;
  /** Resolves when the replica is done with the request (ready again, or restarting). */
  readonly finished: Promise<void>;
  /** The client went away: cancel the request (logged and counted; 499). */
  cancel(): void;
}

function clientClosed(): ApiError {
  return new ApiError("CLIENT_CLOSED", "The client closed the connection");
}

/** A supervised worker. */
export class Replica {
  readonly index: number;
  readonly #o: ReplicaOptions;
  readonly #log: Logger;
  #state: ReplicaState = "starting";
  #worker: WorkerProcess | undefined;
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
   * Starts one prediction. Only call when `state` is `ready`; the replica is
   * `busy` until the worker is done with the request (for a stream: its last
   * item), see {@link ReplicaRun.finished}.
   *
   * @param deadline aborts when the request's time is up: the request gets
   *   504 and the worker is asked to cancel it (the cancel path below)
   */
  run(sample: Uint8Array, debug: boolean, deadline: AbortSignal): ReplicaRun {
    const worker = this.#worker;
    if (this.#state !== "ready" || worker === undefined) {
      throw new Error(`Replica ${this.index} is ${this.#state}, not ready`);
    }
    this.#setState("busy");
    const call = worker.run(sample, debug);
    const stopped = Promise.withResolvers<never>();
    stopped.promise.catch(() => {});
    let cancelled: CancelReason | undefined;
    const cancel = (reason: CancelReason) => {
      if (cancelled !== undefined) return;
      cancelled = reason;
      this.#cancels[reason]++;
      this.#log.info("request cancelled", {
        reason: reason === "client" ? "client closed the connection" : "--predict-timeout passed",
        pid: worker.pid,
      });
      stopped.reject(reason === "client" ? clientClosed() : this.#timeoutError());
      call.cancel();
      // Code stuck in C may never see the cancellation: the grace bounds it.
      const timer = setTimeout(() => {
        if (!worker.alive) return;
        this.#log.warn("predict did not stop within --cancel-grace: restarting the worker", {
          pid: worker.pid,
          grace_ms: this.#o.cancelGraceMs,
        });
        if (this.#worker === worker) this.#setState("restarting");
        this.#terminate(worker);
      }, this.#o.cancelGraceMs);
      call.finished.finally(() => clearTimeout(timer));
    };
    const onDeadline = () => cancel("timeout");
    deadline.addEventListener("abort", onDeadline, { once: true });
    const answer = Promise.race([call.answer, stopped.promise]).then(
      (answer): RunAnswer => {
        if (answer.type === "body") return answer;
        return { type: "stream", stream: this.#mapErrors(answer.stream, () => cancelled) };
      },
      (error) => {
        throw cancelled !== undefined
          ? (cancelled === "client" ? clientClosed() : this.#timeoutError())
          : error instanceof ApiError
          ? error
          : this.#requestError(error);
      },
    );
    answer.catch(() => {}); // after a cancel nobody may wait for it
    const finished = call.finished.then((end) => {
      deadline.removeEventListener("abort", onDeadline);
      if (end !== "lost") this.#answered++;
      // A worker that died or broke the protocol takes no more work: queued
      // requests wait for its replacement.
      if (this.#worker === worker && this.state === "busy") {
        this.#setState(worker.alive ? "ready" : "restarting");
      }
    });
    return { answer, finished, cancel: () => cancel("client") };
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
      if (reason !== undefined) throw reason === "client" ? clientClosed() : this.#timeoutError();
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
    this.#setState("stopped");
  }

  #timeoutError(): ApiError {
    return new ApiError(
      "PREDICT_TIMEOUT",
      `predict did not finish within --predict-timeout; it was cancelled`,
    );
  }

  #requestError(error: unknown): ApiError {
    const api = this.#o.api;
    if (error instanceof PredictFailedError) {
      if (error.kind === "out_of_memory") {
        return new ApiError("OUT_OF_MEMORY", error.message, { detail: error.traceback });
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
  #terminate(worker: WorkerProcess): void {
    worker.kill("SIGTERM");
    const timer = setTimeout(() => worker.kill("SIGKILL"), this.#o.killGraceMs);
    worker.exited.finally(() => clearTimeout(timer));
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
        this.#log.warn("worker stopped; restarting", {
          reason: this.#lastError,
          restart_in_ms: delay,
        });
        if (this.#state !== "out_of_memory") this.#setState("restarting");
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
    if (this.#state !== "starting") this.#setState("starting");
    const started = performance.now();
    let worker: WorkerProcess;
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
      this.#initMs = performance.now() - started;
      this.#readyAt = Date.now();
      this.#serving = true;
      this.#lastError = undefined;
      this.#log.info("worker ready", {
        pid: ready.pid,
        python: ready.python,
        init_ms: Math.round(this.#initMs),
      });
      this.#setState("ready");
    } catch (error) {
      this.#terminate(worker);
      const exit = await worker.exited;
      stopWatch();
      this.#initFailed(this.#initErrorText(error, exit));
      return undefined;
    }
    const exit = await worker.exited;
    stopWatch();
    if (this.#stopping) return exit;
    this.#lastError = this.#oom !== undefined ? `Worker ${this.#oom}` : `Worker ${describeExit(exit)}`;
    if (this.#oom !== undefined) this.#setState("out_of_memory");
    return exit;
  }

  #initWithTimeout(worker: WorkerProcess) {
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
    this.#setState(this.#oom !== undefined ? "out_of_memory" : "init_failed");
  }

  /** Polls the worker's RSS; kills it when over `compute.mem`. */
  #watchMemory(worker: WorkerProcess): () => void {
    const cap = this.#o.memBytes;
    if (cap === undefined) return () => {};
    const timer = setInterval(async () => {
      const rss = await readRssBytes(worker.pid);
      if (rss === undefined || rss <= cap || this.#oom !== undefined) return;
      this.#oom = `used ${mib(rss)} MiB, over compute.mem ${
        this.#o.memText ?? mib(cap) + " MiB"
      }, and was killed (out of memory)`;
      this.#log.error("worker over its memory cap: killing it", { rss_bytes: rss, cap_bytes: cap });
      worker.kill("SIGKILL");
    }, RSS_POLL_MS);
    return () => clearInterval(timer);
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

  #setState(state: ReplicaState): void {
    if (this.#state === state) return;
    this.#log.debug("replica state", { from: this.#state, to: state });
    this.#state = state;
    this.#o.onChange(this);
  }
}

function mib(bytes: number): string {
  return (bytes / 1048576).toFixed(0);
}

function lowerFirst(text: string): string {
  return text.charAt(0).toLowerCase() + text.slice(1);
}
