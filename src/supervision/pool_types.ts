/**
 * What an `ApiPool` (./pool.ts) takes and gives: its settings, what a submit
 * needs besides the sample, and the prediction it resolves with.
 *
 * @module
 */
import type { Logger } from "../log/logger.ts";
import type { ResolvedBatching } from "../config/types.ts";
import type { RequestMeta } from "../python/envelope.ts";
import type { SupervisionCounters } from "./counters.ts";
import type { RunAnswer } from "./replica.ts";
import type { ReplicaState } from "./replica_states.ts";

/** What a client is watched through: its `signal` aborts when the client went away (a `Request` is one). */
export interface ClientSource {
  readonly signal: AbortSignal;
}

/** What `ApiPool.submit` needs besides the sample. */
export interface SubmitOptions {
  readonly debug: boolean;
  /**
   * Aborts when the client went away; a queued request is then dropped, a
   * running one cancelled. Listened to from the start.
   */
  readonly signal?: AbortSignal;
  /**
   * The client's request, for the same, but whose `signal` is read only
   * once a tick of the pool's deadlines finds the request waited a whole
   * tick (up to 100 ms; ./deadlines.ts): a request answered sooner never
   * makes the runtime create its signal, nor gets a listener on it. A
   * listener on a request's signal kept each request's objects alive until
   * the next full collection (docs/performance.md), and a client that
   * leaves is noticed at most two ticks later. A streamed answer is listened to from its first
   * item: a signal first read after the handler returned a streamed
   * Response was seen never to abort (tests/stream_test.ts). Ignored when `signal` is given.
   */
  readonly client?: ClientSource | undefined;
  /** Told the size of the batch the request runs in (server-side batching only). */
  readonly onBatch?: ((size: number) => void) | undefined;
  /**
   * The request's Content-Type, query and headers, for an API whose worker
   * parses the payload by Content-Type (`realtime_predictor`, Cortex 0.17+):
   * the sample is then the raw body, sent with them in one envelope
   * (../python/envelope.ts), and the answer carries its own content type,
   * status and headers. Absent for the other dialects (the sample is JSON).
   */
  readonly request?: RequestMeta | undefined;
  /**
   * Tracing only (../http/tracing.ts): called when a replica takes the
   * request (or its batch, after `onBatch`), returns the W3C trace context
   * the worker runs it in (see PredictMessage in ../python/protocol.ts).
   */
  readonly trace?: (() => Uint8Array) | undefined;
}

/** A prediction (a body, or a stream of items) and how long it waited for a replica. */
export interface Prediction {
  readonly answer: RunAnswer;
  readonly queueMs: number;
  /** With {@link SubmitOptions.request}: the answer's Content-Type (a body answer only). */
  readonly contentType?: string;
  /** With {@link SubmitOptions.request}: the answer's HTTP status (a body answer only). */
  readonly status?: number;
  /** With {@link SubmitOptions.request}: headers the answer sets, e.g. a passed-through Response's. */
  readonly headers?: readonly (readonly [string, string])[];
}

/** Settings of a pool. */
export interface PoolOptions {
  readonly api: string;
  /** Requests allowed to wait per replica in the pool (`--queue`). */
  readonly queuePerReplica: number;
  /** Most replicas the pool will have (`compute.max_replicas`): sizes the ring. */
  readonly maxReplicas: number;
  /** How long predict may run once a replica took the job (`--predict-timeout`). */
  readonly predictTimeoutMs: number;
  /** How long a job may wait for a replica (`--queue-timeout`); default `predictTimeoutMs`. */
  readonly queueTimeoutMs?: number;
  /** Server-side batching (`server_side_batching:`); one request per call when absent. */
  readonly batching?: ResolvedBatching | undefined;
  /** Send a busy replica the next request behind the running one (see ./pool.ts); default true. */
  readonly pipelining?: boolean;
  /** Where scale events are counted; default none. */
  readonly counters?: SupervisionCounters;
  readonly logger: Logger;
}

/** Replica counts by state, for status pages and metrics. */
export type ReplicaCounts = Record<ReplicaState, number>;
