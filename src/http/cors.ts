/**
 * CORS for the prediction routes. Cortex 0.10 answered every prediction with
 * `Access-Control-Allow-Origin: *`; that stays the default. `--cors-origin`
 * (repeatable) narrows it to listed origins, `--cors-origin none` turns it
 * off. Preflight `OPTIONS` requests are answered before authentication,
 * since browsers never send credentials with them.
 *
 * @module
 */
import type { MiddlewareHandler } from "hono";

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

/** The CORS headers of the answers to the requests a policy admits. */
export class CorsRule {
  /** `Access-Control-Expose-Headers`. */
  readonly expose = CORS_EXPOSE_HEADERS.join(",");
  /** True when the answer depends on the request's origin (`Vary: Origin`). */
  readonly vary: boolean;
  readonly #origins: readonly string[] | undefined;

  constructor(policy: Exclude<CorsPolicy, { kind: "none" }>) {
    this.#origins = policy.kind === "list" ? policy.origins : undefined;
    this.vary = policy.kind === "list";
  }

  /** The `Access-Control-Allow-Origin` of an answer to `origin` (`""` when none was sent), if allowed. */
  allowOrigin(origin: string): string | undefined {
    if (this.#origins === undefined) return "*";
    return this.#origins.includes(origin) ? origin : undefined;
  }

  /** {@link allowOrigin} of a request with these headers (not read when any origin is allowed). */
  allowOriginOf(headers: Headers): string | undefined {
    return this.#origins === undefined ? "*" : this.allowOrigin(headers.get("origin") ?? "");
  }

  /** Adds the headers to a finished answer; `allowed` is {@link allowOrigin}'s result. */
  addTo(headers: Headers, allowed: string | undefined): void {
    if (allowed !== undefined) {
      headers.set("access-control-allow-origin", allowed);
      headers.set("access-control-expose-headers", this.expose);
    }
    if (this.vary) headers.append("vary", "Origin");
  }
}

/** The CORS rule of `policy`, or `undefined` when CORS is off. */
export function corsRule(policy: CorsPolicy): CorsRule | undefined {
  return policy.kind === "none" ? undefined : new CorsRule(policy);
}

/**
 * The CORS middleware of `rule`. Mount it on each prediction endpoint,
 * before authentication. It answers a preflight `OPTIONS` itself (204) and
 * adds the headers to every other answer after it is made, error answers
 * included, so browser code can read them. (`POST` to an endpoint does not
 * go through it: see ./predict.ts.)
 */
export function corsMiddleware(rule: CorsRule): MiddlewareHandler {
  const preflight: Record<string, string> = {
    "access-control-max-age": String(MAX_AGE_S),
    "access-control-allow-methods": "GET,POST,OPTIONS",
    "access-control-allow-headers": CORS_ALLOW_HEADERS.join(","),
    "access-control-expose-headers": rule.expose,
  };
  return async (c, next) => {
    const origin = rule.allowOrigin(c.req.header("origin") ?? "");
    if (c.req.method === "OPTIONS") {
      const headers: Record<string, string> = { ...preflight };
      if (origin !== undefined) headers["access-control-allow-origin"] = origin;
      headers["vary"] = rule.vary
        ? "Origin, Access-Control-Request-Headers"
        : "Access-Control-Request-Headers";
      return c.body(null, 204, headers);
    }
    await next();
    rule.addTo(c.res.headers, origin);
  };
}

/** A short description for the startup log. */
export function describeCors(policy: CorsPolicy): string {
  if (policy.kind === "list") return policy.origins.join(" ");
  return policy.kind === "any" ? "*" : "none";
}
