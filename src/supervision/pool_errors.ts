/**
 * The answers a pool gives without running a request: not ready, queue
 * full, queue timeout, shutting down, client gone.
 *
 * @module
 */
import { ApiError } from "../errors/api_error.ts";
import type { Replica } from "./replica.ts";
import { STATE_INFO } from "./replica_states.ts";

/** 503: no replica is ready or coming back; says why (the last error) and when to retry. */
export function notReadyError(api: string, replicas: readonly Replica[]): ApiError {
  const starting = replicas.some((r) => r.state === "starting");
  const failed = replicas.find((r) => r.lastError !== undefined);
  const why = failed?.lastError !== undefined
    ? `${STATE_INFO[failed.state].label}: ${failed.lastError}`
    : starting
    ? "starting"
    : "no replica is running";
  const retryAfter = Math.min(...replicas.map((r) => r.retryAfterSeconds), 30);
  return new ApiError("NOT_READY", `Api ${api} is not ready (${why})`, {
    retryAfter: Number.isFinite(retryAfter) ? retryAfter : 1,
  });
}

/** 503: the request waited `--queue-timeout` without a free replica. */
export function queueTimeoutError(api: string, queueTimeoutMs: number): ApiError {
  return new ApiError(
    "QUEUE_TIMEOUT",
    `Api ${api} is overloaded: the request waited ${
      queueTimeoutMs / 1000
    } s (--queue-timeout) without a free replica`,
    { retryAfter: 1 },
  );
}

/** 503 to a request arriving while the server shuts down. */
export function shuttingDownError(): ApiError {
  return new ApiError("SHUTTING_DOWN", "The server is shutting down", { retryAfter: 5 });
}

/** 503 to a queued request the server shut down before it ran. */
export function cutOffError(): ApiError {
  return new ApiError("SHUTTING_DOWN", "The server shut down before this request ran");
}

/** 499 (for the log; nobody reads it) to a client that went away while its request waited. */
export function clientGoneError(): ApiError {
  return new ApiError("CLIENT_CLOSED", "The client closed the connection");
}

/** The queue-full error, one object while the queue stays full: a refusal under overload allocates nothing. */
export class QueueFullErrors {
  readonly #api: string;
  #last: { readonly waiting: number; readonly error: ApiError } | undefined;

  constructor(api: string) {
    this.#api = api;
  }

  /** 503 for a queue with `waiting` requests. */
  of(waiting: number): ApiError {
    if (this.#last?.waiting !== waiting) {
      this.#last = {
        waiting,
        error: new ApiError(
          "QUEUE_FULL",
          `Api ${this.#api} is at capacity: ${waiting} requests are already waiting`,
          { retryAfter: 1 },
        ),
      };
    }
    return this.#last.error;
  }
}
