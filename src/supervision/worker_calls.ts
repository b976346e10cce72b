/**
 * The requests and batches one worker was sent and has not finished, oldest
 * first: the running one, and with pipelining one waiting behind it. Each
 * is a {@link TrackedCall} with one lifecycle:
 *
 * ```
 * waiting --(the one before it finished)--> running --> finished
 *    |                                        |
 *    |                                        +-cancel: answered at once, `cancel` sent;
 *    |                                          past --cancel-grace the worker is killed
 *    +-cancel/withdraw: answered at once; the worker drops it when it gets
 *      to it (or it is lost with its worker) --> dropped
 * ```
 *
 * A cancelled call is answered at once (its client or deadline does not
 * wait for the worker) and the worker is asked to stop it; code stuck in C
 * may never see the cancellation, so the grace bounds it: a call still
 * running `cancelGraceMs` after its cancel (counted from its start, for one
 * cancelled while it waited) makes the replica kill the worker. When the
 * worker is done with its running call it goes on to the one behind it at
 * once, without waiting for the server to hear of that answer.
 *
 * The replica (./replica.ts) owns one {@link WorkerCalls} per worker and
 * hears of what happens through {@link CallHooks}.
 *
 * @module
 */
import type { CallEnd } from "../python/worker_process.ts";
import type { ApiError } from "../errors/api_error.ts";
import { cancelError, type CancelReason } from "./request_errors.ts";

/** What a call needs of the worker's call object (a request or a batch). */
export interface WorkerCall {
  readonly finished: Promise<CallEnd>;
  cancel(): void;
}

/** What the replica is told. Hooks other than `answered` are only called while the calls are current. */
export interface CallHooks {
  /** A call was cancelled (client gone or deadline passed): count and log it. */
  cancelled(reason: CancelReason, started: boolean): void;
  /** A cancelled call did not stop within the cancel grace: the worker must go. */
  stuck(): void;
  /** The worker answered a call (a result or a Python error, not lost). */
  answered(): void;
  /**
   * The running call ended; `next` when the worker went on to the one
   * behind it. The replica checks whether the worker is still usable.
   */
  ended(next: boolean): void;
  /** A call that waited behind the running one was dropped: its place is free. */
  dropped(): void;
}

/** Where a call is in its life; `finished` and `dropped` (never started) are final. */
export type CallState = "waiting" | "running" | "finished" | "dropped";

/**
 * How a replica was done with a call: `done` once it ran (answered, failed,
 * cancelled or lost with its worker), `returned` when the worker was lost
 * before it started a request sent behind another one: that request did
 * not run, and the caller may send it elsewhere.
 */
export type RunEnd = "done" | "returned";

/** How a call is tracked. */
export interface CallOptions {
  /** A batch (never has a call sent behind it). */
  readonly batch: boolean;
  /** Answers the call's caller at once when it is cancelled or withdrawn. */
  readonly fail: (error: ApiError) => void;
  /** Called when the worker starts the call. */
  readonly onStart?: (() => void) | undefined;
}

/**
 * The caller's side of a tracked call (a request's run, ./replica_run.ts):
 * one object, so tracking a request makes no closure.
 */
export interface CallOwner {
  /** Answers the call's caller at once: it was cancelled or withdrawn. */
  callFailed(error: ApiError): void;
  /** The worker started the call. */
  callStarted(): void;
  /** Asks the worker to stop the call (sends `cancel`). */
  stopCall(): void;
}

/** A {@link WorkerCall} and its {@link CallOptions} as a {@link CallOwner}. */
class OptionsOwner implements CallOwner {
  constructor(readonly call: WorkerCall, readonly options: CallOptions) {}
  callFailed(error: ApiError): void {
    this.options.fail(error);
  }
  callStarted(): void {
    this.options.onStart?.();
  }
  stopCall(): void {
    this.call.cancel();
  }
}

/** One request or batch sent to the worker. */
export class TrackedCall {
  readonly batch: boolean;
  #state: CallState;
  #cancelled: CancelReason | "withdrawn" | undefined;
  readonly #calls: WorkerCalls;
  readonly #owner: CallOwner;
  #graceTimer: ReturnType<typeof setTimeout> | undefined;

  /** Made by {@link WorkerCalls.add} and {@link WorkerCalls.track}. */
  constructor(calls: WorkerCalls, owner: CallOwner, running: boolean, batch: boolean) {
    this.#calls = calls;
    this.#owner = owner;
    this.batch = batch;
    this.#state = running ? "running" : "waiting";
  }

