/**
 * CORS for the prediction routes. Cortex 0.10 answered every prediction with
 * `Access-Control-Allow-Origin: *`; that stays the default. `--cors-origin`
 * (repeatable) narrows it to listed origins, `--cors-origin none` turns it
 * off. Preflight `OPTIONS` requests are answered before authentication,
 * since browsers never send credentials with them.
 *
 * The headers of an answer depend only on the origin decision (any origin,
 * one listed origin, an origin not listed), so each decision's headers are
 * made once, as a {@link CorsHeaders}, when the rule is built: a request
 * only looks its decision up.
 *
 * @module
 */
import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "./app_env.ts";

/** Which origins may call the prediction routes from a browser. */
export type CorsPolicy =
  | { readonly kind: "any" }
  | { readonly kind: "none" }
  | { readonly kind: "list"; readonly origins: readonly string[] };

/** Headers a browser may send on a prediction request. */
export const CORS_ALLOW_HEADERS = ["authorization", "content-type", "x-api-key", "x-request-id"];
/** Response headers browser code may read. */
export const CORS_EXPOSE_HEADERS = ["x-request-id", "retry-after"];
/** Seconds a browser may cache a preflight answer. */
const MAX_AGE_S = 600;

/** The CORS headers of the answers to one origin decision, made once. */
export class CorsHeaders {
  /** `Access-Control-Allow-Origin`, when the origin is allowed. */
  readonly allowOrigin: string | undefined;
  /** True when the answer depends on the request's origin (`Vary: Origin`). */
  readonly vary: boolean;
  /** The headers of a JSON answer: `content-type` and these, in one record; a request adds its id to a copy. */
  readonly json: Readonly<Record<string, string>>;
  /** The headers set (not appended) on an answer. */
  readonly #set: readonly (readonly [string, string])[];

  constructor(allowOrigin: string | undefined, vary: boolean) {
    this.allowOrigin = allowOrigin;
    this.vary = vary;
    const set: [string, string][] = allowOrigin === undefined ? [] : [
      ["access-control-allow-origin", allowOrigin],
      ["access-control-expose-headers", CORS_EXPOSE_HEADERS.join(",")],
    ];
    this.#set = set;
    this.json = Object.freeze(
      Object.fromEntries([
        ["content-type", "application/json"],
        ...set,
        ...(vary ? [["vary", "Origin"]] : []),
      ]),
    );
  }

  /** Adds the headers to a finished answer (`Vary` appended to any it has). */
  addTo(headers: Headers): void {
    const set = this.#set;
    for (let i = 0; i < set.length; i++) headers.set(set[i]![0], set[i]![1]);
    if (this.vary) headers.append("vary", "Origin");
  }
}

/** No CORS headers (CORS off, or a route without CORS). */
export const NO_CORS: CorsHeaders = new CorsHeaders(undefined, false);

/** The CORS headers of the answers to the requests a policy admits. */
export class CorsRule {
  /** `Access-Control-Expose-Headers`. */
  readonly expose = CORS_EXPOSE_HEADERS.join(",");
  /** True when the answer depends on the request's origin (`Vary: Origin`). */
  readonly vary: boolean;
  /** The headers of each listed origin; undefined when any origin is allowed. */
  readonly #listed: ReadonlyMap<string, CorsHeaders> | undefined;
  /** Any origin (`*`), or an origin not listed. */
  readonly #other: CorsHeaders;

  constructor(policy: Exclude<CorsPolicy, { kind: "none" }>) {
    this.vary = policy.kind === "list";
    if (policy.kind === "list") {
      this.#listed = new Map(policy.origins.map((origin) => [origin, new CorsHeaders(origin, true)]));
      this.#other = new CorsHeaders(undefined, true);
    } else {
      this.#listed = undefined;
      this.#other = new CorsHeaders("*", false);
    }
  }

  /** The headers of an answer to `origin` (`""` when none was sent). */
  of(origin: string): CorsHeaders {
    return this.#listed?.get(origin) ?? this.#other;
  }

  /** {@link of} a request with these headers (not read when any origin is allowed). */
  ofRequest(headers: Headers): CorsHeaders {
    const listed = this.#listed;
    return listed === undefined ? this.#other : (listed.get(headers.get("origin") ?? "") ?? this.#other);
  }
}

/** The CORS rule of `policy`, or `undefined` when CORS is off. */
export function corsRule(policy: CorsPolicy): CorsRule | undefined {
  return policy.kind === "none" ? undefined : new CorsRule(policy);
}

/**
 * The CORS middleware of `rule`. Mount it on each prediction endpoint,
 * before authentication. It answers a preflight `OPTIONS` itself (204) and
 * records the headers of every other answer in the request's exchange,
 * which adds them once the answer is made, error answers included, so
 * browser code can read them (./pipeline.ts). (`POST` to an endpoint does
 * not go through it: see ./predict.ts.)
 */
export function corsMiddleware(rule: CorsRule): MiddlewareHandler<AppEnv> {
  const preflight: Record<string, string> = {
    "access-control-max-age": String(MAX_AGE_S),
    "access-control-allow-methods": "GET,POST,OPTIONS",
    "access-control-allow-headers": CORS_ALLOW_HEADERS.join(","),
    "access-control-expose-headers": rule.expose,
  };
  return async (c, next) => {
    const cors = rule.ofRequest(c.req.raw.headers);
    if (c.req.method === "OPTIONS") {
      const headers: Record<string, string> = { ...preflight };
      if (cors.allowOrigin !== undefined) headers["access-control-allow-origin"] = cors.allowOrigin;
      headers["vary"] = rule.vary
        ? "Origin, Access-Control-Request-Headers"
        : "Access-Control-Request-Headers";
      return c.body(null, 204, headers);
    }
    c.get("exchange").cors = cors;
    await next();
  };
}

/** A short description for the startup log. */
export function describeCors(policy: CorsPolicy): string {
  if (policy.kind === "list") return policy.origins.join(" ");
  return policy.kind === "any" ? "*" : "none";
}
