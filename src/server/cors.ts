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
import { cors } from "hono/cors";

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
 * Mount it on each prediction endpoint, before authentication.
 */
export function corsMiddleware(policy: CorsPolicy): MiddlewareHandler | undefined {
  if (policy.kind === "none") return undefined;
  return cors({
    origin: policy.kind === "any" ? "*" : [...policy.origins],
    allowMethods: ["GET", "POST", "OPTIONS"],
    allowHeaders: CORS_ALLOW_HEADERS,
    exposeHeaders: CORS_EXPOSE_HEADERS,
    maxAge: MAX_AGE_S,
  });
}

/** A short description for the startup log. */
export function describeCors(policy: CorsPolicy): string {
  if (policy.kind === "list") return policy.origins.join(" ");
  return policy.kind === "any" ? "*" : "none";
}
