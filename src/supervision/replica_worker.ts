/**
 * The seam between a replica and its worker process. A replica drives its
 * worker only through {@link ReplicaWorker}; `WorkerProcess`
 * (src/python/worker_process.ts) is the real one, and tests pass a fake
 * whose replies they script.
 *
 * @module
 */
import type { InitMessage, ReadyMessage } from "../python/protocol.ts";
import type { BatchCall, CallHandle, CallSink, PredictCall, WorkerExit } from "../python/worker_process.ts";

/**
 * One running worker, as a replica uses it: `init` once, then one request at
 * a time through `run`.
 *
 * Failure contract (what the replica relies on):
 * - `init` rejects with `InitFailedError` (user code failed) or any other
 *   error (the worker died or broke the protocol).
 * - `run` returns at once; its `answer` resolves with the prediction's JSON
 *   bytes or a stream of items, rejects with `PredictFailedError` for a
 *   failure of that one request (the worker stays usable; kind `cancelled`
 *   after `cancel()`), or with any other error when the worker is no longer
 *   usable (then `alive` is false). Its `finished` resolves when the worker
 *   is done with the request (`lost` when the worker ended first).
 * - `exited` resolves once, when the process has ended; it never rejects.
 */
export interface ReplicaWorker {
  readonly pid: number;
  /** False once the worker exited, broke the protocol or closed its channel. */
  readonly alive: boolean;
  readonly exited: Promise<WorkerExit>;
  init(message: Omit<InitMessage, "type">): Promise<ReadyMessage>;
  /** `trace`: the W3C trace context the request runs in (see PredictMessage), only while tracing. */
  run(sample: Uint8Array, debug: boolean, trace?: Uint8Array): PredictCall;
  /** Like `run`, the outcome going to `sink` (the replica's way: no promise per request). */
  runTo(sink: CallSink, sample: Uint8Array, debug: boolean, trace?: Uint8Array): CallHandle;
  /**
   * One `predict(list, metadata)` call for several requests (server-side
   * batching): `outcomes` has one outcome per sample, in order, or rejects
   * when the worker is no longer usable (every request of the batch lost).
   */
  runBatch(samples: readonly Uint8Array[], debug: boolean, traces?: readonly Uint8Array[]): BatchCall;
  /** Asks the worker to exit; kills it after `graceMs`. */
  shutdown(graceMs: number): Promise<WorkerExit>;
  /** Signals the worker (and what it started); a no-op once it is gone. */
  kill(signal?: Deno.Signal): void;
}

/** Starts a worker; `onLog` receives its output lines. May throw (no interpreter). */
export type SpawnWorker = (onLog: (line: string) => void) => ReplicaWorker;
