/**
 * Webhooks (Cog's shape): a `POST` of the job's view to the URL given at
 * submit, for the events it asked for. Each delivery has a deadline per
 * try and a bounded number of tries with exponential backoff; deliveries
 * run beside everything else, a bounded number at a time, so a target that
 * never answers holds up nothing. The `completed` event is durable: the
 * store marks it pending with the job's end and clears it once delivered
 * or given up on, so one pending when the server died is sent after start.
 *
 * @module
 */
import type { Logger } from "../log/logger.ts";
import type { JobRecord, JobStore, Webhook, WebhookEvent } from "./job.ts";

/** Events a submitter may name in `webhook_events_filter`. */
export const WEBHOOK_EVENTS: readonly WebhookEvent[] = ["start", "output", "logs", "completed"];
const MAX_URL_CHARS = 2048;

/**
 * The webhook of a submit from its query parameters (`webhook`,
 * `webhook_events_filter`, comma-separated), or undefined when none.
 *
 * @throws {TypeError} A message for the submitter when either is malformed
 */
export function parseWebhook(url: string | null, filter: string | null): Webhook | undefined {
  if (url === null) {
    if (filter !== null) throw new TypeError("webhook_events_filter is set without a webhook");
    return undefined;
  }
  if (url.length > MAX_URL_CHARS) throw new TypeError(`webhook: the URL is over ${MAX_URL_CHARS} characters`);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TypeError(`webhook: ${JSON.stringify(url)} is not an absolute URL`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new TypeError(`webhook: ${JSON.stringify(url)} must be an http:// or https:// URL`);
  }
  const events = filter === null
    ? ["start", "output", "logs", "completed"]
    : filter.split(",").map((e) => e.trim());
  for (const event of events) {
    if (!(WEBHOOK_EVENTS as readonly string[]).includes(event)) {
      throw new TypeError(
        `webhook_events_filter: ${JSON.stringify(event)} is not one of ${WEBHOOK_EVENTS.join(", ")}`,
      );
    }
  }
  return { url: parsed.href, events: [...new Set(events)] as WebhookEvent[] };
}

/** Settings of a {@link WebhookSender}. */
export interface WebhookOptions {
  readonly store: JobStore;
  readonly logger: Logger;
  /** The body of a delivery: the job's view. */
  readonly view: (record: JobRecord) => unknown;
  /** Deadline of one try (default 10 s). */
  readonly timeoutMs?: number;
  /** Tries per delivery (default 6). */
  readonly attempts?: number;
  /** Wait before the second try, doubled for each next one (default 1 s). */
  readonly backoffMs?: number;
  /** Deliveries under way at once (default 32); more wait for the next sweep. */
  readonly concurrency?: number;
}

/** Sends webhooks. */
export class WebhookSender implements AsyncDisposable {
  readonly #o: WebhookOptions;
  readonly #timeoutMs: number;
  readonly #attempts: number;
  readonly #backoffMs: number;
  readonly #concurrency: number;
  /** Job ids with a delivery under way. */
  readonly #busy = new Set<string>();
  readonly #deliveries = new Set<Promise<void>>();
  readonly #stop = new AbortController();

  constructor(options: WebhookOptions) {
    this.#o = options;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#attempts = options.attempts ?? 6;
    this.#backoffMs = options.backoffMs ?? 1000;
    this.#concurrency = options.concurrency ?? 32;
  }

  /** The `start` event of a job, when asked for (not durable: one delivery, its tries). */
  started(record: JobRecord): void {
    if (record.webhook?.events.includes("start")) this.#send(record, false);
  }

  /** The `completed` event of a job that became final (durable). */
  finished(record: JobRecord): void {
    if (record.webhook === undefined) return;
    if (record.webhook.events.includes("completed")) this.#send(record, true);
    else void this.#done(record.id);
  }

  /** Delivers the `completed` events still pending in the store (at start, then now and then). */
  async sweep(): Promise<void> {
    const free = this.#concurrency - this.#deliveries.size;
    if (free <= 0 || this.#stop.signal.aborted) return;
    const pending = await this.#o.store.pendingWebhooks(free + this.#busy.size);
    for (const record of pending) if (!this.#busy.has(record.id)) this.finished(record);
  }

  /** Stops retrying; resolves once the tries under way ended. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.#stop.abort();
    await Promise.all(this.#deliveries);
  }

  #send(record: JobRecord, durable: boolean): void {
    if (this.#deliveries.size >= this.#concurrency || this.#stop.signal.aborted) return; // a later sweep
    if (durable) this.#busy.add(record.id);
    const delivery = this.#deliver(record, durable).finally(() => {
      this.#deliveries.delete(delivery);
      if (durable) this.#busy.delete(record.id);
    });
    this.#deliveries.add(delivery);
  }

  async #deliver(record: JobRecord, durable: boolean): Promise<void> {
    const url = record.webhook!.url;
    const body = JSON.stringify(this.#o.view(record));
    let problem = "";
    for (let attempt = 1; attempt <= this.#attempts; attempt++) {
      if (attempt > 1 && !(await this.#wait(this.#backoffMs * 2 ** (attempt - 2)))) return;
      try {
        const response = await fetch(url, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body,
          redirect: "manual",
          signal: AbortSignal.any([this.#stop.signal, AbortSignal.timeout(this.#timeoutMs)]),
        });
        await response.body?.cancel();
        if (response.ok) {
          if (durable) await this.#done(record.id);
          return;
        }
        problem = `answered ${response.status}`;
      } catch (error) {
        if (this.#stop.signal.aborted) return; // stays pending: sent after the next start
        problem = error instanceof Error && error.name === "TimeoutError"
          ? `no answer within ${this.#timeoutMs} ms`
          : String(error instanceof Error ? error.message : error);
      }
      this.#o.logger.info("webhook try failed", { job: record.id, url, attempt, problem });
    }
    this.#o.logger.warn("webhook given up", { job: record.id, url, attempts: this.#attempts, problem });
    if (durable) await this.#done(record.id);
  }

  /** Waits `ms`, or less when stopping; resolves true when not stopping. */
  #wait(ms: number): Promise<boolean> {
    const signal = this.#stop.signal;
    return new Promise((resolve) => {
      const onStop = () => {
        clearTimeout(timer);
        resolve(false);
      };
      const timer = setTimeout(() => {
        signal.removeEventListener("abort", onStop);
        resolve(true);
      }, ms);
      signal.addEventListener("abort", onStop, { once: true });
    });
  }

  async #done(id: string): Promise<void> {
    try {
      await this.#o.store.webhookDone(id);
    } catch (error) {
      this.#o.logger.error("cannot record a webhook delivery", { job: id, error: String(error) });
    }
  }
}
