/**
 * Server-side batching, the pool's side: taking the next batch off the
 * queue (./batcher.ts decides when one leaves) and running it on a replica,
 * one `predict` call whose time limit counts from now; each request gets
 * its own answer, and the batch is cancelled only when every one of its
 * clients has gone.
 *
 * @module
 */
import { ApiError } from "../errors/api_error.ts";
import { type Batcher, type BatchQueue, RunningBatch } from "./batcher.ts";
import type { Job, JobBatch } from "./job.ts";
import type { Replica, RunEnd } from "./replica.ts";

/**
 * The next batch for a free replica, or undefined when none is due; jobs
 * whose queue wait is over are given to `overdue` on the way and left out.
 */
export function takeBatch(
  batcher: Batcher<Job>,
  queue: BatchQueue<Job>,
  overdue: (job: Job) => void,
): Job[] | undefined {
  for (;;) {
    const taken = batcher.take(queue);
    if (taken === undefined) return undefined;
    const now = performance.now();
    const batch = taken.filter((job) => {
      if (now < job.deadlineAt) return true;
      overdue(job);
      return false;
    });
    if (batch.length > 0) return batch;
  }
}

/**
 * Runs `jobs` (taken off the queue) as one batch on a ready `replica` and
 * answers each; resolves when the replica is done with the batch, every
 * job then `finished`.
 */
export function runBatch(replica: Replica, jobs: readonly Job[], predictTimeoutMs: number): Promise<RunEnd> {
  const now = performance.now();
  let debug = false;
  for (const job of jobs) {
    debug ||= job.debug;
    job.onBatch?.(jobs.length);
  }
  // Tracing is on for every request of a pool or for none.
  const traces = jobs[0]!.trace === undefined ? undefined : jobs.map((job) => job.trace!());
  const run = replica.runBatch(jobs.map((job) => job.sample), debug, traces);
  const batch: JobBatch = { batch: new RunningBatch(jobs), run };
  // One deadline for all: the first to time out stops the batch (the pool's ticker).
  for (const job of jobs) job.batched(batch, now, predictTimeoutMs);
  batch.batch.signal.addEventListener("abort", () => run.cancel(), { once: true });
  run.answers.then(
    (answers) =>
      jobs.forEach((job, i) => {
        const answer = answers[i]!;
        if (answer instanceof ApiError) job.reject(answer);
        else if (job.enveloped) job.resolveEnveloped(answer, now - job.arrived);
        else job.resolve({ answer: { type: "body", body: answer }, queueMs: now - job.arrived });
      }),
    (error: Error) => jobs.forEach((job) => job.reject(error)),
  );
  // The clients are watched until the replica is done with the batch.
  return run.finished.then((end) => {
    for (const job of jobs) job.finish();
    return end;
  });
}
