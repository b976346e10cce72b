/**
 * One prediction on its way through a pool (./pool.ts), with its lifecycle
 * as one state:
 *
 * ```
 * queued --dispatch--> sent --(the replica is done with it)--> finished
 *   |  ^                 |
 *   |  +---returned------+  (its worker was lost before it started it)
 *   +--batch--> batched --(the replica is done with the batch)--> finished
 *   +--> answered  (queue timeout, client gone, not ready, shutting down, queue full)
 * ```
 *
 * `sent` covers a request waiting in the worker behind a running one
 * (pipelining) and a running one: whether it started is the replica's to
 * say ({@link ReplicaRun.started}); the pool is told when, to start its
 * predict deadline. `answered` and `finished` are final.
 *
 * @module
 */
import type { RunningBatch } from "./batcher.ts";
import { ApiError } from "../errors/api_error.ts";
import { decodeAnswer, encodeRequest } from "../python/envelope.ts";
import type { ClientSource, Prediction, SubmitOptions } from "./pool_types.ts";
import type { ReplicaBatchRun, RunAnswer, RunControl, RunListener } from "./replica.ts";
import type { RunEnd } from "./worker_calls.ts";

/** Where a job is in its life (see the module doc). */
export type JobState = "queued" | "sent" | "batched" | "answered" | "finished";

/** A batch as its jobs know it: which requests left together, and the replica's run of it. */
export interface JobBatch {
  readonly batch: RunningBatch<Job>;
  readonly run: ReplicaBatchRun;
}

/**
 * The pool a job is in, as the job reports to it: one object for all its
 * jobs, so a job makes no closure for its deadline or its run.
 */
export interface JobOwner {
  /** `--predict-timeout`: a started job's deadline. */
  readonly predictTimeoutMs: number;
  /** The job needs its deadline and client watched no more. */
  unwatch(job: Job): void;
  /** The job's run answered (a body or a stream). */
  answered(job: Job, answer: RunAnswer): void;
  /** The replica is done with the job's run. */
  finished(job: Job, end: RunEnd): void;
}

/** A prediction in a pool; it hears of its run as its {@link RunListener}. */
export class Job implements RunListener {
  /** What the worker gets: the body, or with {@link SubmitOptions.request} a request envelope. */
  readonly sample: Uint8Array;
  /** The sample is a request envelope, and a body answer an answer envelope (../python/envelope.ts). */
  readonly enveloped: boolean;
  readonly debug: boolean;
  /** `performance.now()` when it arrived. */
  readonly arrived: number;
  readonly onBatch: ((size: number) => void) | undefined;
  /** Tracing only: the trace context to send with it, asked when a replica takes it. */
  readonly trace: (() => Uint8Array) | undefined;
  readonly #resolve: (value: Prediction) => void;
  readonly #reject: (error: Error) => void;
  #state: JobState = "queued";
  /** `performance.now()` when the worker started it; 0 until then. */
  startedAt = 0;
  /**
   * `performance.now()` at which the job times out: the end of its queue
   * wait until it started, the end of its predict time once running.
   */
  deadlineAt: number;
  /** Its replica's run, while `sent`. */
  #run: RunControl | undefined;
  /** Its batch, while `batched`. */
  #batch: JobBatch | undefined;
  /** Its pool (set when the pool arms the job). */
  owner: JobOwner | undefined = undefined;
  /** Its client, not listened to yet (see SubmitOptions.client); the pool takes it after a tick. */
  client: ClientSource | undefined = undefined;
  /** Stops listening to its client's signal, once the pool listens. */
  unlisten: (() => void) | undefined = undefined;

  /** A job queued now, to wait at most `queueTimeoutMs`; `resolve` and `reject` answer its caller. */
  constructor(
    sample: Uint8Array,
    options: Pick<SubmitOptions, "debug" | "onBatch" | "request" | "trace">,
    queueTimeoutMs: number,
    resolve: (value: Prediction) => void,
    reject: (error: Error) => void,
  ) {
    this.enveloped = options.request !== undefined;
    this.sample = options.request === undefined ? sample : encodeRequest(options.request, sample);
    this.debug = options.debug;
    this.onBatch = options.onBatch;
    this.trace = options.trace;
    this.arrived = performance.now();
    this.deadlineAt = this.arrived + queueTimeoutMs;
    this.#resolve = resolve;
    this.#reject = reject;
  }

  get state(): JobState {
    return this.#state;
  }

