/**
 * The HTTP client side of `predict` and `get`: where the server is, its API
 * list (`GET /`), and picking an API by name or unique prefix as Cortex did.
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { UsageError } from "./units.ts";

/** Default server address: `$CORTEX_SERVE_URL`, else the `serve` default. */
export function defaultUrl(env: Readonly<Record<string, string | undefined>> = Deno.env.toObject()): string {
  return env["CORTEX_SERVE_URL"] || "http://127.0.0.1:8888";
}

/** The server answered with an error, or could not be reached. */
export class ClientError extends Error {
  readonly code: "SERVER_UNREACHABLE" | "SERVER_ERROR" | "UNKNOWN_API";
  constructor(code: ClientError["code"], message: string) {
    super(message);
    this.name = "ClientError";
    this.code = code;
  }
}

/** One API as listed by `GET /`. */
export interface ListedApi {
  readonly name: string;
  readonly endpoint: string;
  readonly status: string;
  readonly replicas: { readonly ready: number; readonly total: number };
  readonly last_error: string | null;
  readonly requests: number;
  readonly status_2xx: number;
  readonly status_4xx: number;
  readonly status_5xx: number;
  readonly avg_latency_ms: number;
  /** `server_side_batching`, null when off (absent from servers that predate it). */
  readonly batching?: { readonly max_batch_size: number; readonly batch_interval_ms: number } | null;
  /** Durable jobs queued and running, null when jobs are off (absent from servers that predate them). */
  readonly jobs?: { readonly in_queue: number; readonly in_progress: number } | null;
}

/** `GET /` of a running server. */
export interface ServerIndex {
  readonly deployment: string;
  readonly apis: readonly ListedApi[];
  /** TrafficSplitters (absent when there are none, or from servers that predate them). */
  readonly splitters?: readonly ListedSplitter[];
}

/** One TrafficSplitter as `GET /` lists it. */
export interface ListedSplitter {
  readonly name: string;
  readonly endpoint: string;
  readonly status: string;
  readonly apis: readonly {
    readonly api: string;
    readonly weight: number;
    readonly status: string;
    readonly shadow?: boolean;
  }[];
}

/** Trims a trailing slash and checks the scheme. */
export function normaliseUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError(`--url: ${JSON.stringify(url)} is not a URL: write http://HOST:PORT`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new UsageError(`--url: ${JSON.stringify(url)} must start with http:// or https://`);
  }
  return url.replace(/\/+$/, "");
}

/**
 * Fetches, with a readable error when the server is not there. Sends
 * `$CORTEX_API_KEY`, when set, as `Authorization: Bearer`.
 *
 * @throws {ClientError} SERVER_UNREACHABLE
 */
export async function request(url: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  const key = Deno.env.get("CORTEX_API_KEY");
  if (key) headers.set("authorization", `Bearer ${key}`);
  try {
    return await fetch(url, { ...init, headers });
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new ClientError(
      "SERVER_UNREACHABLE",
      `Cannot reach cortex-serve at ${url}: ${reason}: start it with cortex-serve serve, or pass --url`,
    );
  }
}

/**
 * Reads `GET /` of the server at `base`.
 *
 * @throws {ClientError} when unreachable or the answer is not an API list
 */
export async function fetchIndex(base: string): Promise<ServerIndex> {
  const res = await request(`${base}/`, { headers: { accept: "application/json" } });
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (!res.ok) throw new ClientError("SERVER_ERROR", errorMessage(res, body, text));
  if (typeof body !== "object" || body === null || !Array.isArray((body as { apis?: unknown }).apis)) {
    throw new ClientError("SERVER_ERROR", `${base}/ did not answer with an API list: is it cortex-serve?`);
  }
  return body as ServerIndex;
}

/** The `error` of a JSON error body, else the status line and some text. */
export function errorMessage(res: Response, body: unknown, text: string): string {
  if (typeof body === "object" && body !== null && typeof (body as { error?: unknown }).error === "string") {
    const message = (body as { error: string }).error;
    return res.status === 401 ? `${message}: set CORTEX_API_KEY to a key the server accepts` : message;
  }
  const snippet = text.trim().slice(0, 200);
  return `HTTP ${res.status} ${res.statusText}${snippet === "" ? "" : `: ${snippet}`}`;
}

/**
 * Picks the API called `name`, or the only one whose name starts with it.
 *
 * @throws {ClientError} UNKNOWN_API, listing the names there are
 */
export function resolveApi(apis: readonly ListedApi[], name: string): ListedApi {
  const exact = apis.find((api) => api.name === name);
  if (exact !== undefined) return exact;
  const matches = apis.filter((api) => api.name.startsWith(name));
  if (matches.length === 1) return matches[0]!;
  const names = apis.map((api) => api.name).join(", ") || "none";
  if (matches.length > 1) {
    throw new ClientError(
      "UNKNOWN_API",
      `Api name ${JSON.stringify(name)} is ambiguous: it starts ${
        matches.map((m) => m.name).join(", ")
      }: type more of the name`,
    );
  }
  throw new ClientError("UNKNOWN_API", `No api named ${JSON.stringify(name)}: the apis are ${names}`);
}

/**
 * `parseArgs` in strict mode, turning its errors into a {@link UsageError}
 * that points at the subcommand's help.
 */
export function parseStrict<T extends NonNullable<ParseArgsConfig["options"]>>(
  command: string,
  args: readonly string[],
  options: T,
) {
  try {
    return parseArgs({ args: [...args], options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError(
      `${error instanceof Error ? error.message : error} (see cortex-serve ${command} --help)`,
    );
  }
}
