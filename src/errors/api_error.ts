/**
 * Errors that become HTTP answers. Each has a stable `code`, the status it
 * maps to, and a message written for the caller of the API. Anything else
 * thrown while handling a request is a bug: it is logged and answered with a
 * bare 500.
 */

/** Stable error codes and their HTTP status. */
export const ERROR_STATUS = {
  BAD_REQUEST: 400,
  UNAUTHORIZED: 401,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  /** No byte of the request body for `--body-timeout`. */
  BODY_TIMEOUT: 408,
  PAYLOAD_TOO_LARGE: 413,
  /** nginx's status for a client that closed the connection: only ever logged. */
  CLIENT_CLOSED: 499,
  /** The client closed the connection before its whole body arrived (499, only logged). */
  BODY_INCOMPLETE: 499,
  PREDICT_FAILED: 500,
  INTERNAL: 500,
  WORKER_DIED: 502,
  OUT_OF_MEMORY: 502,
  NOT_READY: 503,
  QUEUE_FULL: 503,
  QUEUE_TIMEOUT: 503,
  SHUTTING_DOWN: 503,
  PREDICT_TIMEOUT: 504,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;
export type ErrorStatus = (typeof ERROR_STATUS)[ErrorCode];

/** Options for {@link ApiError}. */
export interface ApiErrorOptions {
  /** Seconds for a `Retry-After` header (503s). */
  readonly retryAfter?: number;
  /** Python traceback or other detail: logged, sent only with `--debug`. */
  readonly detail?: string;
  readonly headers?: Readonly<Record<string, string>>;
}

/** An error answered as `{"error": message, ...}` with the code's status. */
export class ApiError extends Error {
  readonly code: ErrorCode;
  readonly status: ErrorStatus;
  readonly retryAfter: number | undefined;
  readonly detail: string | undefined;
  readonly headers: Readonly<Record<string, string>>;

  constructor(code: ErrorCode, message: string, options: ApiErrorOptions = {}) {
    super(message);
    this.name = "ApiError";
    this.code = code;
    this.status = ERROR_STATUS[code];
    this.retryAfter = options.retryAfter;
    this.detail = options.detail;
    this.headers = options.headers ?? {};
  }
}
