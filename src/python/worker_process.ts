/**
 * One Python worker child: spawning, the handshake, requests routed by id
 * (single, streamed or batched; see ./protocol.ts), cancellation, and how it
 * ended. Knows nothing about restarts or queues; see
 * src/supervision/replica.ts for supervision.
 */
import { dirname, join } from "node:path";
import { ChannelListener, readPayloads, writeAll } from "./channel.ts";
import {
  decodeMessage,
  encodeMessageFrame,
  type InitMessage,
  type InitPhase,
  type PredictErrorKind,
  ProtocolError,
  type ReadyMessage,
  type ServerMessage,
  type WorkerMessage,
} from "./protocol.ts";
import { readLines } from "./log_lines.ts";
import { PredictStream } from "./predict_stream.ts";

export { PredictStream };

/** How a worker process ended. */
export interface WorkerExit {
  readonly code: number;
  readonly signal: Deno.Signal | null;
}

/** Describes an exit for people: `exit code 3` or `signal SIGKILL`. */
export function describeExit(exit: WorkerExit): string {
  return exit.signal !== null ? `killed by signal ${exit.signal}` : `exited with code ${exit.code}`;
}

/** The worker ended (or broke the protocol) while a call was waiting for it. */
export class WorkerExitedError extends Error {
  readonly code = "WORKER_EXITED";
  readonly exit: WorkerExit | undefined;
  constructor(message: string, exit: WorkerExit | undefined) {
    super(message);
    this.name = "WorkerExitedError";
    this.exit = exit;
  }
}

/** Importing, checking or initialising the user's code failed. */
export class InitFailedError extends Error {
  readonly code = "INIT_FAILED";
  readonly phase: InitPhase;
  readonly traceback: string;
  constructor(phase: InitPhase, message: string, traceback: string) {
    super(message);
    this.name = "InitFailedError";
    this.phase = phase;
    this.traceback = traceback;
  }
}

/** The user's `predict` (or a hook, or serialization) failed for one request. */
export class PredictFailedError extends Error {
  readonly code = "PREDICT_FAILED";
  readonly kind: PredictErrorKind;
  readonly traceback: string;
  constructor(kind: PredictErrorKind, message: string, traceback: string) {
    super(message);
    this.name = "PredictFailedError";
    this.kind = kind;
    this.traceback = traceback;
  }
}

/** What a worker needs to start. */
export interface WorkerSpawnOptions {
  readonly python: string;
  /** Path of worker.py as written to the state directory. */
  readonly workerPath: string;
  /** Working directory: the staged project. */
  readonly cwd: string;
  readonly env: Readonly<Record<string, string>>;
  readonly maxFrameBytes: number;
  /** Receives each line the worker writes to stderr or fd 1. */
  readonly onLog: (line: string) => void;
  /** Cap on one log line, in characters. */
  readonly maxLogLineChars?: number;
}

/** After the process ended, how long its output pipes may take to close. */
const STREAM_DRAIN_MS = 1000;
/**
 * After the control channel ended, how long the process may take to exit
 * before the end of the channel counts as a protocol violation (a worker
 * that closed its channel but kept running).
 */
const CHANNEL_END_GRACE_MS = 500;

/** Waits for `promise`, at most `ms` milliseconds. */
async function settleWithin(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([promise, new Promise((resolve) => timer = setTimeout(resolve, ms))]);
  clearTimeout(timer);
}

/**
 * Signals the process group the worker leads (worker.py calls setpgid at
 * start); false when there is none (yet), e.g. before the worker got there.
 */
