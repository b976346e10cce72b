/**
 * The security flags of `cortex-serve serve`: `--api-key-file`,
 * `--tls-cert`, `--tls-key` and `--cors-origin`, parsed into
 * {@link SecurityOptions}.
 *
 * @module
 */
import { resolve } from "node:path";
import type { CorsPolicy } from "../http/cors.ts";
import type { TlsFiles } from "../security/tls.ts";
import { UsageError } from "./units.ts";

/** The `parseArgs` definitions of the security flags. */
export const SECURITY_FLAGS = {
  "api-key-file": { type: "string" },
  "tls-cert": { type: "string" },
  "tls-key": { type: "string" },
  "cors-origin": { type: "string", multiple: true },
} as const;

/** Help text lines for the security flags. */
export const SECURITY_HELP = `  --api-key-file PATH     require an API key (one per line, # comments) on every
                          route but /livez and /healthz (also $CORTEX_API_KEYS_FILE)
  --tls-cert PATH         serve HTTPS with this PEM certificate chain (with --tls-key)
  --tls-key PATH          PEM private key of --tls-cert
  --cors-origin ORIGIN    origin allowed to call prediction routes from a browser;
                          repeatable; * (default) or none`;

/** The security flags, resolved. */
export interface SecurityOptions {
  /** Absolute path from `--api-key-file`; `CORTEX_API_KEYS_FILE` is consulted at startup when absent. */
  readonly apiKeyFile: string | undefined;
  readonly tls: TlsFiles | undefined;
  readonly cors: CorsPolicy;
}

/** The parsed values of {@link SECURITY_FLAGS}. */
export interface SecurityFlagValues {
  readonly "api-key-file"?: string | undefined;
  readonly "tls-cert"?: string | undefined;
  readonly "tls-key"?: string | undefined;
  readonly "cors-origin"?: readonly string[] | undefined;
}

/**
 * Resolves the security flags.
 *
 * @throws {UsageError} for `--tls-cert` without `--tls-key` (or the reverse),
 * an empty path or a malformed origin
 */
export function parseSecurityFlags(values: SecurityFlagValues): SecurityOptions {
  const cert = _path("tls-cert", values["tls-cert"]);
  const key = _path("tls-key", values["tls-key"]);
  if ((cert === undefined) !== (key === undefined)) {
    throw new UsageError(
      `--${cert === undefined ? "tls-key" : "tls-cert"} needs --${
        cert === undefined ? "tls-cert" : "tls-key"
      }: ` +
        "give both the PEM certificate and its private key",
    );
  }
  return {
    apiKeyFile: _path("api-key-file", values["api-key-file"]),
    tls: cert === undefined || key === undefined ? undefined : { certFile: cert, keyFile: key },
    cors: parseCorsOrigins(values["cors-origin"] ?? []),
  };
}

/**
 * Resolves the `--cors-origin` values: none given means `*`; `*` and `none`
 * stand alone; anything else must be an origin such as
 * `https://app.example.com` or `http://localhost:3000`.
 *
 * @throws {UsageError} naming the value and the expected form
 */
export function parseCorsOrigins(values: readonly string[]): CorsPolicy {
  if (values.length === 0) return { kind: "any" };
  const special = values.find((value) => value === "*" || value === "none");
  if (special !== undefined) {
    if (values.length > 1) {
      throw new UsageError(`--cors-origin: "${special}" cannot be combined with other origins`);
    }
    return special === "*" ? { kind: "any" } : { kind: "none" };
  }
  return { kind: "list", origins: [...new Set(values.map(_origin))] };
}

function _origin(value: string): string {
  const problem = `--cors-origin: ${JSON.stringify(value)} is not an origin: ` +
    'write scheme://host[:port], e.g. "https://app.example.com", or "*" or "none"';
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UsageError(problem);
  }
  const bare = url.pathname === "/" && url.search === "" && url.hash === "" && url.username === "" &&
    url.password === "";
  if (!/^https?:$/.test(url.protocol) || !bare) throw new UsageError(problem);
  return url.origin;
}

function _path(flag: string, value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (value.trim() === "") throw new UsageError(`--${flag}: the path is empty`);
  return resolve(value);
}
