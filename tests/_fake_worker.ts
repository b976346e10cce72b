/**
 * A worker the test scripts, for in-process tests of supervision (replica,
 * pool, deployment, reloader, autoscale). It implements the seam a replica
 * drives (src/supervision/replica_worker.ts) with the same failure contract
 * as the real `WorkerProcess`: `init` and `predict` calls stay pending until
 * the test answers them, and every call and signal is recorded.
 */
import {
  type BatchCall,
  type BatchOutcome,
  type CallEnd,
  InitFailedError,
  type PredictAnswer,
  type PredictCall,
  PredictFailedError,
  type WorkerExit,
} from "../src/python/worker_process.ts";
import type { InitMessage, PredictErrorKind, ReadyMessage } from "../src/python/protocol.ts";
import type { ReplicaWorker } from "../src/supervision/replica_worker.ts";
import { Emitter, waitUntil } from "../src/supervision/events.ts";
import { Logger } from "../src/log/logger.ts";
import { Replica, type ReplicaOptions } from "../src/supervision/replica.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** One `predict` call waiting for the test's answer. */
export interface PendingPredict {
  readonly sample: string;
  readonly resolve: (value: Uint8Array) => void;
  readonly reject: (error: Error) => void;
}

/** One `runBatch` call waiting for the test's answer. */
export interface PendingBatch {
  readonly samples: readonly string[];
  readonly resolve: (value: BatchOutcome[]) => void;
  readonly reject: (error: Error) => void;
}

/** How a fake answers `init` unless the test answers it by hand. */
export type InitScript = "ready" | "pending" | { readonly fail: string };

let nextPid = 100_000;

/** A scripted worker. */
export class FakeWorker implements ReplicaWorker {
  readonly pid = nextPid++;
  readonly exited: Promise<WorkerExit>;
  /** Samples of every predict call, in order. */
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
  /** When set, every later predict is answered with this value at once. */
  autoAnswer: unknown = undefined;
  /** `cancel` calls received. */
  cancels = 0;
  /**
   * When true, a cancelled call waiting behind the running one is dropped
   * only when the worker gets to it (after the running one's answer), not
   * at once.
   */
  dropWhenReached = false;
  readonly #dropped = new Set<PendingPredict>();
  #nextId = 1;
  #alive = true;
  #exit: WorkerExit | undefined;
  readonly #exited = Promise.withResolvers<WorkerExit>();
  #init: { resolve: (m: ReadyMessage) => void; reject: (e: Error) => void } | undefined;
  /** Predict calls waiting for an answer, oldest (the running one) first. */
  readonly #predicts: PendingPredict[] = [];
  #batch: PendingBatch | undefined;
  /** Samples of every runBatch call, one list per call, in order. */
  readonly batches: string[][] = [];

  constructor(readonly initScript: InitScript = "ready") {
    this.exited = this.#exited.promise;
  }

  get alive(): boolean {
    return this.#alive;
  }
  get ended(): boolean {
    return this.#exit !== undefined;
  }
  /** The running predict call (the oldest unanswered), if any. */
  get pending(): PendingPredict | undefined {
    return this.#predicts[0];
  }
  /** Predict calls sent and not answered: the running one and any sent behind it. */
  get outstanding(): number {
    return this.#predicts.length;
  }
  get initPending(): boolean {
    return this.#init !== undefined;
  }

