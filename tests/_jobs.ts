/**
 * Test helpers for durable jobs: an async project whose predict logs every
 * execution to a file, submitting many jobs, waiting for a server's job
 * queue to empty, and reading the SQLite store as the server left it.
 */
import { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import { delay, makeProject, type TempDir } from "./_helpers.ts";

/**
 * An `async: true` project: predict sleeps `sleep` seconds (default none),
 * appends `"<n>\n"` to the file `executions` (when given) and answers `{"n": n}`.
 */
export function asyncProject(
  options: { replicas?: number; async?: boolean; executions?: string } = {},
): Promise<TempDir> {
  const replicas = options.replicas ?? 1;
  return makeProject({
    "cortex.yaml": `- kind: deployment
  name: jobs
- kind: api
  name: api
  endpoint: /api
${options.async === false ? "" : "  async: true\n"}  python:
    inference: inference.py
    env:
      EXECUTIONS: "${options.executions ?? ""}"
  compute:
    min_replicas: ${replicas}
    max_replicas: ${replicas}
`,
    "inference.py": `import os, time
def predict(sample, metadata):
    time.sleep(sample.get("sleep", 0))
    if sample.get("crash"):
        os._exit(3)
    path = os.environ.get("EXECUTIONS")
    if path:
        with open(path, "a") as f:
            f.write("%d\\n" % sample["n"])
    return {"n": sample["n"]}
`,
  });
}

/** Submits `count` jobs `{"n": i, ...extra}`, `parallel` at a time; resolves with their ids in order. */
export async function submitJobs(
  url: string,
  count: number,
  extra: Record<string, unknown> = {},
  parallel = 25,
): Promise<string[]> {
  const ids: string[] = new Array(count);
  for (let start = 0; start < count; start += parallel) {
    await Promise.all(
      Array.from({ length: Math.min(parallel, count - start) }, async (_, k) => {
        const n = start + k;
        const response = await fetch(url, { method: "POST", body: JSON.stringify({ n, ...extra }) });
        const body = await response.json();
        if (response.status !== 202) {
          throw new Error(`Submit ${n}: ${response.status} ${JSON.stringify(body)}`);
        }
        ids[n] = body.id;
      }),
    );
  }
  return ids;
}

/** Polls `check` every 50 ms until it returns true; throws after `timeoutMs`. */
export async function eventually(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await delay(50);
  }
}

/** The job counts of the first API from a server's `GET /`. */
export async function jobCounts(base: string): Promise<{ in_queue: number; in_progress: number }> {
  const index = await (await fetch(`${base}/`)).json();
  return index.apis[0].jobs;
}

/** Lines of the executions file (one per predict that ran to its end). */
export async function executions(file: string): Promise<number[]> {
  try {
    return (await Deno.readTextFile(file)).split("\n").filter((l) => l !== "").map(Number);
  } catch {
    return [];
  }
}

/** The rows of the SQLite job store under `stateDir`: id, status, result text, attempts. */
export function storedJobs(
  stateDir: string,
): { id: string; status: string; result: string; attempts: number }[] {
  const db = new DatabaseSync(join(stateDir, "jobs", "jobs.sqlite"), { readOnly: true });
  try {
    return (db.prepare("SELECT id, status, res_body, attempts FROM jobs").all() as Record<string, unknown>[])
      .map(
        (row) => ({
          id: String(row.id),
          status: String(row.status),
          result: row.res_body === null ? "" : new TextDecoder().decode(row.res_body as Uint8Array),
          attempts: Number(row.attempts),
        }),
      );
  } finally {
    db.close();
  }
}
