/**
 * API key authentication as Hono middleware: every route except the probes
 * (`/livez`, `/healthz`) and the console page and its assets requires `Authorization: Bearer <key>` or
 * `X-Api-Key: <key>`. The rule is by path, so routes added later (such as
 * `/metrics`) are protected without being listed.
 *
 * @module
 */
import type { MiddlewareHandler } from "hono";
import type { Logger } from "../log/logger.ts";
import type { KeyStore } from "../security/api_keys.ts";
import type { AppEnv } from "./app_env.ts";
import { ApiError } from "../errors/api_error.ts";
import type { RejectionLog } from "./shedding.ts";
import { isOpenConsoleRequest } from "./console/routes.ts";
import type { Exchange } from "./exchange.ts";

/** Paths orchestrators probe; they stay open and reveal no error text when keys are on. */
export const OPEN_PATHS: ReadonlySet<string> = new Set([
  "/livez",
  "/healthz",
  "/v2/health/live",
  "/v2/health/ready",
]);

/** The `WWW-Authenticate` challenge of a 401 (RFC 6750). */
export const CHALLENGE = 'Bearer realm="cortex-serve"';

const MESSAGE = "Missing or invalid API key: send it as 'Authorization: Bearer <key>' or 'X-Api-Key: <key>'";

/**
 * The keys a request presents: the token of an `Authorization: Bearer`
 * header and the value of `X-Api-Key`, whichever are there.
 */
export function presentedKeys(headers: Headers): string[] {
  const found: string[] = [];
  const bearer = /^Bearer +(\S+) *$/i.exec(headers.get("authorization") ?? "");
  if (bearer?.[1] !== undefined) found.push(bearer[1]);
  const apiKey = headers.get("x-api-key")?.trim();
  if (apiKey) found.push(apiKey);
  return found;
}

/**
 * Checks the key request `x` presents in `headers` and returns the key's id (for the
 * request log), or throws. A missing and a wrong key get the same answer;
 * the log says which, never the key: one line per second per path and
 * reason with a count (`rejections`), or one line each at debug level.
 *
 * @throws {ApiError} UNAUTHORIZED (answered 401 with a JSON error body and `WWW-Authenticate`)
 */
export function authenticate(
  keys: KeyStore,
  logger: Logger,
  rejections: RejectionLog,
  headers: Headers,
  x: Exchange,
): string {
  const presented = presentedKeys(headers);
  const id = keys.match(presented);
  if (id !== undefined) return id;
  const { method, path } = x;
  const reason = presented.length === 0 ? "no key" : "unknown key";
  if (rejections.perRequest) {
    logger.warn("unauthorized", { request_id: x.requestId, method, path, reason });
  } else {
    rejections.count("unauthorized", { method, path, reason });
  }
  throw new ApiError("UNAUTHORIZED", MESSAGE, { headers: { "www-authenticate": CHALLENGE } });
}

/**
 * The API key step of every request (./steps.ts): the probes and the open
 * console requests pass, any other request must present an accepted key.
 */
export class KeyCheck {
  readonly #keys: KeyStore;
  readonly #logger: Logger;
  readonly #rejections: RejectionLog;

  constructor(keys: KeyStore, logger: Logger, rejections: RejectionLog) {
    this.#keys = keys;
    this.#logger = logger;
    this.#rejections = rejections;
  }

  /**
   * Records the id of the key request `x` presents in `headers` in `x`, or
   * throws ({@link authenticate}); nothing for an open path.
   *
   * @throws {ApiError} UNAUTHORIZED
   */
  check(x: Exchange, headers: Headers): void {
    const { method, path } = x;
    if (OPEN_PATHS.has(path)) return;
    if (isOpenConsoleRequest(method, path, headers)) return;
    x.keyId = authenticate(this.#keys, this.#logger, this.#rejections, headers, x);
  }
}

/**
 * Middleware of {@link KeyCheck.check}: 401 unless the request carries an
 * accepted key. (`POST` to an endpoint does not go through it: see
 * ./predict.ts, which calls the same check.)
 */
export function requireApiKey(check: KeyCheck): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    check.check(c.get("exchange"), c.req.raw.headers);
    await next();
  };
}
