/**
 * Bounded memory of recent events for the console: the last requests (a
 * ring of preallocated columns, so recording one allocates nothing) and the
 * last worker and API log lines.
 *
 * @module
 */
import type { LogFields, LogLevel } from "../../log/logger.ts";

/** One request as the console shows it. */
export interface RecentRequest {
  /** Epoch milliseconds when the answer was sent. */
  readonly time: number;
  readonly api: string;
  readonly status: number;
  readonly latency_ms: number;
  readonly request_id: string;
}

/** The last `capacity` requests. */
export class RequestRing {
  readonly #time: Float64Array;
  readonly #status: Uint16Array;
  readonly #latency: Float64Array;
  readonly #api: string[];
  readonly #id: string[];
  #next = 0;
  #size = 0;

  constructor(readonly capacity: number) {
    this.#time = new Float64Array(capacity);
    this.#status = new Uint16Array(capacity);
    this.#latency = new Float64Array(capacity);
    this.#api = new Array<string>(capacity).fill("");
    this.#id = new Array<string>(capacity).fill("");
  }

  /** Records a finished request, overwriting the oldest when full. */
  push(time: number, api: string, status: number, latencyMs: number, requestId: string): void {
    const i = this.#next;
    this.#time[i] = time;
    this.#api[i] = api;
    this.#status[i] = status;
    this.#latency[i] = latencyMs;
    this.#id[i] = requestId;
    this.#next = i + 1 === this.capacity ? 0 : i + 1;
    if (this.#size < this.capacity) this.#size++;
  }

  /** The requests kept, newest first. */
  list(): RecentRequest[] {
    const out: RecentRequest[] = [];
    for (let k = 1; k <= this.#size; k++) {
      const i = (this.#next - k + this.capacity) % this.capacity;
      out.push({
        time: this.#time[i]!,
        api: this.#api[i]!,
        status: this.#status[i]!,
        latency_ms: Math.round(this.#latency[i]! * 1000) / 1000,
        request_id: this.#id[i]!,
      });
    }
    return out;
  }
}

/** One log line as the console shows it. */
export interface RecentLog {
  readonly time: number;
  readonly level: LogLevel;
  readonly api: string | null;
  readonly replica: number | null;
  /** The message; for lines a worker wrote, the line itself. */
  readonly message: string;
  /** The other fields as `key=value` text, e.g. `pid=4242 init_ms=112`. */
  readonly detail: string;
}

/** Fields shown in their own column or not at all. */
const OWN_FIELDS: ReadonlySet<string> = new Set(["api", "replica", "stream"]);
/** Longest message or detail kept, in characters. */
const MAX_TEXT = 2000;

/** The last `capacity` log lines about APIs and their workers. */
export class LogRing {
  readonly #lines: (RecentLog | undefined)[];
  #next = 0;

  constructor(readonly capacity: number) {
    this.#lines = new Array<RecentLog | undefined>(capacity).fill(undefined);
  }

  /**
   * Keeps a line when it concerns an API (worker output, worker and API
   * events) or is a warning or an error; skips the per-request access line.
   */
  offer(level: LogLevel, message: string, own: LogFields, fields: LogFields | undefined): void {
    if (message === "request") return;
    const api = fields?.api ?? own.api;
    if (api === undefined && level !== "warn" && level !== "error") return;
    const replica = fields?.replica ?? own.replica;
    const detail: string[] = [];
    for (const source of [own, fields ?? {}]) {
      for (const [key, value] of Object.entries(source)) {
        if (value === undefined || OWN_FIELDS.has(key)) continue;
        detail.push(`${key}=${typeof value === "string" ? value : JSON.stringify(value)}`);
      }
    }
    this.#lines[this.#next] = {
      time: Date.now(),
      level,
      api: api === undefined ? null : String(api),
      replica: typeof replica === "number" ? replica : null,
      message: message.slice(0, MAX_TEXT),
      detail: detail.join(" ").slice(0, MAX_TEXT),
    };
    this.#next = (this.#next + 1) % this.capacity;
  }

  /** The lines kept, newest first. */
  list(): RecentLog[] {
    const out: RecentLog[] = [];
    for (let k = 1; k <= this.capacity; k++) {
      const line = this.#lines[(this.#next - k + this.capacity) % this.capacity];
      if (line === undefined) break;
      out.push(line);
    }
    return out;
  }
}
