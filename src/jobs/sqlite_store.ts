/**
 * The embedded job store: one SQLite file (Deno's built-in `node:sqlite`, no
 * native addon) in WAL mode, under the state directory. A new job is
 * committed with `synchronous=FULL` (synced to disk) before its submitter
 * hears of it; the other changes (leases, ends) with `synchronous=NORMAL`,
 * which survives a killed process and costs no sync on the event loop: a
 * power cut may lose the last of them, and the job runs again
 * (at-least-once). Results over `inlineResultBytes` are written to files
 * beside the database.
 *
 * @module
 */
import { DatabaseSync, type SQLInputValue } from "node:sqlite";
import * as path from "node:path";
import type {
  JobDepth,
  JobOutcome,
  JobRecord,
  JobResult,
  JobStatus,
  JobStore,
  LeasedJob,
  NewJob,
  Webhook,
  WebhookEvent,
} from "./job.ts";

/** Settings of a {@link SqliteJobStore}. */
export interface SqliteStoreOptions {
  /** Directory of `jobs.sqlite` and `results/`; created when missing. */
  readonly dir: string;
  /** Results larger than this go to a file (default 256 KiB). */
  readonly inlineResultBytes?: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS jobs (
  id TEXT PRIMARY KEY,
  api TEXT NOT NULL,
  status TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  started_at INTEGER,
  finished_at INTEGER,
  attempts INTEGER NOT NULL DEFAULT 0,
  owner TEXT,
  lease_until INTEGER,
  error TEXT,
  req_body BLOB NOT NULL,
  req_type TEXT NOT NULL,
  req_query TEXT NOT NULL,
  req_headers TEXT NOT NULL,
  res_body BLOB,
  res_file TEXT,
  res_type TEXT,
  res_status INTEGER,
  webhook_url TEXT,
  webhook_events TEXT,
  webhook_pending INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_queue ON jobs(api, status);
CREATE INDEX IF NOT EXISTS jobs_lease ON jobs(status, lease_until);
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs(finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_webhook ON jobs(webhook_pending) WHERE webhook_pending = 1;
`;

type Row = Record<string, SQLInputValue>;

/** Jobs in a SQLite database. */
export class SqliteJobStore implements JobStore {
  readonly description: string;
  readonly #db: DatabaseSync;
  readonly #resultsDir: string;
  readonly #inlineBytes: number;

  private constructor(db: DatabaseSync, file: string, resultsDir: string, inlineBytes: number) {
    this.#db = db;
    this.description = `sqlite:${file}`;
    this.#resultsDir = resultsDir;
    this.#inlineBytes = inlineBytes;
  }

  /** Opens (or creates) the store in `options.dir`. */
  static open(options: SqliteStoreOptions): SqliteJobStore {
    const resultsDir = path.join(options.dir, "results");
    Deno.mkdirSync(resultsDir, { recursive: true, mode: 0o700 });
    const file = path.join(options.dir, "jobs.sqlite");
    const db = new DatabaseSync(file);
    try {
      db.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;");
      db.exec(SCHEMA);
    } catch (error) {
      db.close();
      throw new Error(
        `Cannot open the job store "${file}": ${error instanceof Error ? error.message : error}; ` +
          "remove the file if it is not a job database, or pass another --state-dir",
        { cause: error },
      );
    }
    return new SqliteJobStore(db, file, resultsDir, options.inlineResultBytes ?? 256 * 1024);
  }

  submit(job: NewJob): Promise<void> {
    const r = job.request;
    this.#db.exec("PRAGMA synchronous=FULL");
    try {
      this.#insert(job, r);
    } finally {
      this.#db.exec("PRAGMA synchronous=NORMAL");
    }
    return Promise.resolve();
  }

  #insert(job: NewJob, r: NewJob["request"]): void {
    this.#db.prepare(
      `INSERT INTO jobs (id, api, status, created_at, req_body, req_type, req_query, req_headers,
         webhook_url, webhook_events) VALUES (?, ?, 'in_queue', ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      job.id,
      job.api,
      job.createdAt,
      r.body,
      r.contentType,
      r.query,
      JSON.stringify(r.headers),
      job.webhook?.url ?? null,
      job.webhook === undefined ? null : job.webhook.events.join(","),
    );
  }

  get(api: string, id: string): Promise<JobRecord | undefined> {
    const row = this.#db.prepare("SELECT * FROM jobs WHERE id = ? AND api = ?").get(id, api) as
      | Row
      | undefined;
    return Promise.resolve(row === undefined ? undefined : this.#record(row));
  }

  lease(api: string, owner: string, leaseMs: number): Promise<LeasedJob | undefined> {
    const now = Date.now();
    const row = this.#db.prepare(
      `UPDATE jobs SET status = 'in_progress', owner = ?, lease_until = ?, attempts = attempts + 1,
         started_at = ? WHERE rowid = (SELECT rowid FROM jobs WHERE api = ? AND status = 'in_queue'
         ORDER BY rowid LIMIT 1) RETURNING id, api, attempts, created_at, req_body, req_type, req_query,
         req_headers, webhook_url, webhook_events`,
    ).get(owner, now + leaseMs, now, api) as Row | undefined;
    if (row === undefined) return Promise.resolve(undefined);
    return Promise.resolve({
      id: String(row.id),
      api: String(row.api),
      attempts: Number(row.attempts),
      createdAt: Number(row.created_at),
      request: {
        body: row.req_body as Uint8Array,
        contentType: String(row.req_type),
        query: String(row.req_query),
        headers: JSON.parse(String(row.req_headers)),
      },
      webhook: webhookOf(row),
    });
  }

  renew(ids: readonly string[], owner: string, leaseMs: number): Promise<string[]> {
    const until = Date.now() + leaseMs;
    const update = this.#db.prepare(
      "UPDATE jobs SET lease_until = ? WHERE id = ? AND owner = ? AND status = 'in_progress'",
    );
    const lost: string[] = [];
    this.#transaction(() => {
      for (const id of ids) if (Number(update.run(until, id, owner).changes) === 0) lost.push(id);
    });
    return Promise.resolve(lost);
  }

  async finish(
    id: string,
    owner: string,
    outcome: JobOutcome,
    maxAttempts: number,
  ): Promise<JobRecord | undefined> {
    const held = "id = ? AND owner = ? AND status = 'in_progress'";
    const now = Date.now();
    switch (outcome.kind) {
      case "completed": {
        const result = outcome.result;
        const file = result.body.length > this.#inlineBytes ? await this.#writeResult(id, result.body) : null;
        const changed = this.#db.prepare(
          `UPDATE jobs SET status = 'completed', finished_at = ?, owner = NULL, lease_until = NULL,
             res_body = ?, res_file = ?, res_type = ?, res_status = ?,
             webhook_pending = (webhook_url IS NOT NULL) WHERE ${held}`,
        ).run(now, file === null ? result.body : null, file, result.contentType, result.status, id, owner);
        if (Number(changed.changes) === 0) {
          if (file !== null) await Deno.remove(path.join(this.#resultsDir, file)).catch(() => {});
          return undefined;
        }
        break;
      }
      case "failed":
        if (!this.#fail(id, owner, outcome.error, now)) return undefined;
        break;
      case "crashed": {
        const requeued = this.#db.prepare(
          `UPDATE jobs SET status = 'in_queue', owner = NULL, lease_until = NULL, error = ?
             WHERE ${held} AND attempts < ?`,
        ).run(outcome.error, id, owner, maxAttempts);
        if (Number(requeued.changes) > 0) return undefined;
        const error = `${outcome.error} (the job was tried ${maxAttempts} times, see --job-attempts)`;
        if (!this.#fail(id, owner, error, now)) return undefined;
        break;
      }
      case "released":
        this.#db.prepare(
          `UPDATE jobs SET status = 'in_queue', owner = NULL, lease_until = NULL,
             attempts = attempts - 1 WHERE ${held}`,
        ).run(id, owner);
        return undefined;
    }
    const row = this.#db.prepare("SELECT * FROM jobs WHERE id = ?").get(id) as Row | undefined;
    return row === undefined ? undefined : this.#record(row);
  }

  cancel(api: string, id: string): Promise<JobRecord | undefined> {
    this.#db.prepare(
      `UPDATE jobs SET status = 'cancelled', finished_at = ?, owner = NULL, lease_until = NULL,
         webhook_pending = (webhook_url IS NOT NULL)
         WHERE id = ? AND api = ? AND status IN ('in_queue', 'in_progress')`,
    ).run(Date.now(), id, api);
    return this.get(api, id);
  }

  requeueExpired(maxAttempts: number): Promise<number> {
    const now = Date.now();
    let moved = 0;
    this.#transaction(() => {
      moved += Number(
        this.#db.prepare(
          `UPDATE jobs SET status = 'in_queue', owner = NULL, lease_until = NULL,
             error = 'the server running it stopped' WHERE status = 'in_progress' AND lease_until < ?
             AND attempts < ?`,
        ).run(now, maxAttempts).changes,
      );
      moved += Number(
        this.#db.prepare(
          `UPDATE jobs SET status = 'failed', finished_at = ?, owner = NULL, lease_until = NULL,
             error = 'the server running it stopped ' || attempts || ' times (see --job-attempts)',
             webhook_pending = (webhook_url IS NOT NULL)
             WHERE status = 'in_progress' AND lease_until < ?`,
        ).run(now, now).changes,
      );
    });
    return Promise.resolve(moved);
  }

  async sweep(ttlMs: number): Promise<number> {
    const before = Date.now() - ttlMs;
    const rows = this.#db.prepare(
      "DELETE FROM jobs WHERE finished_at IS NOT NULL AND finished_at < ? RETURNING res_file",
    ).all(before) as Row[];
    for (const row of rows) {
      if (row.res_file !== null) {
        await Deno.remove(path.join(this.#resultsDir, String(row.res_file))).catch(() => {});
      }
    }
    return rows.length;
  }

  depth(): Promise<ReadonlyMap<string, JobDepth>> {
    const rows = this.#db.prepare(
      `SELECT api, SUM(status = 'in_queue') AS q, SUM(status = 'in_progress') AS p FROM jobs
         WHERE status IN ('in_queue', 'in_progress') GROUP BY api`,
    ).all() as Row[];
    return Promise.resolve(
      new Map(rows.map((row) => [String(row.api), { inQueue: Number(row.q), inProgress: Number(row.p) }])),
    );
  }

  pendingWebhooks(limit: number): Promise<JobRecord[]> {
    const rows = this.#db.prepare("SELECT * FROM jobs WHERE webhook_pending = 1 LIMIT ?").all(limit) as Row[];
    return Promise.resolve(rows.map((row) => this.#record(row)));
  }

  webhookDone(id: string): Promise<void> {
    this.#db.prepare("UPDATE jobs SET webhook_pending = 0 WHERE id = ?").run(id);
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    if (this.#db.isOpen) this.#db.close();
    return Promise.resolve();
  }

  #fail(id: string, owner: string, error: string, now: number): boolean {
    return Number(
      this.#db.prepare(
        `UPDATE jobs SET status = 'failed', finished_at = ?, owner = NULL, lease_until = NULL, error = ?,
           webhook_pending = (webhook_url IS NOT NULL) WHERE id = ? AND owner = ? AND status = 'in_progress'`,
      ).run(now, error, id, owner).changes,
    ) > 0;
  }

  #transaction(body: () => void): void {
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      body();
      this.#db.exec("COMMIT");
    } catch (error) {
      this.#db.exec("ROLLBACK");
      throw error;
    }
  }

  async #writeResult(id: string, body: Uint8Array): Promise<string> {
    const name = `${id}.${crypto.randomUUID().slice(0, 8)}`;
    const full = path.join(this.#resultsDir, name);
    await Deno.writeFile(`${full}.tmp`, body, { mode: 0o600 });
    const file = await Deno.open(`${full}.tmp`, { read: true });
    try {
      await file.sync();
    } finally {
      file.close();
    }
    await Deno.rename(`${full}.tmp`, full);
    return name;
  }

  #record(row: Row): JobRecord {
    const status = String(row.status) as JobStatus;
    return {
      id: String(row.id),
      api: String(row.api),
      status,
      createdAt: Number(row.created_at),
      startedAt: row.started_at === null ? undefined : Number(row.started_at),
      finishedAt: row.finished_at === null ? undefined : Number(row.finished_at),
      attempts: Number(row.attempts),
      error: status === "failed" && row.error !== null ? String(row.error) : undefined,
      result: status === "completed" ? this.#result(row) : undefined,
      webhook: webhookOf(row),
    };
  }

  #result(row: Row): JobResult {
    const body = row.res_file !== null
      ? Deno.readFileSync(path.join(this.#resultsDir, String(row.res_file)))
      : (row.res_body as Uint8Array | null) ?? new Uint8Array();
    return { body, contentType: String(row.res_type), status: Number(row.res_status) };
  }
}

function webhookOf(row: Row): Webhook | undefined {
  if (row.webhook_url === null || row.webhook_url === undefined) return undefined;
  const events = String(row.webhook_events ?? "").split(",").filter((e) => e !== "") as WebhookEvent[];
  return { url: String(row.webhook_url), events };
}