  init(_message: Omit<InitMessage, "type">): Promise<ReadyMessage> {
    if (!this.#alive) return Promise.reject(new Error("Worker is not running"));
    const script = this.initScript;
    const reply = new Promise<ReadyMessage>((resolve, reject) => this.#init = { resolve, reject });
    if (script === "ready") this.ready();
    else if (script !== "pending") this.failInit(script.fail);
    this.changes.emit(this);
    return reply;
  }

  /** Answers the pending `init` with `ready`. */
  ready(): void {
    const init = this.#take("init");
    init.resolve({ type: "ready", protocol: 1, pid: this.pid, python: "3.fake" });
  }

  /** Answers the pending `init` with `init_error`. */
  failInit(message: string): void {
    this.#take("init").reject(new InitFailedError("init", message, ""));
  }

  /**
   * One predict call. Calls sent while one is pending wait behind it, as in
   * the real worker (pipelining); the test answers them in order.
   */
  predict(sample: Uint8Array, _debug: boolean): Promise<Uint8Array> {
    return this.#enqueue(sample).reply;
  }

  #enqueue(sample: Uint8Array): { reply: Promise<Uint8Array>; call: PendingPredict | undefined } {
    if (this.#batch) throw new Error("Worker is busy with a batch");
    if (!this.#alive) return { reply: Promise.reject(new Error("Worker is not running")), call: undefined };
    const text = decoder.decode(sample);
    this.samples.push(text);
    if (this.autoAnswer !== undefined && this.#predicts.length === 0) {
      return { reply: Promise.resolve(encoder.encode(JSON.stringify(this.autoAnswer))), call: undefined };
    }
    let call: PendingPredict | undefined;
    const reply = new Promise<Uint8Array>((resolve, reject) => {
      call = { sample: text, resolve, reject };
    });
    this.#predicts.push(call!);
    this.changes.emit(this);
    return { reply, call };
  }

  /**
   * A request as the replica sends it: answered through the pending predict
   * ({@link FakeWorker.answer}, {@link FakeWorker.failPredict},
   * {@link FakeWorker.cancelled}). `cancel` is recorded; like the real
   * worker, a cancel of a call waiting behind the running one drops it and
   * answers it `cancelled` at once.
   */
  run(sample: Uint8Array, _debug: boolean): PredictCall {
    const finished = Promise.withResolvers<CallEnd>();
    const sent = this.#enqueue(sample);
    const answer = sent.reply.then((body): PredictAnswer => ({ type: "body", body }));
    answer.then(
      () => finished.resolve("answered"),
      (error) =>
        finished.resolve(
          !(error instanceof PredictFailedError)
            ? "lost"
            : error.kind === "cancelled"
            ? "cancelled"
            : "answered",
        ),
    );
    return {
      id: this.#nextId++,
      answer,
      finished: finished.promise,
      cancel: () => {
        this.cancels++;
        const at = sent.call === undefined ? -1 : this.#predicts.indexOf(sent.call);
        if (at > 0 && this.dropWhenReached) {
          this.#dropped.add(sent.call!);
        } else if (at > 0) {
          this.#predicts.splice(at, 1);
          sent.call!.reject(new PredictFailedError("cancelled", "the request was cancelled", ""));
        }
        this.changes.emit(this);
      },
    };
  }

  /** The runBatch call waiting for an answer, if any. */
  get pendingBatch(): PendingBatch | undefined {
    return this.#batch;
  }

  /**
   * A batch as the replica sends it (server-side batching): answered with
   * {@link FakeWorker.answerBatch}; `cancel` is only recorded.
   */
  runBatch(samples: readonly Uint8Array[], _debug: boolean): BatchCall {
    if (this.#predicts.length > 0 || this.#batch) throw new Error("Worker is busy: one call at a time");
    const ids = samples.map(() => this.#nextId++);
    const finished = Promise.withResolvers<CallEnd>();
    let outcomes: Promise<BatchOutcome[]>;
    if (!this.#alive) {
      outcomes = Promise.reject(new Error("Worker is not running"));
    } else {
      const texts = samples.map((s) => decoder.decode(s));
      this.batches.push(texts);
      outcomes = new Promise<BatchOutcome[]>((resolve, reject) => {
        this.#batch = { samples: texts, resolve, reject };
      });
    }
    outcomes.then(
      (all) =>
        finished.resolve(all.every((o) => !o.ok && o.error.kind === "cancelled") ? "cancelled" : "answered"),
      () => finished.resolve("lost"),
    );
    this.changes.emit(this);
    return {
      ids,
      outcomes,
      finished: finished.promise,
      cancel: () => {
        this.cancels++;
        this.changes.emit(this);
      },
    };
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
    const call = this.#batch;
    if (call === undefined) throw new Error("No runBatch call is pending");
    this.#batch = undefined;
    call.resolve(values.map((value, i): BatchOutcome => {
      const error = failed[i];
      if (error !== undefined) return { ok: false, error: new PredictFailedError(kind, error, "") };
      return { ok: true, body: encoder.encode(JSON.stringify(value)) };
    }));
    this.changes.emit(this);
  }

  /** Answers the pending predict the way a worker answers `cancel`. */
  cancelled(): void {
    this.failPredict("cancelled", "the request was cancelled");
  }

  /** Answers the pending predict with `value` as JSON. */
  answer(value: unknown): void {
    const call = this.#take("predict");
    call.resolve(encoder.encode(JSON.stringify(value)));
    this.changes.emit(this);
  }

  /** Answers the pending predict with an `error` frame (the worker stays usable). */
  failPredict(kind: PredictErrorKind, message: string): void {
    this.#take("predict").reject(new PredictFailedError(kind, message, ""));
    this.changes.emit(this);
  }

  /**
   * The worker's channel ended while the process stays up (a protocol
   * failure): the pending call fails and the worker is unusable.
   */
  breakChannel(): void {
    this.#alive = false;
    const error = new Error("Worker broke the protocol: it closed its control channel but kept running");
    this.#init?.reject(error);
    for (const call of this.#predicts.splice(0)) call.reject(error);
    this.#batch?.reject(error);
    this.#init = undefined;
    this.#batch = undefined;
    this.changes.emit(this);
  }

  /** The process ends (crash): pending calls fail, `exited` resolves. */
  exit(code = 1, signal: Deno.Signal | null = null): void {
    if (this.#exit) return;
    this.#alive = false;
    this.#exit = { code, signal };
    const error = new Error(`Worker ${signal ? `killed by signal ${signal}` : `exited with code ${code}`}`);
    this.#init?.reject(error);
    for (const call of this.#predicts.splice(0)) call.reject(error);
    this.#batch?.reject(error);
    this.#init = undefined;
    this.#batch = undefined;
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

  #take(kind: "init"): { resolve: (m: ReadyMessage) => void; reject: (e: Error) => void };
  #take(kind: "predict"): PendingPredict;
  #take(kind: "init" | "predict") {
    const call = kind === "init" ? this.#init : this.#predicts[0];
    if (call === undefined) throw new Error(`No ${kind} call is pending`);
    if (kind === "init") this.#init = undefined;
    else this.#predicts.shift();
    // The worker reaches the calls behind: cancelled ones are answered now.
    while (this.#predicts[0] !== undefined && this.#dropped.delete(this.#predicts[0])) {
      this.#predicts.shift()!.reject(new PredictFailedError("cancelled", "the request was cancelled", ""));
    }
    return call;
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

/** A JSON-lines logger whose records the test reads. */
export function recordingLogger(level: "debug" | "info" = "debug"): {
  logger: Logger;
  records: Record<string, unknown>[];
} {
  const records: Record<string, unknown>[] = [];
  const logger = new Logger({
    format: "json",
    level,
    sink: (line) => records.push(JSON.parse(line)),
  });
  return { logger, records };
}

/** Sample bytes for `value`. */
export function sample(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

/** Busy-waits `ms` without yielding: timers cannot fire meanwhile (deterministic overdue deadlines). */
export function blockFor(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // Hold the event loop.
  }
}
