/**
 * The open connections of the HTTP listener, and the limits on them, as
 * nginx has them:
 *
 * | state of a connection                     | closed when                                |
 * | ----------------------------------------- | ------------------------------------------ |
 * | accepted, no complete request header yet  | `headerTimeoutMs` passed (`header_timeout`) |
 * | kept alive after a response, no new request | `keepAliveTimeoutMs` passed (`keepalive_timeout`) |
 * | a request in flight                       | never by this file (body and predict deadlines apply) |
 * | answered 408 for a body that stopped coming | its answer is written (`body_timeout`, ./close_after.ts) |
 *
 * A connection counts as idle from its accept, or from the end of its last
 * response, until its next request header is complete (the runtime's HTTP
 * engine reads headers; the handler runs once one is complete). One timer
 * sweeps every idle connection, so requests cost two counter updates and no
 * timer.
 *
 * At `maxConnections`, a new connection takes the place of the connection
 * idle the longest (`evicted`): slow or idle clients cannot lock others out.
 * Only when every connection has a request in flight is the new one refused
 * (`over_limit`): plain HTTP gets `503` with `Connection: close`, TLS a close.
 *
 * @module
 */
import type { Logger } from "../log/logger.ts";
import { closesAfterAnswer } from "./close_after.ts";
import { type ConnectionHandlerInfo, serveConnection, type ServedConnection } from "./serve_connection.ts";

/** Why the server closed a connection. */
export type CloseReason = "header_timeout" | "keepalive_timeout" | "body_timeout" | "evicted" | "over_limit";
/** Every {@link CloseReason}, in the order metrics show them. */
export const CLOSE_REASONS: readonly CloseReason[] = [
  "header_timeout",
  "keepalive_timeout",
  "body_timeout",
  "evicted",
  "over_limit",
];

/** Limits on connections (`--header-timeout`, `--keepalive-timeout`, `--max-connections`). */
export interface ConnectionLimits {
  /** From accept to a complete first request header. */
  readonly headerTimeoutMs: number;
  /** From the end of a response to the next complete request header. */
  readonly keepAliveTimeoutMs: number;
  /** Connections open at once. */
  readonly maxConnections: number;
}

/** Counts read by the metrics at scrape time. */
export interface ConnectionStats {
  readonly open: number;
  readonly accepted: number;
  readonly closed: Readonly<Record<CloseReason, number>>;
}

/** Refusals being answered at once (each holds a descriptor for at most {@link REFUSAL_LINGER_MS}). */
const MAX_REFUSING = 32;
/** How long a refused connection may take to read the 503 before it is closed. */
const REFUSAL_LINGER_MS = 250;
/**
 * Connections closed but not yet released: a closed connection holds its
 * descriptor until the HTTP engine has let it go, so past this many the
 * accept loop waits (clients wait in the kernel's backlog) rather than open
 * descriptors faster than they are released.
 */
const MAX_CLOSING = 32;
/** Oldest connections looked at for one eviction. */
const EVICTION_SCAN = 256;
const REFUSAL_BODY = "Too many open connections: retry in a moment\n";
const REFUSAL = new TextEncoder().encode(
  "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\n" +
    `Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${REFUSAL_BODY.length}\r\n\r\n${REFUSAL_BODY}`,
);

type Handler = (request: Request, info: ConnectionHandlerInfo) => Response | Promise<Response>;

/** One open connection. */
class Tracked {
  readonly abort = new AbortController();
  served: ServedConnection | undefined;
  /** Requests in flight (more than one only over HTTP/2). */
  active = 0;
  /** The request that arrived last (over HTTP/1.1, the one in flight). */
  current: Request | undefined;
  requests = 0;
  /** `performance.now()` when it last became idle. */
  idleSince: number;

  constructor(now: number) {
    this.idleSince = now;
  }
}

/** Serves accepted connections within {@link ConnectionLimits}. */
export class ConnectionTracker implements ConnectionStats {
  readonly #limits: ConnectionLimits;
  readonly #handler: Handler;
  readonly #logger: Logger | undefined;
  readonly #open = new Set<Tracked>();
  readonly #sweepMs: number;
  #sweeper: ReturnType<typeof setInterval> | undefined;
  #refusing = 0;
  #closing = 0;
  #room: PromiseWithResolvers<void> | undefined;
  #draining = false;
  accepted = 0;
  readonly closed: Record<CloseReason, number> = {
    header_timeout: 0,
    keepalive_timeout: 0,
    body_timeout: 0,
    evicted: 0,
    over_limit: 0,
  };

  constructor(limits: ConnectionLimits, handler: Handler, logger?: Logger) {
    this.#limits = limits;
    this.#handler = handler;
    this.#logger = logger;
    const shortest = Math.min(limits.headerTimeoutMs, limits.keepAliveTimeoutMs);
    this.#sweepMs = Math.min(1000, Math.max(20, Math.floor(shortest / 8)));
  }

  /** Connections open now. */
  get open(): number {
    return this.#open.size;
  }

