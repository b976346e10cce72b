// The SQLite job store's worker thread: every statement, every sync to disk
// and every result file is done here, so a disk that is slow to sync never
// stalls the server's event loop (and the synchronous predictions on it).
// Loaded as text by ./sqlite_store.ts and started from a blob URL, so the
// program never reads its own source tree. Messages: {id, method, args} in,
// {id, value} or {id, error} out; `open` comes first.

import { DatabaseSync } from "node:sqlite";
import * as path from "node:path";

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

const HELD = "id = ? AND owner = ? AND status = 'in_progress'";

/** The database and the results directory. */
class Store {
  /**
   * @param {string} dir
   * @param {number} inlineBytes
   */
  constructor(dir, inlineBytes) {
    this.resultsDir = path.join(dir, "results");
    Deno.mkdirSync(this.resultsDir, { recursive: true, mode: 0o700 });
    this.file = path.join(dir, "jobs.sqlite");
    this.inlineBytes = inlineBytes;
    this.db = new DatabaseSync(this.file);
    try {
      this.db.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;");
      this.db.exec(SCHEMA);
    } catch (error) {
      this.db.close();
      throw new Error(
        `Cannot open the job store "${this.file}": ${error instanceof Error ? error.message : error}; ` +
          "remove the file if it is not a job database, or pass another --state-dir",
      );
    }
  }

