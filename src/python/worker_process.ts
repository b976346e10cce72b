/**
 * One Python worker child: spawning, the handshake, requests routed by id
 * (single, streamed or batched; see ./protocol.ts), cancellation, and how it
 * ended. Knows nothing about restarts or queues; see
 * src/supervision/replica.ts for supervision.
 */
import { dirname, join } from "node:path";
import { ChannelListener, readPayloads, type WorkerConns, writeAll } from "./channel.ts";
import {
  decodeMessage,
  encodeMessageFrame,
  type InitMessage,
  type ModelMessage,
  PROTOCOL_VERSION,
  ProtocolError,
  type ReadyMessage,
  type ServerMessage,
  type WorkerMessage,
} from "./protocol.ts";
import { TimingsTracker } from "./worker_timings.ts";
import { readLines } from "./log_lines.ts";
import {
  type BatchCall,
  type CallHandle,
  CallRouter,
  type CallSink,
  type PredictCall,
} from "./call_router.ts";
import { describeExit, InitFailedError, type WorkerExit, WorkerExitedError } from "./worker_errors.ts";

export { PredictStream } from "./predict_stream.ts";
export type {
  BatchCall,
  BatchOutcome,
  CallEnd,
  CallHandle,
  CallSink,
  PredictAnswer,
  PredictCall,
} from "./call_router.ts";
export {
  describeExit,
  InitFailedError,
  PredictFailedError,
  type WorkerExit,
  WorkerExitedError,
} from "./worker_errors.ts";

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
  /** Receives the worker's `model` events (multi-model APIs). */
  readonly onModel?: ((event: ModelMessage) => void) | undefined;
  /** Ask the worker for each request's timings (`serve --latency-breakdown`, ./worker_timings.ts). */
  readonly timings?: boolean;
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
  /** The control channels once the worker connected; undefined if it never did. */
  readonly #conns: Promise<WorkerConns | undefined>;
  /** The main channel once the worker connected: written without waiting on `#conns`. */
  #main: Deno.UnixConn | undefined;
  readonly #maxFrame: number;
  readonly #onModel: ((event: ModelMessage) => void) | undefined;
  /** Outstanding calls, by request id. */
  readonly #calls: CallRouter;
  /** Decodes the worker's payloads: with timings asked for, through the tracker. */
  readonly #decode: (payload: Uint8Array) => WorkerMessage;
  /** Frames waiting to be written, in order; one writer drains them so frames never interleave. */
  readonly #outbox: Uint8Array[] = [];
  /** The running drain of `#outbox`, if any. */
  #writing: Promise<void> | undefined;
  /** The last `cancel` written (or failed) on the cancel channel; cancels go out in order. */
  #cancelling: Promise<void> = Promise.resolve();
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
    this.#onModel = options.onModel;
    // With the breakdown off the hot path has no check of it: the choice is made here.
    const timings = options.timings === true ? new TimingsTracker() : undefined;
    this.#calls = new CallRouter(
      timings === undefined
        ? (message) => this.#send(message)
        : (message) => this.#sendTimed(message, timings),
    );
    this.#decode = timings === undefined ? decodeMessage : (payload) => timings.decode(payload);
    this.#conns = channel.accept(child.status);
    void child.status.then(() => this.#ended = true);
    const reading = this.#conns.then((conns) => {
      if (conns === undefined) return;
      this.#main = conns.main;
      // Nothing comes back on the cancel channel; it closes with the worker.
      void child.status.then(() => {
        try {
          conns.cancel.close();
        } catch {
          // Already closed.
        }
      });
      return this.#readFrames(conns.main, child.status);
    });
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

  /**
   * Sends `init` and waits for `ready`; rejects with InitFailedError (phase
   * `protocol` when the worker speaks another protocol version; it is then
   * killed) or WorkerExitedError.
   */
  async init(message: Omit<InitMessage, "type">): Promise<ReadyMessage> {
    const gone = this.#gone();
    if (gone !== undefined) throw gone;
    const reply = await this.#calls.init(message);
    if (reply.type === "ready") {
      if (reply.protocol === PROTOCOL_VERSION) return reply;
      this.kill("SIGKILL");
      throw new InitFailedError(
        "protocol",
        `the worker speaks protocol ${reply.protocol}, this server ${PROTOCOL_VERSION}: ` +
          "use the worker shipped with the same cortex-serve binary",
        "",
      );
    }
    if (reply.type === "init_error") {
      throw new InitFailedError(reply.phase, reply.error, reply.traceback);
    }
    throw this.#violation(`Worker answered init with "${reply.type}"`);
  }

  /**
   * Sends one request. The answer is a body, or a {@link PredictStream} when
   * the user's `predict` returned a generator or iterator.
   */
  run(sample: Uint8Array, debug: boolean, trace?: Uint8Array): PredictCall {
    return this.#calls.single(sample, debug, this.#gone(), trace);
  }

  /** Like {@link run}, the outcome going to `sink` instead of promises (see CallSink). */
  runTo(sink: CallSink, sample: Uint8Array, debug: boolean, trace?: Uint8Array): CallHandle {
    return this.#calls.singleTo(sink, sample, debug, this.#gone(), trace);
  }

  /**
   * Sends one `predict_batch`: the user's `predict` gets the samples as one
   * list. Each sample gets its own outcome; see {@link BatchCall}.
   */
  runBatch(samples: readonly Uint8Array[], debug: boolean, traces?: readonly Uint8Array[]): BatchCall {
    return this.#calls.batch(samples, debug, this.#gone(), traces);
  }

  /** Asks the worker to exit; kills it if it is still there after `graceMs`. */
  async shutdown(graceMs: number): Promise<WorkerExit> {
    if (this.#exit) return this.#exit;
    this.#shuttingDown = true;
    this.#send({ type: "shutdown" });
    await this.#writing?.catch(() => {});
    await (await this.#conns)?.main.closeWrite().catch(() => {});
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

  /** Why the worker cannot take calls, or undefined while it can. */
  #gone(): Error | undefined {
    if (this.#failure === undefined && this.#exit === undefined) return undefined;
    return this.#failure ?? new WorkerExitedError("Worker is not running", this.#exit);
  }

  /**
   * Queues a frame for writing; a write to a dead worker is dropped (its exit
   * fails the calls).
   *
   * @throws {import("./codec.ts").FrameError} when the frame is too large
   */
  #send(message: ServerMessage): void {
    this.#post(message, encodeMessageFrame(message, this.#maxFrame));
  }

  /** {@link #send} with the breakdown on: a `predict` asks for timings. */
  #sendTimed(message: ServerMessage, timings: TimingsTracker): void {
    const frame = encodeMessageFrame(message, this.#maxFrame);
    timings.sending(message, frame);
    this.#post(message, frame);
  }

  /** Writes a frame: a `cancel` on the cancel channel, any other through the outbox. */
  #post(message: ServerMessage, frame: Uint8Array): void {
    if (message.type === "cancel") {
      this.#cancelling = this.#cancelling.then(async () => {
        const conns = await this.#conns;
        if (conns !== undefined) await writeAll(conns.cancel, frame);
      }).catch(() => {});
      return;
    }
    this.#outbox.push(frame);
    this.#writing ??= this.#drain();
  }

  /** Writes queued frames until none is left; a dead worker's are dropped (its exit fails the calls). */
  async #drain(): Promise<void> {
    try {
      const conn = this.#main ?? (await this.#conns)?.main;
      while (this.#outbox.length > 0) {
        // Frames queued meanwhile (pipelining, a credit) go out in one write.
        const data = this.#outbox.length === 1 ? this.#outbox[0]! : concat(this.#outbox);
        this.#outbox.length = 0;
        if (conn === undefined) continue;
        const written = await conn.write(data);
        if (written < data.byteLength) await writeAll(conn, data.subarray(written));
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
        const message = this.#decode(payload);
        if (message.type === "model") this.#onModel?.(message);
        else this.#calls.deliver(message, transient);
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
    this.#calls.failAll(error);
  }
}

/** The parts one after the other, in one buffer. */
function concat(frames: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const frame of frames) length += frame.byteLength;
  const out = new Uint8Array(length);
  let at = 0;
  for (const frame of frames) {
    out.set(frame, at);
    at += frame.byteLength;
  }
  return out;
}
