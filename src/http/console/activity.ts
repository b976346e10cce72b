/**
 * What the console shows beyond the status of the pools: the last requests,
 * the last log lines about APIs and workers, and each API's last minute.
 * Owned by the server (like the request counters) so it survives a reload;
 * every part is bounded.
 *
 * @module
 */
import type { LogTap } from "../../log/logger.ts";
import { LatencyWindow, type WindowSnapshot } from "./latency_window.ts";
import { LogRing, type RecentLog, type RecentRequest, RequestRing } from "./recent.ts";

/** Sizes of {@link ConsoleActivity}'s memory. */
export interface ActivityOptions {
  /** Requests kept (default 100). */
  readonly requests?: number;
  /** Log lines kept (default 200). */
  readonly logLines?: number;
}

/** Recent requests, log lines and per-API latency windows. */
export class ConsoleActivity {
  readonly #requests: RequestRing;
  readonly #logs: LogRing;
  readonly #windows = new Map<string, LatencyWindow>();

  constructor(options: ActivityOptions = {}) {
    this.#requests = new RequestRing(options.requests ?? 100);
    this.#logs = new LogRing(options.logLines ?? 200);
  }

  /** Feeds log events to the console; pass as the server logger's `tap`. */
  readonly tap: LogTap = (level, message, own, fields) => this.#logs.offer(level, message, own, fields);

  /** Counts one finished request of `api`. */
  record(api: string, status: number, latencyMs: number, requestId: string): void {
    const now = Date.now();
    this.#requests.push(now, api, status, latencyMs, requestId);
    let window = this.#windows.get(api);
    if (window === undefined) {
      window = new LatencyWindow();
      this.#windows.set(api, window);
    }
    window.record(status, latencyMs, now);
  }

  /** The last minute of `api` up to `nowMs`. */
  lastMinute(api: string, nowMs: number): WindowSnapshot {
    return (this.#windows.get(api) ?? EMPTY).snapshot(nowMs);
  }

  /** The requests kept, newest first. */
  recentRequests(): RecentRequest[] {
    return this.#requests.list();
  }

  /** The log lines kept, newest first. */
  recentLogs(): RecentLog[] {
    return this.#logs.list();
  }
}

const EMPTY = new LatencyWindow();