  /**
   * Undefined when another connection may be accepted now, else a promise
   * that resolves once enough closed connections released their descriptors.
   */
  whenRoom(): Promise<void> | undefined {
    if (this.#closing < MAX_CLOSING || this.#draining) return undefined;
    this.#room ??= Promise.withResolvers();
    return this.#room.promise;
  }

  /** Serves `conn`, or refuses it when at the cap with every connection busy. */
  take(conn: Deno.Conn, tls: boolean): void {
    this.accepted++;
    if (this.#draining) return _close(conn);
    if (this.#open.size >= this.#limits.maxConnections && !this.#evictOne()) {
      this.closed.over_limit++;
      return this.#refuse(conn, tls);
    }
    const tracked = new Tracked(performance.now());
    const done = () => {
      tracked.active--;
      tracked.idleSince = performance.now();
      const request = tracked.current;
      tracked.current = undefined;
      if (request !== undefined && closesAfterAnswer(request) && this.#open.has(tracked)) {
        this.#closeAnswered(tracked);
      }
    };
    const handler: Handler = (request, info) => {
      tracked.active++;
      tracked.requests++;
      tracked.current = request;
      info.completed.then(done, done);
      return this.#handler(request, info);
    };
    tracked.served = serveConnection(conn, handler, {
      signal: tracked.abort.signal,
      onError: (error) => this.#onError(error),
    });
    this.#open.add(tracked);
    this.#sweeper ??= setInterval(() => this.#sweep(), this.#sweepMs);
    tracked.served.finished.then(() => this.#forget(tracked));
  }

  /**
   * Stops taking connections, closes the idle ones and resolves once the
   * others have finished their requests and closed.
   */
  async shutdown(): Promise<void> {
    this.#draining = true;
    this.#released();
    const finishing: Promise<void>[] = [];
    for (const tracked of this.#open) {
      if (tracked.active === 0) tracked.abort.abort();
      else finishing.push(tracked.served!.shutdown());
      finishing.push(tracked.served!.finished);
    }
    await Promise.all(finishing);
  }

  #forget(tracked: Tracked): void {
    this.#open.delete(tracked);
    if (this.#open.size === 0 && this.#sweeper !== undefined) {
      clearInterval(this.#sweeper);
      this.#sweeper = undefined;
    }
  }

  #close(tracked: Tracked, reason: CloseReason): void {
    this.closed[reason]++;
    tracked.abort.abort();
    this.#forget(tracked);
    this.#closing++;
    tracked.served!.finished.then(() => {
      this.#closing--;
      this.#released();
    });
  }

  /**
   * Closes a connection whose last answer was just handed to the engine
   * (`body_timeout`), {@link REFUSAL_LINGER_MS} later so that the answer is
   * written out first. (The served connection's own `shutdown` is not used:
   * the runtime's version of it also stops other connections' requests.)
   */
  #closeAnswered(tracked: Tracked): void {
    this.closed.body_timeout++;
    this.#forget(tracked);
    this.#closing++;
    const linger = setTimeout(() => tracked.abort.abort(), REFUSAL_LINGER_MS);
    tracked.served!.finished.then(() => {
      clearTimeout(linger);
      this.#closing--;
      this.#released();
    });
  }

  /** Lets the accept loop go on when it waits for room. */
  #released(): void {
    if (this.#room === undefined || (this.#closing >= MAX_CLOSING && !this.#draining)) return;
    this.#room.resolve();
    this.#room = undefined;
  }

  /** Closes idle connections past their timeout. */
  #sweep(): void {
    const now = performance.now();
    const { headerTimeoutMs, keepAliveTimeoutMs } = this.#limits;
    for (const tracked of this.#open) {
      if (tracked.active > 0) continue;
      const first = tracked.requests === 0;
      if (now - tracked.idleSince >= (first ? headerTimeoutMs : keepAliveTimeoutMs)) {
        this.#close(tracked, first ? "header_timeout" : "keepalive_timeout");
      }
    }
  }

  /** Closes the connection idle the longest; false when the oldest are all busy. */
  #evictOne(): boolean {
    let victim: Tracked | undefined;
    let looked = 0;
    for (const tracked of this.#open) {
      if (tracked.active === 0 && (victim === undefined || tracked.idleSince < victim.idleSince)) {
        victim = tracked;
      }
      if (++looked === EVICTION_SCAN) break;
    }
    if (victim === undefined) return false;
    this.#close(victim, "evicted");
    return true;
  }

  #refuse(conn: Deno.Conn, tls: boolean): void {
    if (tls || this.#refusing >= MAX_REFUSING) return _close(conn);
    this.#refusing++;
    _answerAndClose(conn).finally(() => this.#refusing--);
  }

  #onError(error: unknown): Response {
    this.#logger?.error("unhandled error serving a request", {
      error: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
    });
    return new Response("Internal Server Error", { status: 500 });
  }
}

/** Writes the 503, then reads what the client sent so closing does not reset the connection first. */
async function _answerAndClose(conn: Deno.Conn): Promise<void> {
  const timer = setTimeout(() => _close(conn), REFUSAL_LINGER_MS);
  try {
    let written = 0;
    while (written < REFUSAL.length) written += await conn.write(REFUSAL.subarray(written));
    await conn.closeWrite();
    const sink = new Uint8Array(4096);
    while (await conn.read(sink) !== null) { /* discard */ }
  } catch {
    // The client went away, or the linger timer closed the connection.
  } finally {
    clearTimeout(timer);
    _close(conn);
  }
}

function _close(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Closed already.
  }
}
