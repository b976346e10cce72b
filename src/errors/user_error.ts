/**
 * The base class of every error a user or operator can act on: a bad flag, a
 * broken `cortex.yaml`, a missing interpreter, a failed install. The command
 * line prints such an error as one line (`error: <message>`) and exits 1 (2
 * for usage errors); anything else is a bug and prints with its stack.
 *
 * @module
 */

/** An error whose message says what went wrong and how to fix it. */
export abstract class UserError extends Error {
  /** Stable identifier of the failure; callers branch on it, never on the message. */
  abstract readonly code: string;
  /** Process exit code when this error stops the command line. */
  readonly exitCode: number = 1;
}