function signalGroup(pid: number, signal: Deno.Signal): boolean {
  try {
    Deno.kill(-pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** How the worker finished with a request: answered, cancelled, or lost with the worker. */
export type CallEnd = "answered" | "cancelled" | "lost";

/** The first answer to a request: one JSON body, or a stream of JSON items. */
export type PredictAnswer =
  | { readonly type: "body"; readonly body: Uint8Array }
  | { readonly type: "stream"; readonly stream: PredictStream };

/** A request sent to the worker. */
export interface PredictCall {
  readonly id: number;
  /**
   * Settles with the first answer (a body, or a stream whose items follow);
   * rejects with PredictFailedError (kind `cancelled` after a cancel),
   * WorkerExitedError or ProtocolError.
   */
  readonly answer: Promise<PredictAnswer>;
  /**
   * Resolves when the worker is done with the request: the answer, the end
   * of the stream, an error, or the worker's end (`lost`). Never rejects.
   */
  readonly finished: Promise<CallEnd>;
  /** Sends `cancel` (once); nothing happens after the request finished. */
  cancel(): void;
}

/** The answer to one request of a batch. */
export type BatchOutcome =
  | { readonly ok: true; readonly body: Uint8Array }
  | { readonly ok: false; readonly error: PredictFailedError };

/** A batch sent to the worker (one `predict_batch` frame). */
export interface BatchCall {
  /** The request ids, one per sample, in order. */
  readonly ids: readonly number[];
  /**
   * One outcome per sample, in order, once every id is answered; rejects
   * with WorkerExitedError or ProtocolError when the worker ended or broke
   * the protocol before that (every request of the batch is lost).
   */
  readonly outcomes: Promise<BatchOutcome[]>;
  /** Like {@link PredictCall.finished}: `cancelled` when every id was. */
  readonly finished: Promise<CallEnd>;
  /**
   * Cancels the whole batch (sends `cancel` for its first id). A batch
   * serves several clients: call it only once every one of them is gone.
   */
  cancel(): void;
}

/** Routing state of one outstanding request or batch, by id. */
interface SingleRoute {
  readonly kind: "single";
  readonly id: number;
  readonly answer: PromiseWithResolvers<PredictAnswer>;
  readonly finished: PromiseWithResolvers<CallEnd>;
  stream: PredictStream | undefined;
  cancelled: boolean;
}

interface BatchRoute {
  readonly kind: "batch";
  readonly ids: readonly number[];
  readonly outcomes: (BatchOutcome | undefined)[];
  readonly done: PromiseWithResolvers<BatchOutcome[]>;
  readonly finished: PromiseWithResolvers<CallEnd>;
  left: number;
  cancelled: boolean;
}

interface InitRoute {
  readonly kind: "init";
  readonly reply: PromiseWithResolvers<WorkerMessage>;
}

type Route = SingleRoute | BatchRoute | InitRoute;

/**
 * A running worker: `init` once, then any number of requests, each routed
 * by id. Requests may be sent before earlier ones are answered (the worker
 * runs them one at a time, in order); a replica decides how many to have
 * outstanding.
 */
export class WorkerProcess {
  readonly pid: number;
  /** Resolves when the process has ended and its output is drained. */
  readonly exited: Promise<WorkerExit>;
  readonly #child: Deno.ChildProcess;
  /** The control channel once the worker connected; undefined if it never did. */
  readonly #conn: Promise<Deno.UnixConn | undefined>;
  readonly #maxFrame: number;
  /** Outstanding requests by id (0 is `init`); a batch is there under each of its ids. */
  readonly #routes = new Map<number, Route>();
  /** Frames waiting to be written, in order; one writer drains them so frames never interleave. */
  readonly #outbox: Uint8Array[] = [];
  /** The running drain of `#outbox`, if any. */
  #writing: Promise<void> | undefined;
  #window = 1;
  #nextId = 1;
  #failure: Error | undefined;
  #exit: WorkerExit | undefined;
  /** Set once the process has ended (before its output is drained). */
  #ended = false;
  /** Set once `shutdown` was sent: the channel is expected to end. */
  #shuttingDown = false;

  private constructor(child: Deno.ChildProcess, channel: ChannelListener, options: WorkerSpawnOptions) {
    this.#child = child;
    this.pid = child.pid;
    this.#maxFrame = options.maxFrameBytes;
    this.#conn = channel.accept(child.status);
    void child.status.then(() => this.#ended = true);
    const reading = this.#conn.then((conn) => conn && this.#readFrames(conn, child.status));
    const logging = readLines(child.stderr, options.onLog, options.maxLogLineChars)
      .catch(() => {});
    this.exited = child.status.then(async (status) => {
      // Processes user code started die with the worker (it leads its own group).
      signalGroup(child.pid, "SIGKILL");
      // Output still in the pipes arrives within moments; a grandchild that
      // inherited them may hold them open much longer, so stop waiting then.
      await settleWithin(Promise.all([reading, logging]), STREAM_DRAIN_MS);
      this.#exit = { code: status.code, signal: status.signal };
      this.#fail(this.#failure ?? new WorkerExitedError(`Worker ${describeExit(this.#exit)}`, this.#exit));
      return this.#exit;
    });
  }

  /** Starts the Python child. Throws `Deno.errors.NotFound` if `python` is missing. */
  static spawn(options: WorkerSpawnOptions): WorkerProcess {
    // The channel's socket sits beside worker.py, in the owner-only state directory.
    const channel = ChannelListener.open(join(dirname(options.workerPath), "run"));
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(options.python, {
        args: [
          options.workerPath,
          "--max-frame",
          String(options.maxFrameBytes),
          "--channel",
          channel.path,
        ],
        cwd: options.cwd,
        env: options.env,
        clearEnv: true,
        stdin: "null",
        stdout: "null",
        stderr: "piped",
      }).spawn();
    } catch (error) {
      channel.close();
      throw error;
    }
    return new WorkerProcess(child, channel, options);
  }

  /** True until the process exits or breaks the protocol. */
  get alive(): boolean {
    return this.#failure === undefined && this.#exit === undefined;
  }

  /** Requests (batch members included) sent and not yet finished. */
  get outstanding(): number {
    let n = 0;
    for (const route of this.#routes.values()) if (route.kind !== "init") n++;
    return n;
  }

  /** Sends `init` and waits for `ready`; rejects with InitFailedError or WorkerExitedError. */
  async init(message: Omit<InitMessage, "type">): Promise<ReadyMessage> {
    this.#checkRunning();
    if (this.#routes.has(0)) throw new Error("Worker init is already running");
    this.#window = message.stream_window;
    const route: InitRoute = { kind: "init", reply: Promise.withResolvers() };
    this.#routes.set(0, route);
    this.#send({ type: "init", ...message });
    const reply = await route.reply.promise;
    if (reply.type === "ready") return reply;
    if (reply.type === "init_error") {
      throw new InitFailedError(reply.phase, reply.error, reply.traceback);
    }
    throw this.#violation(`Worker answered init with "${reply.type}"`);
  }

  /**
   * Sends one request. The answer is a body, or a {@link PredictStream} when
   * the user's `predict` returned a generator or iterator.
   */
  run(sample: Uint8Array, debug: boolean): PredictCall {
    const id = this.#nextId++;
    const route: SingleRoute = {
      kind: "single",
      id,
      answer: Promise.withResolvers(),
      finished: Promise.withResolvers(),
      stream: undefined,
      cancelled: false,
    };
    route.answer.promise.catch(() => {}); // a caller may only watch `finished`
    if (this.#admit(route, [id])) this.#sendRequest(route, [id], { type: "predict", id, sample, debug });
    return {
      id,
      answer: route.answer.promise,
      finished: route.finished.promise,
      cancel: () => this.#cancel(route, id),
    };
  }

  /**
   * Runs one prediction and resolves with its JSON; a streamed answer is
   * collected into a JSON array of its items. Rejects with
   * PredictFailedError, WorkerExitedError or ProtocolError.
   */
  async predict(sample: Uint8Array, debug: boolean): Promise<Uint8Array> {
    const answer = await this.run(sample, debug).answer;
    if (answer.type === "body") return answer.body;
    const items: Uint8Array[] = [];
    for await (const item of answer.stream) items.push(item);
    return joinJsonArray(items);
  }

  /**
   * Sends one `predict_batch`: the user's `predict` gets the samples as one
   * list. Each sample gets its own outcome; see {@link BatchCall}.
   */
  runBatch(samples: readonly Uint8Array[], debug: boolean): BatchCall {
    if (samples.length === 0) throw new RangeError("A batch needs at least one sample");
    const ids = samples.map(() => this.#nextId++);
    const route: BatchRoute = {
      kind: "batch",
      ids,
      outcomes: ids.map(() => undefined),
      done: Promise.withResolvers(),
      finished: Promise.withResolvers(),
      left: ids.length,
      cancelled: false,
    };
    route.done.promise.catch(() => {});
    if (this.#admit(route, ids)) {
      this.#sendRequest(route, ids, { type: "predict_batch", ids, samples, debug });
    }
    return {
      ids,
      outcomes: route.done.promise,
      finished: route.finished.promise,
      cancel: () => this.#cancel(route, ids[0]!),
    };
  }

  /**
   * Runs one batch: resolves with one outcome per sample, in order (a
   * request's PredictFailedError is its outcome, not a rejection). Rejects
   * with WorkerExitedError or ProtocolError when the worker died or broke
   * the protocol before answering every sample.
   */
  predictBatch(samples: readonly Uint8Array[], debug: boolean): Promise<BatchOutcome[]> {
    return this.runBatch(samples, debug).outcomes;
  }

  /** Asks the worker to exit; kills it if it is still there after `graceMs`. */
  async shutdown(graceMs: number): Promise<WorkerExit> {
    if (this.#exit) return this.#exit;
    this.#shuttingDown = true;
    this.#send({ type: "shutdown" });
    await this.#writing?.catch(() => {});
    await (await this.#conn)?.closeWrite().catch(() => {});
    const timer = setTimeout(() => this.kill("SIGKILL"), graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Sends a signal to the worker and what it started; ignores a process that is already gone. */
  kill(signal: Deno.Signal = "SIGKILL"): void {
    if (this.#exit) return;
    if (signalGroup(this.pid, signal)) return;
    try {
      this.#child.kill(signal);
    } catch {
      // Already exited.
    }
  }

  #checkRunning(): void {
    if (this.#failure ?? this.#exit) {
      throw this.#failure ?? new WorkerExitedError("Worker is not running", this.#exit);
    }
  }

  /** Registers a request's route; false (and the route failed) when the worker is gone. */
  #admit(route: SingleRoute | BatchRoute, ids: readonly number[]): boolean {
    if (this.#failure ?? this.#exit) {
      this.#settleRoute(route, this.#failure ?? new WorkerExitedError("Worker is not running", this.#exit));
      return false;
    }
    for (const id of ids) this.#routes.set(id, route);
    return true;
  }

  /** Sends a request; one that cannot be framed (too large) fails alone. */
  #sendRequest(route: SingleRoute | BatchRoute, ids: readonly number[], message: ServerMessage): void {
    try {
      this.#send(message);
    } catch (error) {
      for (const id of ids) this.#routes.delete(id);
      this.#settleRoute(route, error instanceof Error ? error : new Error(String(error)));
    }
  }

  #cancel(route: SingleRoute | BatchRoute, id: number): void {
    if (route.cancelled || !this.#routes.has(id)) return;
    route.cancelled = true;
    this.#send({ type: "cancel", id });
  }

  /**
   * Queues a frame for writing; a write to a dead worker is dropped (its exit
   * fails the calls).
   *
   * @throws {import("./codec.ts").FrameError} when the frame is too large
   */
  #send(message: ServerMessage): void {
    this.#outbox.push(encodeMessageFrame(message, this.#maxFrame));
    this.#writing ??= this.#drain();
  }

  /** Writes queued frames until none is left; a dead worker's are dropped (its exit fails the calls). */
  async #drain(): Promise<void> {
    try {
      const conn = await this.#conn;
      while (this.#outbox.length > 0) {
        const frame = this.#outbox.shift()!;
        if (conn !== undefined) await writeAll(conn, frame);
      }
    } catch {
      this.#outbox.length = 0;
    } finally {
      this.#writing = undefined;
    }
  }

  async #readFrames(conn: Deno.UnixConn, ended: Promise<unknown>): Promise<void> {
    try {
      await readPayloads(conn, this.#maxFrame, (payload, transient) => {
        this.#deliver(decodeMessage(payload), transient);
      });
    } catch (error) {
      this.#violation(error instanceof Error ? error.message : String(error));
      return;
    } finally {
      conn.close();
    }
    // End of the channel: normal when the worker exits (it is about to, or
    // was told to); a worker still running a moment later is unusable.
    if (this.#shuttingDown || this.#failure !== undefined) return;
    await settleWithin(ended, CHANNEL_END_GRACE_MS);
    if (!this.#ended && !this.#shuttingDown) {
      this.#violation("it closed its control channel but kept running");
    }
  }

  /** Routes one message; `transient` bytes are copied before they are kept. */
  #deliver(message: WorkerMessage, transient: boolean): void {
    const id = message.type === "ready" || message.type === "init_error" ? 0 : message.id;
    const route = this.#routes.get(id);
    if (route === undefined) {
      const expected = [...this.#routes.keys()].join(" or ") || "nothing";
      throw new ProtocolError(`Worker sent "${message.type}" for request ${id}, expected ${expected}`);
    }
    if (route.kind === "init") {
      this.#routes.delete(0);
      route.reply.resolve(message);
    } else if (route.kind === "single") {
      this.#deliverSingle(route, message, transient);
    } else {
      this.#deliverBatch(route, id, message, transient);
    }
  }

  #deliverSingle(route: SingleRoute, message: WorkerMessage, transient: boolean): void {
    const copy = (bytes: Uint8Array) => transient ? bytes.slice() : bytes;
    switch (message.type) {
      case "result":
        if (route.stream) throw new ProtocolError(`Worker sent "result" inside stream ${route.id}`);
        this.#routes.delete(route.id);
        route.answer.resolve({ type: "body", body: copy(message.prediction) });
        route.finished.resolve("answered");
        return;
      case "item":
      case "end": {
        const stream = route.stream ?? this.#openStream(route);
        if (message.type === "item") {
          if (!stream.push(copy(message.value))) {
            throw new ProtocolError(
              `Worker sent more than ${this.#window} unacknowledged items on stream ${route.id}`,
            );
          }
          return;
        }
        if (message.items !== stream.received) {
          throw new ProtocolError(
            `Worker ended stream ${route.id} at ${message.items} items, sent ${stream.received}`,
          );
        }
        this.#routes.delete(route.id);
        stream.end();
        route.finished.resolve(route.cancelled ? "cancelled" : "answered");
        return;
      }
      case "error": {
        this.#routes.delete(route.id);
        const error = new PredictFailedError(message.kind, message.error, message.traceback);
        if (route.stream) route.stream.end(error);
        else route.answer.reject(error);
        route.finished.resolve(message.kind === "cancelled" ? "cancelled" : "answered");
        return;
      }
      default:
        throw new ProtocolError(`Worker sent "${message.type}" for request ${route.id}`);
    }
  }

  #openStream(route: SingleRoute): PredictStream {
    const stream = new PredictStream({
      credit: (n) => {
        if (this.#routes.get(route.id) === route) this.#send({ type: "credit", id: route.id, n });
      },
      cancel: () => this.#cancel(route, route.id),
    }, this.#window);
    route.stream = stream;
    route.answer.resolve({ type: "stream", stream });
    return stream;
  }

  #deliverBatch(route: BatchRoute, id: number, message: WorkerMessage, transient: boolean): void {
    const at = route.ids.indexOf(id);
    if (message.type === "result") {
      route.outcomes[at] = { ok: true, body: transient ? message.prediction.slice() : message.prediction };
    } else if (message.type === "error") {
      route.outcomes[at] = {
        ok: false,
        error: new PredictFailedError(message.kind, message.error, message.traceback),
      };
    } else {
      throw new ProtocolError(`Worker sent "${message.type}" for request ${id} of a batch`);
    }
    this.#routes.delete(id);
    if (--route.left > 0) return;
    const outcomes = route.outcomes as BatchOutcome[];
    route.done.resolve(outcomes);
    const allCancelled = outcomes.every((o) => !o.ok && o.error.kind === "cancelled");
    route.finished.resolve(allCancelled ? "cancelled" : "answered");
  }

  /** Records a protocol violation, kills the worker, fails the outstanding calls. */
  #violation(detail: string): ProtocolError {
    const error = new ProtocolError(`Worker broke the protocol: ${detail}`);
    this.#failure ??= error;
    this.kill("SIGKILL");
    this.#fail(error);
    return error;
  }

  /** Fails every outstanding call with `error`. */
  #fail(error: Error): void {
    const routes = new Set(this.#routes.values());
    this.#routes.clear();
    for (const route of routes) {
      if (route.kind === "init") route.reply.reject(error);
      else this.#settleRoute(route, error);
    }
  }

  #settleRoute(route: SingleRoute | BatchRoute, error: Error): void {
    if (route.kind === "single") {
      if (route.stream) route.stream.end(error);
      else route.answer.reject(error);
    } else {
      route.done.reject(error);
    }
    route.finished.resolve("lost");
  }
}

const COMMA = new Uint8Array([0x2c]);

/** `[item,item,...]` from JSON items. */
function joinJsonArray(items: readonly Uint8Array[]): Uint8Array {
  const parts: Uint8Array[] = [new Uint8Array([0x5b])];
  items.forEach((item, i) => parts.push(...(i === 0 ? [item] : [COMMA, item])));
  parts.push(new Uint8Array([0x5d]));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.byteLength;
  }
  return out;
}
