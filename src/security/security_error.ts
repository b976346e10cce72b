/**
 * The error raised when the server's security settings (API key file, TLS
 * certificate and key) cannot be used. At startup it stops the server with
 * its message; on SIGHUP it is logged and the previous settings stay.
 *
 * @module
 */
import { UserError } from "../errors/user_error.ts";

/** Stable codes of {@link SecurityError}. */
export type SecurityErrorCode =
  /** The API key file cannot be read. */
  | "KEY_FILE_UNREADABLE"
  /** The API key file holds no key. */
  | "KEY_FILE_EMPTY"
  /** A line of the API key file is not a usable key. */
  | "KEY_INVALID"
  /** The TLS certificate or key file cannot be read. */
  | "TLS_UNREADABLE"
  /** The TLS certificate or key is not valid PEM. */
  | "TLS_INVALID"
  /** The TLS private key does not belong to the certificate. */
  | "TLS_MISMATCH";

/** A security setting the operator must fix; the message says how. */
export class SecurityError extends UserError {
  override readonly code: SecurityErrorCode;

  /**
   * @param code What is wrong.
   * @param message What happened, the file concerned, and the fix.
   * @param options `cause`, the underlying error.
   */
  constructor(code: SecurityErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "SecurityError";
    this.code = code;
  }
}
