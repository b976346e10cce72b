/**
 * The job store `--jobs` names: SQLite under the state directory, or a
 * Redis server shared by several cortex-serve instances.
 *
 * @module
 */
import * as path from "node:path";
import type { JobStore } from "./job.ts";
import { SqliteJobStore } from "./sqlite_store.ts";
import { LazyJobStore } from "./lazy_store.ts";

/** What `--jobs` selected. */
export type JobStoreSpec = { readonly kind: "sqlite" } | { readonly kind: "redis"; readonly url: string };

/**
 * Opens the store of `spec`. SQLite lives in `<stateDir>/jobs/`; when it
 * does not exist yet, it is created at the first job.
 */
export function openJobStore(
  spec: JobStoreSpec,
  options: { readonly stateDir: string; readonly leaseMs: number; readonly ttlMs: number },
): Promise<JobStore> {
  switch (spec.kind) {
    case "sqlite":
      return openSqlite(path.join(options.stateDir, "jobs"));
    case "redis":
      return openRedis(spec.url, options);
  }
}

async function openSqlite(dir: string): Promise<JobStore> {
  const open = () => SqliteJobStore.open({ dir });
  try {
    await Deno.stat(path.join(dir, "jobs.sqlite"));
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    return new LazyJobStore(`sqlite:${path.join(dir, "jobs.sqlite")} (created at the first job)`, open);
  }
  return await open();
}

/** The Redis store, loaded only when asked for: its client costs the server memory from the moment it loads. */
async function openRedis(
  url: string,
  options: { readonly leaseMs: number; readonly ttlMs: number },
): Promise<JobStore> {
  const { RedisJobStore } = await import("./redis_store.ts");
  return RedisJobStore.connect(url, { leaseMs: options.leaseMs, ttlMs: options.ttlMs });
}
