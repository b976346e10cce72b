/**
 * A request or batch on a replica as its caller sees it: the answer (worker
 * failures mapped by ./request_errors.ts), when the replica is done with it,
 * and how to cancel, time out or take it back. The replica (./replica.ts)
 * sends the call to its worker and tracks it (./worker_calls.ts). A single
 * request's outcome goes from the worker's messages to the pool's job by
 * method calls ({@link SingleRun}, {@link RunListener}); {@link PromisedRun}
 * turns it into promises for callers that await; a batch's is promises.
 *
 * @module
 */
import { ApiError } from "../errors/api_error.ts";
import {
  type BatchCall,
  type CallEnd,
  type CallHandle,
  type CallSink,
  type PredictAnswer,
  PredictFailedError,
} from "../python/worker_process.ts";
import type { WorkerTimings } from "../python/worker_timings.ts";
import { type FailureContext, mapStreamErrors, requestError } from "./request_errors.ts";
import type { CallOwner, RunEnd, TrackedCall, WorkerCalls } from "./worker_calls.ts";

/** The first answer of a prediction: a body, or a stream of items (failures as ApiError). */
export type RunAnswer =
  | { readonly type: "body"; readonly body: Uint8Array; readonly timings?: WorkerTimings }
  | { readonly type: "stream"; readonly stream: AsyncIterable<Uint8Array> };

/** What a prediction sent to a replica can be told to do. */
export interface RunControl {
  /** True once the worker started it (one sent behind a running request waits first). */
  readonly started: boolean;
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

/** A prediction sent to a replica, its outcome as promises. */
export interface ReplicaRun extends RunControl {
  /** The first answer; rejects with an ApiError. */
  readonly answer: Promise<RunAnswer>;
  /** Resolves when the replica is done with the request (ready again, busy with the next one, or restarting). */
  readonly finished: Promise<RunEnd>;
}

/**
 * Where a prediction's outcome goes instead of promises (the pool's job):
 * `runStarted` when the worker starts it (at once, from inside the call
 * that sent it, when nothing runs before it), then `runAnswered` or
 * `runFailed` once, then `runFinished` once; those three never come from
 * inside the call that sent the request.
 */
export interface RunListener {
  runStarted(): void;
  runAnswered(answer: RunAnswer): void;
  /** An ApiError (see ./request_errors.ts), or the error given to `withdraw`. */
  runFailed(error: ApiError): void;
  runFinished(end: RunEnd): void;
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

/**
 * A prediction on a replica, from its worker's messages (a {@link CallSink})
 * to `listener`: one object per request, and no promise, reaction or
 * closure. A class, never an object literal: a literal with a getter gets a
 * hidden class of its own each time (its getter is a new closure), and V8
 * allocates hidden classes in the old generation, from where the getter's
 * closure kept every request's objects alive across scavenges until the
 * next full collection (tests/gc_promotion_test.ts).
 *
 * A request lost with its worker is answered (502) once `finished` tells
 * whether it ran; one that goes back (`returned`) is never answered.
 */
export class SingleRun implements RunControl, CallSink, CallOwner {
  readonly #listener: RunListener;
  readonly #calls: WorkerCalls;
  readonly #failure: () => FailureContext;
  readonly #tracked: TrackedCall;
  #handle: CallHandle | undefined;
  /** The listener has its answer (or failure): later ones are too late. */
  #settled = false;
  /** The worker's end came first: the request fails once `finished` says whether it ran. */
  #lost: Error | undefined;

  /** Tracks the request among `calls`; {@link send} sends it. */
  constructor(listener: RunListener, calls: WorkerCalls, failure: () => FailureContext) {
    this.#listener = listener;
    this.#calls = calls;
    this.#failure = failure;
    this.#tracked = calls.track(this);
  }

  /** Sends the request through `send` (the worker's `runTo` with this run as its sink). */
  send(send: (sink: CallSink) => CallHandle): void {
    this.#handle = send(this);
  }

