/**
 * How a worker process ended, and the errors its calls fail with. The
 * worker's text (its exception message and traceback) is untrusted: it is
 * cut to a few KiB here, where it enters the server, so no answer, stream
 * event or log line made from it can be larger.
 */
import { cutText, MAX_ERROR_CHARS, MAX_TRACEBACK_CHARS } from "../log/cut_text.ts";
import type { InitPhase, PredictErrorKind } from "./protocol.ts";

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
    super(cutText(message, MAX_ERROR_CHARS));
    this.name = "InitFailedError";
    this.phase = phase;
    this.traceback = cutText(traceback, MAX_TRACEBACK_CHARS);
  }
}

/** The user's `predict` (or a hook, or serialization) failed for one request. */
export class PredictFailedError extends Error {
  readonly code = "PREDICT_FAILED";
  readonly kind: PredictErrorKind;
  readonly traceback: string;
  constructor(kind: PredictErrorKind, message: string, traceback: string) {
    super(cutText(message, MAX_ERROR_CHARS));
    this.name = "PredictFailedError";
    this.kind = kind;
    this.traceback = cutText(traceback, MAX_TRACEBACK_CHARS);
  }
}