  get state(): CallState {
    return this.#state;
  }
  /** True once the worker started it. */
  get started(): boolean {
    return this.#state === "running" || this.#state === "finished";
  }
  /** Why it was cancelled, if it was (a withdrawn call was never running: undefined). */
  get cancelled(): CancelReason | undefined {
    return this.#cancelled === "withdrawn" ? undefined : this.#cancelled;
  }
  /** True once the worker is done with it. */
  get #over(): boolean {
    return this.#state === "finished" || this.#state === "dropped";
  }

  /** True once cancelled or withdrawn. */
  get stopping(): boolean {
    return this.#cancelled !== undefined;
  }

  /** The worker started the call (at once, or when the one before it finished). */
  start(): void {
    if (this.#state !== "waiting") return;
    this.#state = "running";
    this.#owner.callStarted();
    if (this.#cancelled !== undefined) this.#grace();
  }

  /**
   * Cancels the call: answers 499 or 504 at once (see ./request_errors.ts)
   * and asks the worker to stop. Does nothing once it finished or was
   * cancelled, or for a worker the replica has left.
   */
  cancel(reason: CancelReason): void {
    this.#stop(reason, undefined);
  }

  /** Takes back a call waiting behind the running one: answers `error` at once, the worker drops it. */
  withdraw(error: ApiError): void {
    if (this.#state === "waiting") this.#stop("withdrawn", error);
  }

  /** The worker is done with the call (see {@link WorkerCalls.ended}). */
  finish(): void {
    this.#state = this.#state === "waiting" ? "dropped" : "finished";
    if (this.#graceTimer !== undefined) clearTimeout(this.#graceTimer);
    this.#graceTimer = undefined;
  }

  #stop(reason: CancelReason | "withdrawn", error: ApiError | undefined): void {
    if (this.#cancelled !== undefined || this.#over || !this.#calls.current) return;
    this.#cancelled = reason;
    if (reason !== "withdrawn") this.#calls.hooks.cancelled(reason, this.started);
    // Settled before the worker hears of it: whatever it answers now is too late.
    this.#owner.callFailed(error ?? cancelError(reason as CancelReason));
    this.#owner.stopCall();
    // One not started is dropped when the worker gets to it: its grace starts then.
    if (this.#state === "running") this.#grace();
  }

  /** Code stuck in C may never see the cancellation: the grace bounds it. */
  #grace(): void {
    const calls = this.#calls;
    this.#graceTimer = setTimeout(() => {
      this.#graceTimer = undefined;
      if (calls.current && !this.#over) calls.hooks.stuck();
    }, calls.cancelGraceMs);
  }
}

/** The calls one worker was sent and has not finished, the running one first. */
export class WorkerCalls {
  readonly hooks: CallHooks;
  readonly cancelGraceMs: number;
  readonly #calls: TrackedCall[] = [];
  #current = true;

  constructor(cancelGraceMs: number, hooks: CallHooks) {
    this.cancelGraceMs = cancelGraceMs;
    this.hooks = hooks;
  }

  /** False once the replica moved on from this worker: its calls no longer affect the replica. */
  get current(): boolean {
    return this.#current;
  }

  /** The replica moved on to another worker. */
  retire(): void {
    this.#current = false;
  }

  /** Calls sent and not finished. */
  get size(): number {
    return this.#calls.length;
  }

  /** True when one single request runs and was not cancelled: another may wait behind it. */
  get canTakeNext(): boolean {
    if (this.#calls.length !== 1) return false;
    const running = this.#calls[0]!;
    return !running.batch && !running.stopping;
  }

  /**
   * Tracks `call`, just sent to the worker: it runs at once when nothing
   * else does. `finished` resolves when the worker is done with it.
   */
  add(
    call: WorkerCall,
    options: CallOptions,
  ): { readonly tracked: TrackedCall; readonly finished: Promise<RunEnd> } {
    const tracked = this.track(new OptionsOwner(call, options), options.batch);
    return { tracked, finished: call.finished.then((end) => this.ended(tracked, end)) };
  }

  /**
   * Tracks a single request about to be sent for `owner`; it runs at once
   * when nothing else does. The owner reports the worker's end of it with
   * {@link ended}.
   */
  track(owner: CallOwner, batch = false): TrackedCall {
    const running = this.#calls.length === 0;
    const tracked = new TrackedCall(this, owner, running, batch);
    this.#calls.push(tracked);
    if (running) owner.callStarted();
    return tracked;
  }

  /** The worker is done with `call` (`end` says how); see {@link RunEnd}. */
  ended(call: TrackedCall, end: CallEnd): RunEnd {
    const at = this.#calls.indexOf(call);
    if (at >= 0) this.#calls.splice(at, 1);
    const started = call.started;
    call.finish();
    // Lost before the worker started it: it never ran, so it may run elsewhere.
    if (end === "lost" && !started && !call.stopping) return "returned";
    if (end !== "lost") this.hooks.answered();
    if (at !== 0) {
      // Dropped while it waited behind the running one: a place is free again.
      if (this.#current) this.hooks.dropped();
      return "done";
    }
    // The worker went on to the next call as soon as it was done with this one.
    const next = this.#calls[0];
    if (end !== "lost") next?.start();
    if (this.#current) this.hooks.ended(next !== undefined);
    return "done";
  }
}