  /** For the queue (./queue.ts): a job that left it while waiting is skipped there. */
  get cancelled(): boolean {
    return this.#state === "answered";
  }
  set cancelled(value: boolean) {
    if (value && this.#state === "queued") this.#state = "answered";
  }

  /** Its replica's run, while `sent`. */
  get run(): RunControl | undefined {
    return this.#run;
  }

  /** Its batch, while `batched`. */
  get batch(): JobBatch | undefined {
    return this.#batch;
  }

  /** True once the worker started it. */
  get started(): boolean {
    return this.#batch !== undefined || this.#run?.started === true;
  }

  /** Handed to a replica, which runs it as `run` (`queued` -> `sent`). */
  send(run: RunControl): void {
    this.#expect("queued");
    this.#state = "sent";
    this.#run = run;
  }

  /** Left the queue in a batch (`queued` -> `batched`), which starts now. */
  batched(batch: JobBatch, now: number, predictTimeoutMs: number): void {
    this.#expect("queued");
    this.#state = "batched";
    this.#batch = batch;
    this.begin(now, predictTimeoutMs);
  }

  /** The worker started it: its predict deadline runs from `now`. */
  begin(now: number, predictTimeoutMs: number): void {
    this.startedAt = now;
    this.deadlineAt = now + predictTimeoutMs;
  }

  /** Its worker was lost before it started (`sent` -> `queued`): it waits again. */
  returned(): void {
    this.#expect("sent");
    this.#state = "queued";
    this.#run = undefined;
  }

  /** Answers it without running it (`queued` -> `answered`). */
  answer(error: Error): void {
    if (this.#state === "queued") this.#state = "answered";
    this.release();
    this.#reject(error);
  }

  /** Stops watching its deadline and its client. */
  release(): void {
    this.owner?.unwatch(this);
    this.client = undefined;
    const unlisten = this.unlisten;
    if (unlisten === undefined) return;
    this.unlisten = undefined;
    unlisten();
  }

  /** RunListener: the worker started it. */
  runStarted(): void {
    this.begin(performance.now(), this.owner!.predictTimeoutMs);
  }
  /** RunListener: its run answered. */
  runAnswered(answer: RunAnswer): void {
    this.owner!.answered(this, answer);
  }
  /** RunListener: its run failed, or was answered at once (cancelled, withdrawn). */
  runFailed(error: ApiError): void {
    this.#reject(error);
  }
  /** RunListener: the replica is done with it. */
  runFinished(end: RunEnd): void {
    this.owner!.finished(this, end);
  }

  /** Its run answered. */
  resolve(prediction: Prediction): void {
    this.#resolve(prediction);
  }

  /** Its run answered with an answer envelope: the body, its content type, status and headers. */
  resolveEnveloped(bytes: Uint8Array, queueMs: number): void {
    let answer;
    try {
      answer = decodeAnswer(bytes);
    } catch (error) {
      this.#reject(new ApiError("PREDICT_FAILED", `The worker's answer could not be read: ${String(error)}`));
      return;
    }
    this.#resolve({
      answer: { type: "body", body: answer.body },
      queueMs,
      contentType: answer.contentType,
      status: answer.status,
      headers: answer.headers,
    });
  }

  /** Its run failed. */
  reject(error: Error): void {
    this.#reject(error);
  }

  /**
   * Its client went away: one sent to a replica is cancelled in the worker
   * (499), one in a batch leaves it (the batch is cancelled once every
   * request in it has gone). Returns true when it is queued: the pool drops
   * it and answers 499.
   */
  clientGone(): boolean {
    if (this.#state === "sent") this.#run?.cancel();
    else if (this.#state === "batched") this.#batch?.batch.leave(this);
    return this.#state === "queued";
  }

  /**
   * Its deadline passed: one waiting in the worker behind a running request
   * is taken back (503 `queueTimeout()`), a running one is stopped (the
   * replica answers 504 and cancels it), a batch is stopped by the first of
   * its requests to time out. Returns true when it is queued: the pool
   * drops it and answers 503.
   */
  expired(queueTimeout: () => ApiError): boolean {
    if (this.#state === "sent") {
      if (this.#run?.started) this.#run.timeOut();
      else this.#run?.withdraw(queueTimeout());
    } else if (this.#state === "batched") this.#batch?.run.timeOut();
    return this.#state === "queued";
  }

  /** The replica is done with it (`sent`/`batched` -> `finished`). */
  finish(): void {
    this.#state = "finished";
    this.#run = undefined;
    this.#batch = undefined;
    this.release();
  }

  #expect(state: JobState): void {
    if (this.#state !== state) throw new Error(`Job is ${this.#state}, not ${state}`);
  }
}
