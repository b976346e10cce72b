/**
 * What a job is, whatever keeps it: its request as received (body bytes,
 * content type, query string, headers), its result as produced (bytes,
 * content type, status), its webhook, and the states it moves through.
 *
 * | state         | event                                   | next                      |
 * |---------------|-----------------------------------------|---------------------------|
 * | `in_queue`    | a runner leases it                      | `in_progress`             |
 * | `in_progress` | predict answered                        | `completed`               |
 * | `in_progress` | predict failed (user error, timeout)    | `failed`                  |
 * | `in_progress` | worker lost / lease expired, tries < N  | `in_queue`                |
 * | `in_progress` | worker lost / lease expired, tries = N  | `failed` (poison job)     |
 * | `in_queue`, `in_progress` | `DELETE <endpoint>/<id>`    | `cancelled`               |
 *
 * `completed`, `failed` and `cancelled` are final: a store writes a final
 * state only over `in_progress` held by the same lease, so a job that ran
 * twice (at-least-once execution) is completed once.
 *
 * @module
 */

/** Where a job is in its life. */
export type JobStatus = "in_queue" | "in_progress" | "completed" | "failed" | "cancelled";

/** States no event leaves. */
export const FINAL_STATUSES: ReadonlySet<JobStatus> = new Set(["completed", "failed", "cancelled"]);

/** A prediction request as it arrived, kept to run later. */
export interface JobRequest {
  readonly body: Uint8Array;
  readonly contentType: string;
  /** The query string without `?`; empty when none. */
  readonly query: string;
  /** Request headers worth keeping (lower-case names). */
  readonly headers: Readonly<Record<string, string>>;
}

/** A prediction's answer, kept until it is fetched or swept. */
export interface JobResult {
  readonly body: Uint8Array;
  readonly contentType: string;
  readonly status: number;
}

/** Events a webhook may ask for (Cog's names); `output` and `logs` have no separate event here. */
export type WebhookEvent = "start" | "output" | "logs" | "completed";

/** Where to tell about a job, and about what. */
export interface Webhook {
  readonly url: string;
  readonly events: readonly WebhookEvent[];
}

/** A job as submitted. */
export interface NewJob {
  readonly id: string;
  readonly api: string;
  readonly request: JobRequest;
  readonly webhook: Webhook | undefined;
  /** Milliseconds since the epoch. */
  readonly createdAt: number;
}

/** A job as a store reports it. */
export interface JobRecord {
  readonly id: string;
  readonly api: string;
  readonly status: JobStatus;
  readonly createdAt: number;
  readonly startedAt: number | undefined;
  readonly finishedAt: number | undefined;
  /** Times a runner took it. */
  readonly attempts: number;
  readonly error: string | undefined;
  readonly result: JobResult | undefined;
  readonly webhook: Webhook | undefined;
}

/** A job a runner holds a lease on. */
export interface LeasedJob {
  readonly id: string;
  readonly api: string;
  readonly request: JobRequest;
  readonly webhook: Webhook | undefined;
  readonly attempts: number;
  readonly createdAt: number;
}

/** How a run ended, as a runner reports it to the store. */
export type JobOutcome =
  | { readonly kind: "completed"; readonly result: JobResult }
  | { readonly kind: "failed"; readonly error: string }
  /** The worker was lost: back in the queue, unless it was the last try (then `failed`). */
  | { readonly kind: "crashed"; readonly error: string }
  /** Never ran (not ready, shutting down): back in the queue, the try not counted. */
  | { readonly kind: "released" };

/** Jobs not yet final, per API. */
export interface JobDepth {
  readonly inQueue: number;
  readonly inProgress: number;
}

/**
 * A durable job queue. Every method may be backed by another machine
 * (Redis), hence promises; an implementation keeps no job only in memory.
 */
export interface JobStore extends AsyncDisposable {
  /** Where jobs are kept, for the log. */
  readonly description: string;
  /** Stores a new job `in_queue`; resolves once it is durable. */
  submit(job: NewJob): Promise<void>;
  /** The job `id` of `api`, or undefined. */
  get(api: string, id: string): Promise<JobRecord | undefined>;
  /** Leases the oldest queued job of `api` to `owner` for `leaseMs`, counting a try. */
  lease(api: string, owner: string, leaseMs: number): Promise<LeasedJob | undefined>;
  /**
   * Extends `owner`'s leases on `ids`; resolves with the ids it no longer
   * holds (cancelled, or taken by another owner after its lease expired).
   */
  renew(ids: readonly string[], owner: string, leaseMs: number): Promise<string[]>;
  /**
   * Records how `owner`'s run of `id` ended. Only over `in_progress` under
   * `owner`'s lease; resolves with the final record when this call finished
   * the job, undefined otherwise (cancelled meanwhile, lease lost, or
   * requeued).
   */
  finish(id: string, owner: string, outcome: JobOutcome, maxAttempts: number): Promise<JobRecord | undefined>;
  /** Cancels a queued or running job; resolves with its record after, or undefined when unknown. */
  cancel(api: string, id: string): Promise<JobRecord | undefined>;
  /**
   * Requeues jobs whose lease expired (their runner died), failing those
   * out of tries; resolves with the number moved.
   */
  requeueExpired(maxAttempts: number): Promise<number>;
  /** Deletes final jobs (and their result files) older than `ttlMs`; resolves with how many. */
  sweep(ttlMs: number): Promise<number>;
  /** Queued and running jobs per API. */
  depth(): Promise<ReadonlyMap<string, JobDepth>>;
  /** Final jobs whose webhook was not yet delivered (or given up on). */
  pendingWebhooks(limit: number): Promise<JobRecord[]>;
  /** Marks the webhook of `id` as delivered or given up on. */
  webhookDone(id: string): Promise<void>;
}
