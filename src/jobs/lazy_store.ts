/**
 * A job store opened at its first job: a server whose clients never submit
 * one pays for no database and no store thread. Until then every read
 * answers as an empty store would.
 *
 * @module
 */
import type { JobDepth, JobOutcome, JobRecord, JobStore, LeasedJob, NewJob } from "./job.ts";

/** Opens `open()` on the first submit; empty until then. */
export class LazyJobStore implements JobStore {
  readonly description: string;
  readonly #open: () => Promise<JobStore>;
  #store: Promise<JobStore> | undefined;

  constructor(description: string, open: () => Promise<JobStore>) {
    this.description = description;
    this.#open = open;
  }

  submit(job: NewJob): Promise<void> {
    if (this.#store === undefined) {
      const opening = this.#open();
      // A failed open is tried again at the next submit.
      opening.catch(() => {
        if (this.#store === opening) this.#store = undefined;
      });
      this.#store = opening;
    }
    return this.#store.then((store) => store.submit(job));
  }

  get(api: string, id: string): Promise<JobRecord | undefined> {
    return this.#or(undefined, (store) => store.get(api, id));
  }

  lease(api: string, owner: string, leaseMs: number): Promise<LeasedJob | undefined> {
    return this.#or(undefined, (store) => store.lease(api, owner, leaseMs));
  }

  renew(ids: readonly string[], owner: string, leaseMs: number): Promise<string[]> {
    return this.#or([...ids], (store) => store.renew(ids, owner, leaseMs));
  }

  finish(
    id: string,
    owner: string,
    outcome: JobOutcome,
    maxAttempts: number,
  ): Promise<JobRecord | undefined> {
    return this.#or(undefined, (store) => store.finish(id, owner, outcome, maxAttempts));
  }

  cancel(api: string, id: string): Promise<JobRecord | undefined> {
    return this.#or(undefined, (store) => store.cancel(api, id));
  }

  requeueExpired(maxAttempts: number): Promise<number> {
    return this.#or(0, (store) => store.requeueExpired(maxAttempts));
  }

  sweep(ttlMs: number): Promise<number> {
    return this.#or(0, (store) => store.sweep(ttlMs));
  }

  depth(): Promise<ReadonlyMap<string, JobDepth>> {
    return this.#or<ReadonlyMap<string, JobDepth>>(new Map(), (store) => store.depth());
  }

  pendingWebhooks(limit: number): Promise<JobRecord[]> {
    return this.#or([], (store) => store.pendingWebhooks(limit));
  }

  webhookDone(id: string): Promise<void> {
    return this.#or(undefined, (store) => store.webhookDone(id));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    const store = await this.#store?.catch(() => undefined);
    await store?.[Symbol.asyncDispose]();
  }

  /** `empty` while nothing was submitted, else what the open store answers. */
  #or<T>(empty: T, call: (store: JobStore) => Promise<T>): Promise<T> {
    return this.#store === undefined ? Promise.resolve(empty) : this.#store.then(call);
  }
}
