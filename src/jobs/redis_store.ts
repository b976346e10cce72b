/**
 * The shared job store (`--jobs redis://...`): several cortex-serve instances
 * take jobs from one Redis. Each API's queue is a stream with one consumer
 * group; a runner's lease on a job is the stream entry pending to it, kept
 * alive by re-claiming it (which resets its idle time); entries idle longer
 * than the lease belong to a runner that died and are reclaimed with
 * `XAUTOCLAIM`. A job's request, state and result are a hash that expires
 * `--job-ttl` after the job ended. Every state change that must be checked
 * against the current state is one Lua script, so it is atomic.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { Redis } from "ioredis";
import { JobStoreError } from "./errors.ts";
import { CANCEL, FINISH, GROUP, LEASE, REAP, REAPER, RENEW } from "./redis_scripts.ts";
import type {
  JobDepth,
  JobOutcome,
  JobRecord,
  JobStatus,
  JobStore,
  LeasedJob,
  NewJob,
  Webhook,
  WebhookEvent,
} from "./job.ts";

/** Settings of a {@link RedisJobStore}. */
export interface RedisStoreOptions {
  /** A lease lasts this long unless renewed (`--job-lease`). */
  readonly leaseMs: number;
  /** Final jobs expire this long after they ended (`--job-ttl`). */
  readonly ttlMs: number;
  /** Key prefix (default `cortex-serve:`). */
  readonly prefix?: string;
}

const text = (value: Buffer | null | undefined) => value == null ? undefined : value.toString("utf8");

/** Jobs in Redis, shared by every server that names the same Redis. */
export class RedisJobStore implements JobStore {
  readonly description: string;
  readonly #redis: Redis;
  readonly #o: RedisStoreOptions;
  readonly #prefix: string;
  /** Stream entry and API of each job leased here. */
  readonly #entries = new Map<string, { readonly entry: string; readonly api: string }>();
  /** APIs whose consumer group exists. */
  readonly #groups = new Set<string>();

  private constructor(redis: Redis, url: string, options: RedisStoreOptions) {
    this.#redis = redis;
    this.#o = options;
    this.#prefix = options.prefix ?? "cortex-serve:";
    this.description = url.replace(/\/\/[^@/]*@/, "//***@");
  }