  /** A new job, synced to disk before the answer. */
  submit(job) {
    const r = job.request;
    this.db.exec("PRAGMA synchronous=FULL");
    try {
      this.db.prepare(
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
    } finally {
      this.db.exec("PRAGMA synchronous=NORMAL");
    }
  }

  get(api, id) {
    const row = this.db.prepare("SELECT * FROM jobs WHERE id = ? AND api = ?").get(id, api);
    return row === undefined ? undefined : this.record(row);
  }

  lease(api, owner, leaseMs) {
    const now = Date.now();
    const row = this.db.prepare(
      `UPDATE jobs SET status = 'in_progress', owner = ?, lease_until = ?, attempts = attempts + 1,
         started_at = ? WHERE rowid = (SELECT rowid FROM jobs WHERE api = ? AND status = 'in_queue'
         ORDER BY rowid LIMIT 1) RETURNING id, api, attempts, created_at, req_body, req_type, req_query,
         req_headers, webhook_url, webhook_events`,
    ).get(owner, now + leaseMs, now, api);
    if (row === undefined) return undefined;
    return {
      id: String(row.id),
      api: String(row.api),
      attempts: Number(row.attempts),
      createdAt: Number(row.created_at),
      request: {
        body: row.req_body,
        contentType: String(row.req_type),
        query: String(row.req_query),
        headers: JSON.parse(String(row.req_headers)),
      },
      webhook: webhookOf(row),
    };
  }

  renew(ids, owner, leaseMs) {
    const until = Date.now() + leaseMs;
    const update = this.db.prepare(
      "UPDATE jobs SET lease_until = ? WHERE id = ? AND owner = ? AND status = 'in_progress'",
    );
    const lost = [];
    this.transaction(() => {
      for (const id of ids) if (Number(update.run(until, id, owner).changes) === 0) lost.push(id);
    });
    return lost;
  }

  async finish(id, owner, outcome, maxAttempts) {
    const now = Date.now();
    switch (outcome.kind) {
      case "completed": {
        const result = outcome.result;
        const file = result.body.length > this.inlineBytes ? await this.writeResult(id, result.body) : null;
        const changed = this.db.prepare(
          `UPDATE jobs SET status = 'completed', finished_at = ?, owner = NULL, lease_until = NULL,
             res_body = ?, res_file = ?, res_type = ?, res_status = ?,
             webhook_pending = (webhook_url IS NOT NULL) WHERE ${HELD}`,
        ).run(now, file === null ? result.body : null, file, result.contentType, result.status, id, owner);
        if (Number(changed.changes) === 0) {
          if (file !== null) await Deno.remove(path.join(this.resultsDir, file)).catch(() => {});
          return undefined;
        }
        break;
      }
      case "failed":
        if (!this.fail(id, owner, outcome.error, now)) return undefined;
        break;
      case "crashed": {
        const requeued = this.db.prepare(
          `UPDATE jobs SET status = 'in_queue', owner = NULL, lease_until = NULL, error = ?
             WHERE ${HELD} AND attempts < ?`,
        ).run(outcome.error, id, owner, maxAttempts);
        if (Number(requeued.changes) > 0) return undefined;
        const error = `${outcome.error} (the job was tried ${maxAttempts} times, see --job-attempts)`;
        if (!this.fail(id, owner, error, now)) return undefined;
        break;
      }
      case "released":
        this.db.prepare(
          `UPDATE jobs SET status = 'in_queue', owner = NULL, lease_until = NULL,
             attempts = attempts - 1 WHERE ${HELD}`,
        ).run(id, owner);
        return undefined;
    }
    const row = this.db.prepare("SELECT * FROM jobs WHERE id = ?").get(id);
    return row === undefined ? undefined : this.record(row);
  }

  cancel(api, id) {
    this.db.prepare(
      `UPDATE jobs SET status = 'cancelled', finished_at = ?, owner = NULL, lease_until = NULL,
         webhook_pending = (webhook_url IS NOT NULL)
         WHERE id = ? AND api = ? AND status IN ('in_queue', 'in_progress')`,
    ).run(Date.now(), id, api);
    return this.get(api, id);
  }

  requeueExpired(maxAttempts) {
    const now = Date.now();
    let moved = 0;
    this.transaction(() => {
      moved += Number(
        this.db.prepare(
          `UPDATE jobs SET status = 'in_queue', owner = NULL, lease_until = NULL,
             error = 'the server running it stopped' WHERE status = 'in_progress' AND lease_until < ?
             AND attempts < ?`,
        ).run(now, maxAttempts).changes,
      );
      moved += Number(
        this.db.prepare(
          `UPDATE jobs SET status = 'failed', finished_at = ?, owner = NULL, lease_until = NULL,
             error = 'the server running it stopped ' || attempts || ' times (see --job-attempts)',
             webhook_pending = (webhook_url IS NOT NULL)
             WHERE status = 'in_progress' AND lease_until < ?`,
        ).run(now, now).changes,
      );
    });
    return moved;
  }

  async sweep(ttlMs) {
    const rows = this.db.prepare(
      "DELETE FROM jobs WHERE finished_at IS NOT NULL AND finished_at < ? RETURNING res_file",
    ).all(Date.now() - ttlMs);
    for (const row of rows) {
      if (row.res_file !== null) {
        await Deno.remove(path.join(this.resultsDir, String(row.res_file))).catch(() => {});
      }
    }
    return rows.length;
  }

  depth() {
    const rows = this.db.prepare(
      `SELECT api, SUM(status = 'in_queue') AS q, SUM(status = 'in_progress') AS p FROM jobs
         WHERE status IN ('in_queue', 'in_progress') GROUP BY api`,
    ).all();
    return rows.map((row) => [String(row.api), { inQueue: Number(row.q), inProgress: Number(row.p) }]);
  }

  pendingWebhooks(limit) {
    const rows = this.db.prepare("SELECT * FROM jobs WHERE webhook_pending = 1 LIMIT ?").all(limit);
    return rows.map((row) => this.record(row));
  }

  webhookDone(id) {
    this.db.prepare("UPDATE jobs SET webhook_pending = 0 WHERE id = ?").run(id);
  }

  close() {
    if (this.db.isOpen) this.db.close();
  }

  fail(id, owner, error, now) {
    return Number(
      this.db.prepare(
        `UPDATE jobs SET status = 'failed', finished_at = ?, owner = NULL, lease_until = NULL, error = ?,
           webhook_pending = (webhook_url IS NOT NULL) WHERE ${HELD}`,
      ).run(now, error, id, owner).changes,
    ) > 0;
  }

  transaction(body) {
    this.db.exec("BEGIN IMMEDIATE");
    try {
      body();
      this.db.exec("COMMIT");
    } catch (error) {
      this.db.exec("ROLLBACK");
      throw error;
    }
  }

  /** Writes a result file, synced, under a name of its own (a second run of the job writes another). */
  async writeResult(id, body) {
    const name = `${id}.${crypto.randomUUID().slice(0, 8)}`;
    const full = path.join(this.resultsDir, name);
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

  record(row) {
    const status = String(row.status);
    return {
      id: String(row.id),
      api: String(row.api),
      status,
      createdAt: Number(row.created_at),
      startedAt: row.started_at === null ? undefined : Number(row.started_at),
      finishedAt: row.finished_at === null ? undefined : Number(row.finished_at),
      attempts: Number(row.attempts),
      error: status === "failed" && row.error !== null ? String(row.error) : undefined,
      result: status === "completed" ? this.result(row) : undefined,
      webhook: webhookOf(row),
    };
  }

  result(row) {
    const body = row.res_file !== null
      ? Deno.readFileSync(path.join(this.resultsDir, String(row.res_file)))
      : row.res_body ?? new Uint8Array();
    return { body, contentType: String(row.res_type), status: Number(row.res_status) };
  }
}

function webhookOf(row) {
  if (row.webhook_url === null || row.webhook_url === undefined) return undefined;
  const events = String(row.webhook_events ?? "").split(",").filter((e) => e !== "");
  return { url: String(row.webhook_url), events };
}

let store;

self.onmessage = async (event) => {
  const { id, method, args } = event.data;
  try {
    let value;
    if (method === "open") {
      store = new Store(args[0], args[1]);
      value = store.file;
    } else {
      value = await store[method](...args);
    }
    self.postMessage({ id, value });
  } catch (error) {
    self.postMessage({ id, error: error instanceof Error ? error.message : String(error) });
  }
};