  get started(): boolean {
    return this.#tracked.started;
  }
  cancel(): void {
    this.#tracked.cancel("client");
  }
  timeOut(): void {
    this.#tracked.cancel("timeout");
  }
  withdraw(error: ApiError): void {
    this.#tracked.withdraw(error);
  }

  // CallOwner: what the tracked call asks of the run.
  /** @internal */
  callFailed(error: ApiError): void {
    this.#settle(error);
  }
  /** @internal */
  callStarted(): void {
    this.#listener.runStarted();
  }
  /** @internal */
  stopCall(): void {
    this.#handle?.cancel();
  }

  // CallSink: what the worker answered.
  /** @internal */
  answered(first: PredictAnswer): void {
    if (this.#settled) return; // cancelled or withdrawn: the worker was told to stop
    this.#settled = true;
    if (first.type === "body") return this.#listener.runAnswered(first);
    const tracked = this.#tracked;
    this.#listener.runAnswered({
      type: "stream",
      stream: mapStreamErrors(first.stream, () => tracked.cancelled, this.#failure),
    });
  }
  /** @internal */
  failed(error: Error): void {
    if (error instanceof PredictFailedError || error instanceof ApiError) {
      this.#settle(requestError(error, this.#failure()));
    } else this.#lost = error;
  }
  /** @internal */
  finished(end: CallEnd): void {
    const runEnd = this.#calls.ended(this.#tracked, end);
    if (runEnd === "done" && this.#lost !== undefined) {
      this.#settle(requestError(this.#lost, this.#failure()));
    }
    this.#listener.runFinished(runEnd);
  }

  #settle(error: ApiError): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#listener.runFailed(error);
  }
}

/** A {@link RunListener} that keeps the outcome as promises: {@link ReplicaRun} for callers that await. */
export class PromisedRun implements ReplicaRun, RunListener {
  readonly #answer = Promise.withResolvers<RunAnswer>();
  readonly #finished = Promise.withResolvers<RunEnd>();
  readonly #onStart: (() => void) | undefined;
  #control: RunControl | undefined;

  constructor(onStart: (() => void) | undefined) {
    this.#onStart = onStart;
    this.#answer.promise.catch(() => {}); // after a cancel nobody may wait for it
  }

  /** The run it follows. */
  follow(control: RunControl): this {
    this.#control = control;
    return this;
  }

  get answer(): Promise<RunAnswer> {
    return this.#answer.promise;
  }
  get finished(): Promise<RunEnd> {
    return this.#finished.promise;
  }
  get started(): boolean {
    return this.#control?.started ?? false;
  }
  cancel(): void {
    this.#control?.cancel();
  }
  timeOut(): void {
    this.#control?.timeOut();
  }
  withdraw(error: ApiError): void {
    this.#control?.withdraw(error);
  }

  runStarted(): void {
    this.#onStart?.();
  }
  runAnswered(answer: RunAnswer): void {
    this.#answer.resolve(answer);
  }
  runFailed(error: ApiError): void {
    this.#answer.reject(error);
  }
  runFinished(end: RunEnd): void {
    this.#finished.resolve(end);
  }
}

/** A batch on a replica: one answer per sample, or one error for all. */
export function startBatchRun(
  call: BatchCall,
  calls: WorkerCalls,
  failure: () => FailureContext,
): ReplicaBatchRun {
  const answers = Promise.withResolvers<(Uint8Array | ApiError)[]>();
  answers.promise.catch(() => {}); // after a cancel nobody may wait for it
  const { tracked, finished } = calls.add(call, { batch: true, fail: answers.reject });
  call.outcomes.then(
    (outcomes) => answers.resolve(outcomes.map((o) => o.ok ? o.body : requestError(o.error, failure()))),
    (error) => answers.reject(requestError(error, failure())),
  );
  return {
    answers: answers.promise,
    finished,
    cancel: () => tracked.cancel("client"),
    timeOut: () => tracked.cancel("timeout"),
  };
}
