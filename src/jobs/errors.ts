/**
 * The job store cannot be used at startup (Redis does not answer, the
 * SQLite file is not a job database): printed as one line, the server does
 * not start.
 *
 * @module
 */
import { UserError } from "../errors/user_error.ts";

/** A job store that cannot be opened; the message names it and the fix. */
export class JobStoreError extends UserError {
  override readonly code = "JOB_STORE_UNAVAILABLE";
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "JobStoreError";
  }
}
