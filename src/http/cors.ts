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

/**
 * The CORS middleware for `policy`, or `undefined` when CORS is off.
 * Mount it on each prediction endpoint, before authentication. It answers a
 * preflight `OPTIONS` itself (204) and adds the headers to every other
 * answer after it is made, error answers included, so browser code can read
 * them. (Headers are set on the finished response rather than before the
 * handler runs: on the prediction route that saves a placeholder response
 * per request.)
 */
export function corsMiddleware(policy: CorsPolicy): MiddlewareHandler | undefined {
  if (policy.kind === "none") return undefined;
  const allowOrigin = policy.kind === "any"
    ? () => "*"
    : (origin: string) => (policy.origins.includes(origin) ? origin : undefined);
  const vary = policy.kind === "list";
  const expose = CORS_EXPOSE_HEADERS.join(",");
  const preflight: Record<string, string> = {
    "access-control-max-age": String(MAX_AGE_S),
    "access-control-allow-methods": "GET,POST,OPTIONS",
    "access-control-allow-headers": CORS_ALLOW_HEADERS.join(","),
    "access-control-expose-headers": expose,
  };
  return async (c, next) => {
    const origin = allowOrigin(c.req.header("origin") ?? "");
    if (c.req.method === "OPTIONS") {
      const headers: Record<string, string> = { ...preflight };
      if (origin !== undefined) headers["access-control-allow-origin"] = origin;
      headers["vary"] = vary ? "Origin, Access-Control-Request-Headers" : "Access-Control-Request-Headers";
      return c.body(null, 204, headers);
    }
    await next();
    const headers = c.res.headers;
    if (origin !== undefined) {
      headers.set("access-control-allow-origin", origin);
      headers.set("access-control-expose-headers", expose);
    }
    if (vary) headers.append("vary", "Origin");
  };
}

/** A short description for the startup log. */
export function describeCors(policy: CorsPolicy): string {
  if (policy.kind === "list") return policy.origins.join(" ");
  return policy.kind === "any" ? "*" : "none";
}
