/**
 * The embedded job store: one SQLite file (Deno's built-in `node:sqlite`, no
 * native addon) in WAL mode, under the state directory. A new job is
 * committed with `synchronous=FULL` (synced to disk) before its submitter
 * hears of it; the other changes (leases, ends) with `synchronous=NORMAL`,
 * which survives a killed process: a power cut may lose the last of them,
 * and the job runs again (at-least-once). Results over `inlineResultBytes`
 * are written to files beside the database.
 *
 * The database lives in a worker thread (./sqlite_worker.js): syncs to disk
 * and checkpoints take milliseconds, at times hundreds on a busy disk, and
 * must not stall the event loop that answers synchronous predictions. This
 * class forwards each call to it.
 *
 * @module
 */
import workerSource from "./sqlite_worker.js" with { type: "text" };
import { JobStoreError } from "./errors.ts";
import type { JobDepth, JobOutcome, JobRecord, JobStore, LeasedJob, NewJob } from "./job.ts";

/** Settings of a {@link SqliteJobStore}. */
export interface SqliteStoreOptions {
  /** Directory of `jobs.sqlite` and `results/`; created when missing. */
  readonly dir: string;
  /** Results larger than this go to a file (default 256 KiB). */
  readonly inlineResultBytes?: number;
}

type Reply = { readonly id: number; readonly value?: unknown; readonly error?: string };

/** Jobs in a SQLite database, through its worker thread. */
export class SqliteJobStore implements JobStore {
  readonly description: string;
  readonly #worker: Worker;
  readonly #calls = new Map<number, PromiseWithResolvers<unknown>>();
  #next = 0;

  private constructor(worker: Worker, file: string) {
    this.#worker = worker;
    this.description = `sqlite:${file}`;
  }

  /**
   * Opens (or creates) the store in `options.dir`.
   *
   * @throws {JobStoreError} When the file cannot be opened as a job database
   */
  static async open(options: SqliteStoreOptions): Promise<SqliteJobStore> {
    const url = URL.createObjectURL(new Blob([workerSource], { type: "text/javascript" }));
    const worker = new Worker(url, { type: "module", name: "job store" });
    URL.revokeObjectURL(url);
    const calls = new Map<number, PromiseWithResolvers<unknown>>();
    worker.onmessage = (event: MessageEvent<Reply>) => {
      const { id, value, error } = event.data;
      const call = calls.get(id);
      calls.delete(id);
      if (error !== undefined) call?.reject(new Error(error));
      else call?.resolve(value);
    };
    const opening = Promise.withResolvers<unknown>();
    calls.set(-1, opening);
    worker.postMessage({
      id: -1,
      method: "open",
      args: [options.dir, options.inlineResultBytes ?? 256 * 1024],
    });
    let file: string;
    try {
      file = String(await opening.promise);
    } catch (error) {
      worker.terminate();
      throw new JobStoreError(error instanceof Error ? error.message : String(error), { cause: error });
    }
    const store = new SqliteJobStore(worker, file);
    // From now on the store's own map answers.
    worker.onmessage = (event: MessageEvent<Reply>) => store.#reply(event.data);
    worker.onerror = (event) => {
      event.preventDefault();
      const error = new Error(`The job store's thread failed: ${event.message}`);
      for (const call of store.#calls.values()) call.reject(error);
      store.#calls.clear();
    };
    return store;
  }

  submit(job: NewJob): Promise<void> {
    return this.#call("submit", job);
  }

  get(api: string, id: string): Promise<JobRecord | undefined> {
    return this.#call("get", api, id);
  }

  lease(api: string, owner: string, leaseMs: number): Promise<LeasedJob | undefined> {
    return this.#call("lease", api, owner, leaseMs);
  }

  renew(ids: readonly string[], owner: string, leaseMs: number): Promise<string[]> {
    return this.#call("renew", ids, owner, leaseMs);
  }

  finish(
    id: string,
    owner: string,
    outcome: JobOutcome,
    maxAttempts: number,
  ): Promise<JobRecord | undefined> {
    return this.#call("finish", id, owner, outcome, maxAttempts);
  }

  cancel(api: string, id: string): Promise<JobRecord | undefined> {
    return this.#call("cancel", api, id);
  }

  requeueExpired(maxAttempts: number): Promise<number> {
    return this.#call("requeueExpired", maxAttempts);
  }

  sweep(ttlMs: number): Promise<number> {
    return this.#call("sweep", ttlMs);
  }

  async depth(): Promise<ReadonlyMap<string, JobDepth>> {
    return new Map(await this.#call<[string, JobDepth][]>("depth"));
  }

  pendingWebhooks(limit: number): Promise<JobRecord[]> {
    return this.#call("pendingWebhooks", limit);
  }

  webhookDone(id: string): Promise<void> {
    return this.#call("webhookDone", id);
  }

  /** Waits for the calls under way, closes the database and ends the thread. */
  async [Symbol.asyncDispose](): Promise<void> {
    await Promise.allSettled([...this.#calls.values()].map((call) => call.promise));
    await this.#call("close").catch(() => {});
    this.#worker.terminate();
  }

  #call<T>(method: string, ...args: unknown[]): Promise<T> {
    const id = this.#next++;
    const call = Promise.withResolvers<unknown>();
    this.#calls.set(id, call);
    this.#worker.postMessage({ id, method, args });
    return call.promise as Promise<T>;
  }

  #reply(reply: Reply): void {
    const call = this.#calls.get(reply.id);
    this.#calls.delete(reply.id);
    if (reply.error !== undefined) call?.reject(new Error(reply.error));
    else call?.resolve(reply.value);
  }
}
