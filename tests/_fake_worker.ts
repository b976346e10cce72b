/**
 * A worker the test scripts, for in-process tests of supervision (replica,
 * pool, deployment, reloader, autoscale). It implements the seam a replica
 * drives (src/supervision/replica_worker.ts) with the real `CallRouter`
 * (src/python/call_router.ts) between the replica and a scripted worker
 * side: calls and cancels reach the script as the protocol's messages, the
 * script's answers go back as the worker's messages, and the router decides
 * what they mean for each call, as with a real worker. `init` and requests
 * stay pending until the test answers them; every call and signal is recorded.
 * The small tools of in-process tests (a recording logger, sample bytes,
 * holding the event loop) are ./_in_process.ts's, re-exported here. About
 * 400 lines: the worker side of every message a replica sends, one class.
 */
import {
  type BatchCall,
  type CallHandle,
  type CallSink,
  InitFailedError,
  type PredictCall,
  type WorkerExit,
} from "../src/python/worker_process.ts";
import { CallRouter } from "../src/python/call_router.ts";
import {
  type InitMessage,
  type PredictErrorKind,
  PROTOCOL_TABLE,
  PROTOCOL_VERSION,
  type ReadyMessage,
  type ReplyMessage,
  type ServerMessage,
} from "../src/python/protocol.ts";
import type { ReplicaWorker } from "../src/supervision/replica_worker.ts";
import { Emitter, waitUntil } from "../src/supervision/events.ts";
import type { Logger } from "../src/log/logger.ts";
import { Replica, type ReplicaOptions } from "../src/supervision/replica.ts";

export { blockFor, recordingLogger, sample } from "./_in_process.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** One request the worker side holds, waiting for the test's answer. */
export interface PendingPredict {
  readonly id: number;
  readonly sample: string;
}

/** One batch the worker side holds, waiting for the test's answer. */
export interface PendingBatch {
  readonly ids: readonly number[];
  readonly samples: readonly string[];
}

/** How a fake answers `init` unless the test answers it by hand. */
export type InitScript = "ready" | "pending" | { readonly fail: string };

let nextPid = 100_000;

/** A scripted worker. */
export class FakeWorker implements ReplicaWorker {
  readonly pid = nextPid++;
  readonly exited: Promise<WorkerExit>;
  /** Samples of every request the worker side received, in order. */
  readonly samples: string[] = [];
  /** Signals sent with `kill`. */
  readonly signals: Deno.Signal[] = [];
  /** Emits after every call, answer and exit: wait on it with {@link FakeWorker.until}. */
  readonly changes: Emitter<FakeWorker> = new Emitter();
  /** When true, SIGTERM does not end the worker (only SIGKILL does). */
  ignoreSigterm = false;
  /** When set, `shutdown` rejects with this error instead of exiting. */
  shutdownError: Error | undefined;
  shutdowns = 0;
  /** When set, every later request the worker side receives while idle is answered with this value at once. */
  autoAnswer: unknown = undefined;
  /** Calls cancelled (a batch counts once, though a `cancel` goes out per id). */
  cancels = 0;
  /**
   * When true, a cancelled request waiting behind the running one is
   * dropped only when the worker gets to it (after the running one's
   * answer), not at once.
   */
  dropWhenReached = false;
  /** Samples of every batch the worker side received, one list per batch, in order. */
  readonly batches: string[][] = [];
  readonly #router = new CallRouter((message) => this.#receive(message));
  readonly #dropped = new Set<number>();
  #alive = true;
  #exit: WorkerExit | undefined;
  readonly #exited = Promise.withResolvers<WorkerExit>();
  #initPending = false;
  /** Requests the worker side holds, oldest (the running one) first. */
  readonly #predicts: PendingPredict[] = [];
  #batch: PendingBatch | undefined;

  constructor(readonly initScript: InitScript = "ready") {
    this.exited = this.#exited.promise;
  }

  get alive(): boolean {
    return this.#alive;
  }
  get ended(): boolean {
    return this.#exit !== undefined;
  }
  /** The running request (the oldest unanswered), if any. */
  get pending(): PendingPredict | undefined {
    return this.#predicts[0];
  }
  /** Requests the worker side holds: the running one and any sent behind it. */
  get outstanding(): number {
    return this.#predicts.length;
  }
  get initPending(): boolean {
    return this.#initPending;
  }
  /** The batch waiting for an answer, if any. */
  get pendingBatch(): PendingBatch | undefined {
    return this.#batch;
  }

