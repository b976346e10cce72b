/**
 * How a worker process ended, and the errors its calls fail with.
 */
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
