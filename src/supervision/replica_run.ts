/**
 * A request or batch on a replica as its caller sees it: the answer (worker
 * failures mapped by ./request_errors.ts), when the replica is done with it,
 * and how to cancel, time out or take it back. The replica (./replica.ts)
 * sends the call to its worker and tracks it (./worker_calls.ts); these
 * functions wire the call's promises to what the pool reads.
 *
 * @module
 */
import { ApiError } from "../errors/api_error.ts";
import { type BatchCall, type PredictCall, PredictFailedError } from "../python/worker_process.ts";
import type { WorkerTimings } from "../python/worker_timings.ts";
import { type FailureContext, mapStreamErrors, requestError } from "./request_errors.ts";
import type { RunEnd, TrackedCall, WorkerCalls } from "./worker_calls.ts";

/** The first answer of a prediction: a body, or a stream of items (failures as ApiError). */
export type RunAnswer =
  | { readonly type: "body"; readonly body: Uint8Array; readonly timings?: WorkerTimings }
  | { readonly type: "stream"; readonly stream: AsyncIterable<Uint8Array> };

/** A prediction sent to a replica. */
export interface ReplicaRun {
  /** The first answer; rejects with an ApiError. */
  readonly answer: Promise<RunAnswer>;
  /** Resolves when the replica is done with the request (ready again, busy with the next one, or restarting). */
  readonly finished: Promise<RunEnd>;
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
 * Tracks `call`, just sent to the worker, among `calls`; `failure` says
 * what a failed request is answered. A request lost with its worker is
 * answered (502) once `finished` tells whether it ran; one that goes back
 * (`returned`) is never answered.
 */
export function startRun(
  call: PredictCall,
  calls: WorkerCalls,
  onStart: (() => void) | undefined,
  failure: () => FailureContext,
): ReplicaRun {
  const answer = Promise.withResolvers<RunAnswer>();
  answer.promise.catch(() => {}); // after a cancel nobody may wait for it
  const tracked = calls.add(call, { batch: false, fail: answer.reject, onStart });
  let lost: unknown;
  call.answer.then(
    (first) =>
      answer.resolve(
        first.type === "body"
          ? first
          : { type: "stream", stream: mapStreamErrors(first.stream, () => tracked.cancelled, failure) },
      ),
    (error) => {
      if (error instanceof PredictFailedError || error instanceof ApiError) {
        answer.reject(requestError(error, failure()));
      } else lost = error;
    },
  );
  const finished = tracked.finished.then((end) => {
    if (end === "done" && lost !== undefined) answer.reject(requestError(lost, failure()));
    return end;
  });
  return new SingleRun(answer.promise, finished, tracked);
}

/**
 * A {@link ReplicaRun} as a class, never an object literal: a literal with
 * a getter gets a hidden class of its own each time (its getter is a new
 * closure), and V8 allocates hidden classes in the old generation, from
 * where the getter's closure kept every request's objects alive across
 * scavenges until the next full collection (tests/gc_promotion_test.ts).
 */
class SingleRun implements ReplicaRun {
  readonly answer: Promise<RunAnswer>;
  readonly finished: Promise<RunEnd>;
  readonly #tracked: TrackedCall;

  constructor(answer: Promise<RunAnswer>, finished: Promise<RunEnd>, tracked: TrackedCall) {
    this.answer = answer;
    this.finished = finished;
    this.#tracked = tracked;
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
}

/** Like {@link startRun} for a batch: one answer per sample, or one error for all. */
export function startBatchRun(
  call: BatchCall,
  calls: WorkerCalls,
  failure: () => FailureContext,
): ReplicaBatchRun {
  const answers = Promise.withResolvers<(Uint8Array | ApiError)[]>();
  answers.promise.catch(() => {}); // after a cancel nobody may wait for it
  const tracked = calls.add(call, { batch: true, fail: answers.reject });
  call.outcomes.then(
    (outcomes) => answers.resolve(outcomes.map((o) => o.ok ? o.body : requestError(o.error, failure()))),
    (error) => answers.reject(requestError(error, failure())),
  );
  return {
    answers: answers.promise,
    finished: tracked.finished,
    cancel: () => tracked.cancel("client"),
    timeOut: () => tracked.cancel("timeout"),
  };
}
