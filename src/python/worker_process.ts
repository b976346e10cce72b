/**
 * One Python worker child: spawning, the handshake, one prediction at a
 * time, and how it ended. Knows nothing about restarts or queues; see
 * src/server/replica.ts for supervision.
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

interface Pending {
  readonly id: number;
  readonly resolve: (value: WorkerMessage) => void;
  readonly reject: (error: Error) => void;
}

/**
 * A running worker. Calls are strictly one at a time: `init` once, then
 * `predict` repeatedly; the caller (a replica) guarantees that.
 */
export class WorkerProcess {
  readonly pid: number;
  /** Resolves when the process has ended and its output is drained. */
  readonly exited: Promise<WorkerExit>;
  readonly #child: Deno.ChildProcess;
  /** The control channel once the worker connected; undefined if it never did. */
  readonly #conn: Promise<Deno.UnixConn | undefined>;
  /** The channel once connected, so a request writes without awaiting `#conn`. */
  #connected: Deno.UnixConn | undefined;
  readonly #maxFrame: number;
  #pending: Pending | undefined;
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
    const reading = this.#conn.then((conn) => {
      this.#connected = conn;
      return conn && this.#readFrames(conn, child.status);
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

  /** Sends `init` and waits for `ready`; rejects with InitFailedError or WorkerExitedError. */
  async init(message: Omit<InitMessage, "type">): Promise<ReadyMessage> {
    const reply = await this.#call(0, { type: "init", ...message });
    if (reply.type === "ready") return reply;
    if (reply.type === "init_error") {
      throw new InitFailedError(reply.phase, reply.error, reply.traceback);
    }
    throw this.#violation(`Worker answered init with "${reply.type}"`);
  }

  /**
   * Runs one prediction; resolves with the prediction as UTF-8 JSON.
   * Rejects with PredictFailedError, WorkerExitedError or ProtocolError.
   */
  predict(sample: Uint8Array, debug: boolean): Promise<Uint8Array> {
    const id = this.#nextId++;
    return this.#call(id, { type: "predict", id, sample, debug }).then(this.#predicted);
  }

  readonly #predicted = (reply: WorkerMessage): Uint8Array => {
    if (reply.type === "result") return reply.prediction;
    if (reply.type === "error") {
      throw new PredictFailedError(reply.kind, reply.error, reply.traceback);
    }
    throw this.#violation(`Worker answered predict with "${reply.type}"`);
  };

  /** Asks the worker to exit; kills it if it is still there after `graceMs`. */
  async shutdown(graceMs: number): Promise<WorkerExit> {
    if (this.#exit) return this.#exit;
    this.#shuttingDown = true;
    await this.#send({ type: "shutdown" }).catch(() => {});
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

  #call(id: number, message: ServerMessage): Promise<WorkerMessage> {
    if (this.#pending) return Promise.reject(new Error("Worker is busy: one call at a time"));
    if (this.#failure ?? this.#exit) {
      return Promise.reject(this.#failure ?? new WorkerExitedError("Worker is not running", this.#exit));
    }
    const reply = new Promise<WorkerMessage>((resolve, reject) => {
      this.#pending = { id, resolve, reject };
    });
    this.#send(message).catch(() => {
      // A write to a dead worker: the exit handler rejects `reply`.
    });
    return reply;
  }

  #send(message: ServerMessage): Promise<void> {
    let frame: Uint8Array;
    try {
      frame = encodeMessageFrame(message, this.#maxFrame);
    } catch (error) {
      return Promise.reject(error);
    }
    const conn = this.#connected;
    if (conn !== undefined) return writeAll(conn, frame);
    return this.#conn.then((conn) => {
      if (conn === undefined) throw new WorkerExitedError("Worker never connected", this.#exit);
      return writeAll(conn, frame);
    });
  }

  async #readFrames(conn: Deno.UnixConn, ended: Promise<unknown>): Promise<void> {
    try {
      await readPayloads(conn, this.#maxFrame, (payload, transient) => {
        const message = decodeMessage(payload);
        // The prediction is a view of the read buffer, which the next read reuses.
        if (message.type === "result" && transient) {
          this.#deliver({ ...message, prediction: message.prediction.slice() });
        } else {
          this.#deliver(message);
        }
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

  #deliver(message: WorkerMessage): void {
    const pending = this.#pending;
    const id = message.type === "result" || message.type === "error" ? message.id : 0;
    if (!pending || pending.id !== id) {
      throw new ProtocolError(
        `Worker sent "${message.type}" for request ${id}, expected ${pending ? pending.id : "nothing"}`,
      );
    }
    this.#pending = undefined;
    pending.resolve(message);
  }

  /** Records a protocol violation, kills the worker, fails the pending call. */
  #violation(detail: string): ProtocolError {
    const error = new ProtocolError(`Worker broke the protocol: ${detail}`);
    this.#failure ??= error;
    this.kill("SIGKILL");
    this.#fail(error);
    return error;
  }

  #fail(error: Error): void {
    const pending = this.#pending;
    this.#pending = undefined;
    pending?.reject(error);
  }
}