  async init(message: Omit<InitMessage, "type">): Promise<ReadyMessage> {
    if (!this.#alive) throw new Error("Worker is not running");
    const reply = this.#router.init({
      ...message,
      stream_window: message.stream_window ?? PROTOCOL_TABLE.stream_window,
    });
    const script = this.initScript;
    if (script === "ready") this.ready();
    else if (script !== "pending") this.failInit(script.fail);
    this.changes.emit(this);
    const answer = await reply;
    if (answer.type === "ready") return answer;
    if (answer.type === "init_error") throw new InitFailedError(answer.phase, answer.error, answer.traceback);
    throw new Error(`Worker answered init with "${answer.type}"`);
  }

  /** Answers the pending `init` with `ready`. */
  ready(): void {
    this.#takeInit();
    this.#reply({ type: "ready", protocol: PROTOCOL_VERSION, pid: this.pid, python: "3.fake" });
  }

  /** Answers the pending `init` with `init_error` (phase `init`). */
  failInit(message: string): void {
    this.#takeInit();
    this.#reply({ type: "init_error", phase: "init", error: message, traceback: "" });
  }

  /**
   * A request as the replica sends it. Requests sent while one is pending
   * wait behind it, as in the real worker (pipelining); the test answers
   * them in order ({@link FakeWorker.answer}, {@link FakeWorker.failPredict},
   * {@link FakeWorker.cancelled}). Like the real worker, a cancel of a
   * request waiting behind the running one drops it and answers it
   * `cancelled` at once (or when reached, with `dropWhenReached`); a cancel
   * of the running one waits for the test's answer.
   */
  run(sample: Uint8Array, debug: boolean): PredictCall {
    if (this.#batch) throw new Error("Worker is busy with a batch");
    return this.#router.single(sample, debug, this.#gone());
  }

  /** {@link FakeWorker.run} with a sink, as the replica sends requests. */
  runTo(sink: CallSink, sample: Uint8Array, debug: boolean): CallHandle {
    if (this.#batch) throw new Error("Worker is busy with a batch");
    return this.#router.singleTo(sink, sample, debug, this.#gone());
  }

  /**
   * A batch as the replica sends it (server-side batching): answered with
   * {@link FakeWorker.answerBatch}; a cancel is only recorded.
   */
  runBatch(samples: readonly Uint8Array[], debug: boolean): BatchCall {
    if (this.#predicts.length > 0 || this.#batch) throw new Error("Worker is busy: one call at a time");
    return this.#router.batch(samples, debug, this.#gone());
  }

  /**
   * Answers the pending batch: element i of `values` as request i's JSON, or
   * an error of `kind` (default `predict`) for the indexes in `failed`.
   */
  answerBatch(
    values: readonly unknown[],
    failed: Readonly<Record<number, string>> = {},
    kind: PredictErrorKind = "predict",
  ): void {
    const batch = this.#batch;
    if (batch === undefined) throw new Error("No runBatch call is pending");
    this.#batch = undefined;
    batch.ids.forEach((id, i) => {
      const error = failed[i];
      this.#reply(
        error === undefined ? this.#result(id, values[i]) : { type: "error", id, kind, error, traceback: "" },
      );
    });
    this.changes.emit(this);
  }

  /** Answers the pending request the way a worker answers `cancel`. */
  cancelled(): void {
    this.failPredict("cancelled", "the request was cancelled");
  }

  /** Answers the pending request with `value` as JSON. */
  answer(value: unknown): void {
    this.#reply(this.#result(this.#takePredict().id, value));
    this.#reachDropped();
    this.changes.emit(this);
  }

  /** Answers the pending request with an `error` frame (the worker stays usable). */
  failPredict(kind: PredictErrorKind, message: string): void {
    this.#reply({ type: "error", id: this.#takePredict().id, kind, error: message, traceback: "" });
    this.#reachDropped();
    this.changes.emit(this);
  }

  /**
   * The worker's channel ended while the process stays up (a protocol
   * failure): the pending calls fail and the worker is unusable.
   */
  breakChannel(): void {
    this.#alive = false;
    this.#end(new Error("Worker broke the protocol: it closed its control channel but kept running"));
  }

  /** The process ends (crash): pending calls fail, `exited` resolves. */
  exit(code = 1, signal: Deno.Signal | null = null): void {
    if (this.#exit) return;
    this.#alive = false;
    this.#exit = { code, signal };
    this.#end(new Error(`Worker ${signal ? `killed by signal ${signal}` : `exited with code ${code}`}`));
    this.#exited.resolve(this.#exit);
    this.changes.emit(this);
  }

  shutdown(_graceMs: number): Promise<WorkerExit> {
    this.shutdowns++;
    if (this.shutdownError) return Promise.reject(this.shutdownError);
    this.exit(0);
    return this.exited;
  }

  kill(signal: Deno.Signal = "SIGKILL"): void {
    if (this.#exit) return;
    this.signals.push(signal);
    if (signal === "SIGTERM" && this.ignoreSigterm) return;
    this.exit(-1, signal);
  }

  /** Resolves once `check()` is true, checked after each change; rejects after `timeoutMs`. */
  until(check: () => boolean, timeoutMs = 2000): Promise<true> {
    return waitUntil([this.changes], () => check() || undefined, { timeoutMs });
  }

  /** The worker side: a message from the router, as the real worker would read it. */
  #receive(message: ServerMessage): void {
    switch (message.type) {
      case "init":
        this.#initPending = true;
        return;
      case "predict": {
        const sample = decoder.decode(message.sample);
        this.samples.push(sample);
        if (this.autoAnswer !== undefined && this.#predicts.length === 0) {
          this.#reply(this.#result(message.id, this.autoAnswer));
          return;
        }
        this.#predicts.push({ id: message.id, sample });
        this.changes.emit(this);
        return;
      }
      case "predict_batch": {
        const samples = message.samples.map((s) => decoder.decode(s));
        this.batches.push(samples);
        this.#batch = { ids: message.ids, samples };
        this.changes.emit(this);
        return;
      }
      case "cancel":
        this.#cancel(message.id);
        this.changes.emit(this);
        return;
      case "credit":
      case "shutdown":
        return;
    }
  }

  #cancel(id: number): void {
    if (this.#batch !== undefined && this.#batch.ids.includes(id)) {
      if (id === this.#batch.ids[0]) this.cancels++;
      return;
    }
    this.cancels++;
    const at = this.#predicts.findIndex((p) => p.id === id);
    if (at <= 0) return; // running (the test answers it), or answered already
    if (this.dropWhenReached) {
      this.#dropped.add(id);
      return;
    }
    this.#predicts.splice(at, 1);
    this.#reply(this.#cancelledError(id));
  }

  /** The worker reaches the requests behind the one answered: cancelled ones are answered now. */
  #reachDropped(): void {
    while (this.#predicts[0] !== undefined && this.#dropped.delete(this.#predicts[0].id)) {
      this.#reply(this.#cancelledError(this.#predicts.shift()!.id));
    }
  }

  #takeInit(): void {
    if (!this.#initPending) throw new Error("No init call is pending");
    this.#initPending = false;
  }

  #takePredict(): PendingPredict {
    const call = this.#predicts.shift();
    if (call === undefined) throw new Error("No predict call is pending");
    return call;
  }

  /** A message from the worker side, routed as the real worker's would be. */
  #reply(message: ReplyMessage): void {
    this.#router.deliver(message, false);
  }

  #result(id: number, value: unknown): ReplyMessage {
    return { type: "result", id, prediction: encoder.encode(JSON.stringify(value)) };
  }

  #cancelledError(id: number): ReplyMessage {
    return { type: "error", id, kind: "cancelled", error: "the request was cancelled", traceback: "" };
  }

  /** Why calls cannot be sent, or undefined while they can. */
  #gone(): Error | undefined {
    return this.#alive ? undefined : new Error("Worker is not running");
  }

  /** The worker is gone: every call fails with `error`, the worker side forgets its work. */
  #end(error: Error): void {
    this.#initPending = false;
    this.#predicts.length = 0;
    this.#batch = undefined;
    this.#dropped.clear();
    this.#router.failAll(error);
    this.changes.emit(this);
  }
}