  /** Connects to `url` (`redis://[user:password@]host:port/db`); fails when it does not answer. */
  static async connect(url: string, options: RedisStoreOptions): Promise<RedisJobStore> {
    const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 2, connectTimeout: 5000 });
    redis.on("error", () => {}); // each command reports its own failure
    try {
      await redis.connect();
      await redis.ping();
    } catch (error) {
      redis.disconnect();
      throw new JobStoreError(
        `Cannot reach the job store ${url.replace(/\/\/[^@/]*@/, "//***@")}: ${
          String(error instanceof Error ? error.message : error).replace(/\.$/, "")
        }; start Redis there or pass another --jobs`,
        { cause: error },
      );
    }
    return new RedisJobStore(redis, url, options);
  }

  async submit(job: NewJob): Promise<void> {
    await this.#group(job.api);
    const r = job.request;
    const fields: Record<string, string | Buffer> = {
      id: job.id,
      api: job.api,
      status: "in_queue",
      created_at: String(job.createdAt),
      attempts: "0",
      req_body: Buffer.from(r.body.buffer, r.body.byteOffset, r.body.byteLength),
      req_type: r.contentType,
      req_query: r.query,
      req_headers: JSON.stringify(r.headers),
    };
    if (job.webhook !== undefined) {
      fields.webhook_url = job.webhook.url;
      fields.webhook_events = job.webhook.events.join(",");
    }
    await this.#redis.multi()
      .hset(this.#job(job.id), fields)
      .xadd(this.#stream(job.api), "*", "id", job.id)
      .exec();
  }

  async get(api: string, id: string): Promise<JobRecord | undefined> {
    const hash = await this.#redis.hgetallBuffer(this.#job(id));
    const record = recordOf(hash);
    return record?.api === api ? record : undefined;
  }

  async lease(api: string, owner: string, _leaseMs: number): Promise<LeasedJob | undefined> {
    await this.#group(api);
    const taken = await this.#redis.eval(
      LEASE,
      1,
      this.#stream(api),
      GROUP,
      owner,
      String(Date.now()),
      `${this.#prefix}job:`,
    ) as [string, string] | null;
    if (taken === null) return undefined;
    const [entry, id] = taken;
    this.#entries.set(id, { entry, api });
    const hash = await this.#redis.hgetallBuffer(this.#job(id));
    return {
      id,
      api,
      attempts: Number(text(hash.attempts)),
      createdAt: Number(text(hash.created_at)),
      request: {
        body: new Uint8Array(hash.req_body ?? []),
        contentType: text(hash.req_type) ?? "application/json",
        query: text(hash.req_query) ?? "",
        headers: JSON.parse(text(hash.req_headers) ?? "{}"),
      },
      webhook: webhookOf(hash),
    };
  }

  async renew(ids: readonly string[], owner: string, _leaseMs: number): Promise<string[]> {
    const lost: string[] = [];
    for (const id of ids) {
      const leased = this.#entries.get(id);
      const held = leased !== undefined &&
        await this.#redis.eval(
            RENEW,
            2,
            this.#stream(leased.api),
            this.#job(id),
            GROUP,
            owner,
            leased.entry,
          ) === 1;
      if (!held) lost.push(id);
    }
    return lost;
  }

  async finish(
    id: string,
    owner: string,
    outcome: JobOutcome,
    maxAttempts: number,
  ): Promise<JobRecord | undefined> {
    const leased = this.#entries.get(id);
    this.#entries.delete(id);
    if (leased === undefined) return undefined;
    const { entry, api } = leased;
    const result = outcome.kind === "completed" ? outcome.result : undefined;
    const error = outcome.kind === "failed" || outcome.kind === "crashed" ? outcome.error : "";
    const finalError = outcome.kind === "crashed"
      ? `${error} (the job was tried ${maxAttempts} times, see --job-attempts)`
      : error;
    const done = await this.#redis.eval(
      FINISH,
      3,
      this.#stream(api),
      this.#job(id),
      this.#webhooks(),
      GROUP,
      owner,
      entry,
      outcome.kind,
      String(Date.now()),
      String(maxAttempts),
      String(this.#o.ttlMs),
      outcome.kind === "crashed" ? finalError : error,
      result === undefined
        ? ""
        : Buffer.from(result.body.buffer, result.body.byteOffset, result.body.byteLength),
      result?.contentType ?? "",
      String(result?.status ?? 0),
    );
    return done === 1 ? await this.get(api, id) : undefined;
  }

  async cancel(api: string, id: string): Promise<JobRecord | undefined> {
    if ((await this.get(api, id)) === undefined) return undefined;
    await this.#redis.eval(
      CANCEL,
      2,
      this.#job(id),
      this.#webhooks(),
      String(Date.now()),
      String(this.#o.ttlMs),
    );
    return await this.get(api, id);
  }

  async requeueExpired(maxAttempts: number): Promise<number> {
    let moved = 0;
    for (const api of await this.#redis.smembers(`${this.#prefix}apis`)) {
      await this.#group(api);
      const stream = this.#stream(api);
      const [, entries] = await this.#redis.call(
        "XAUTOCLAIM",
        stream,
        GROUP,
        REAPER,
        String(this.#o.leaseMs),
        "0-0",
        "COUNT",
        "100",
      ) as [string, [string, string[]][]];
      for (const [entry, fields] of entries) {
        const id = fields[1];
        if (id === undefined) continue;
        moved += Number(
          await this.#redis.eval(
            REAP,
            3,
            stream,
            this.#job(id),
            this.#webhooks(),
            GROUP,
            entry,
            String(maxAttempts),
            String(Date.now()),
            String(this.#o.ttlMs),
          ),
        );
      }
    }
    return moved;
  }

  /** Final jobs expire by themselves (`PEXPIRE` at their end): nothing to sweep. */
  sweep(_ttlMs: number): Promise<number> {
    return Promise.resolve(0);
  }

  async depth(): Promise<ReadonlyMap<string, JobDepth>> {
    const depth = new Map<string, JobDepth>();
    for (const api of await this.#redis.smembers(`${this.#prefix}apis`)) {
      const groups = await this.#redis.call("XINFO", "GROUPS", this.#stream(api)) as unknown[][];
      for (const group of groups) {
        const info = new Map<string, unknown>();
        for (let i = 0; i + 1 < group.length; i += 2) info.set(String(group[i]), group[i + 1]);
        if (info.get("name") !== GROUP) continue;
        depth.set(api, {
          inQueue: Number(info.get("lag") ?? 0),
          inProgress: Number(info.get("pending") ?? 0),
        });
      }
    }
    return depth;
  }

  async pendingWebhooks(limit: number): Promise<JobRecord[]> {
    const ids = await this.#redis.srandmember(this.#webhooks(), limit);
    const records: JobRecord[] = [];
    for (const id of ids) {
      const record = recordOf(await this.#redis.hgetallBuffer(this.#job(id)));
      if (record === undefined) await this.#redis.srem(this.#webhooks(), id); // expired
      else records.push(record);
    }
    return records;
  }

  async webhookDone(id: string): Promise<void> {
    await this.#redis.srem(this.#webhooks(), id);
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.#redis.disconnect();
    return Promise.resolve();
  }

  #job(id: string): string {
    return `${this.#prefix}job:${id}`;
  }

  #stream(api: string): string {
    return `${this.#prefix}queue:${api}`;
  }

  #webhooks(): string {
    return `${this.#prefix}webhooks`;
  }

  /** Creates the API's stream and consumer group once (an existing one is fine). */
  async #group(api: string): Promise<void> {
    if (this.#groups.has(api)) return;
    await this.#redis.sadd(`${this.#prefix}apis`, api);
    try {
      await this.#redis.call("XGROUP", "CREATE", this.#stream(api), GROUP, "0", "MKSTREAM");
    } catch (error) {
      if (!String(error).includes("BUSYGROUP")) throw error;
    }
    this.#groups.add(api);
  }
}

function recordOf(hash: Record<string, Buffer>): JobRecord | undefined {
  if (hash.id === undefined) return undefined;
  const status = text(hash.status) as JobStatus;
  const number = (value: Buffer | undefined) => value === undefined ? undefined : Number(text(value));
  return {
    id: text(hash.id)!,
    api: text(hash.api)!,
    status,
    createdAt: Number(text(hash.created_at)),
    startedAt: number(hash.started_at),
    finishedAt: number(hash.finished_at),
    attempts: Number(text(hash.attempts) ?? 0),
    error: status === "failed" ? text(hash.error) : undefined,
    result: status === "completed"
      ? {
        body: new Uint8Array(hash.res_body ?? []),
        contentType: text(hash.res_type) ?? "application/json",
        status: Number(text(hash.res_status) ?? 200),
      }
      : undefined,
    webhook: webhookOf(hash),
  };
}

function webhookOf(hash: Record<string, Buffer>): Webhook | undefined {
  const url = text(hash.webhook_url);
  if (url === undefined || url === "") return undefined;
  const events = (text(hash.webhook_events) ?? "").split(",").filter((e) => e !== "") as WebhookEvent[];
  return { url, events };
}
