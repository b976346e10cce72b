/**
 * API endpoints: syntax, normalization and the routes the server keeps for
 * itself.
 */

/** Routes answered by the server itself; `/metrics/...` and `/_console...` are reserved too. */
export const RESERVED_ROUTES: readonly string[] = ["/", "/healthz", "/livez", "/metrics"];

const _ENDPOINT_CHARS = /^[A-Za-z0-9._~/-]+$/;

/** Why `raw` cannot be an endpoint, or `undefined` when it can. */
export function endpointProblem(raw: string): string | undefined {
  const shown = JSON.stringify(raw);
  if (!raw.startsWith("/")) return `must start with "/", got ${shown}`;
  if (!_ENDPOINT_CHARS.test(raw)) {
    return `may hold only letters, digits and the characters . _ ~ / -, got ${shown}`;
  }
  if (raw.includes("//")) return `must not contain "//", got ${shown}`;
  if (raw.split("/").some((s) => s === "." || s === "..")) {
    return `must not contain a "." or ".." segment, got ${shown}`;
  }
  return undefined;
}

/** Strips the trailing slash of a valid endpoint (`/` stays `/`). */
export function normalizeEndpoint(raw: string): string {
  return raw.length > 1 ? raw.replace(/\/$/, "") : raw;
}

/**
 * Why `endpoint` clashes with a route of the server, or `undefined`.
 *
 * @param explicit whether the user wrote it (else it is the default endpoint)
 */
export function reservedProblem(endpoint: string, explicit: boolean): string | undefined {
  const reserved = RESERVED_ROUTES.includes(endpoint) ||
    endpoint.startsWith("/metrics/") || endpoint === "/_console" || endpoint.startsWith("/_console/");
  if (!reserved) return undefined;
  const what = explicit ? JSON.stringify(endpoint) : `the default endpoint ${JSON.stringify(endpoint)}`;
  return `${what} is reserved for the server (/, /healthz, /livez, /metrics and /_console are)`;
}