/** Spawns {@link FakeWorker}s and keeps them in order; a replica's `spawn`. */
export class FakeSpawner {
  readonly workers: FakeWorker[] = [];
  /** Emits each new worker. */
  readonly spawned: Emitter<FakeWorker> = new Emitter();
  /** How the next workers answer init; shifted per spawn, the last one repeats. */
  readonly scripts: InitScript[];

  constructor(...scripts: InitScript[]) {
    this.scripts = scripts.length > 0 ? scripts : ["ready"];
  }

  readonly spawn = (_onLog: (line: string) => void): FakeWorker => {
    const script = this.scripts.length > 1 ? this.scripts.shift()! : this.scripts[0]!;
    const worker = new FakeWorker(script);
    this.workers.push(worker);
    this.spawned.emit(worker);
    return worker;
  };

  /** The latest worker. */
  get last(): FakeWorker {
    const worker = this.workers.at(-1);
    if (worker === undefined) throw new Error("No worker spawned yet");
    return worker;
  }

  /** Resolves with the `n`-th worker (1-based) once it was spawned. */
  nth(n: number, timeoutMs = 2000): Promise<FakeWorker> {
    return waitUntil([this.spawned], () => this.workers[n - 1], { timeoutMs });
  }
}

/**
 * A replica on a {@link FakeSpawner} with fast test settings (50 ms kill
 * grace, 1–5 ms backoff); `overrides` changes any of them.
 */
export function fakeReplica(
  spawner: FakeSpawner,
  logger: Logger,
  overrides: Partial<ReplicaOptions> = {},
): Replica {
  return new Replica({
    api: "api",
    index: 0,
    spawn: spawner.spawn,
    init: {} as never,
    initTimeoutMs: undefined,
    killGraceMs: 50,
    cancelGraceMs: 20,
    backoff: { initialMs: 1, maxMs: 5, resetAfterMs: 60_000 },
    memBytes: undefined,
    memText: undefined,
    logger,
    ...overrides,
  });
}
