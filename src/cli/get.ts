/**
 * `cortex-serve get [API] [--url]`: a status table of a running server's
 * APIs, from its `GET /`, like `cortex get`.
 */
import {
  ClientError,
  defaultUrl,
  fetchIndex,
  type ListedApi,
  type ListedSplitter,
  normaliseUrl,
  parseStrict,
  resolveApi,
} from "./client.ts";
import { UsageError } from "./units.ts";

/** `cortex-serve get --help`. */
export const GET_HELP = `Usage: cortex-serve get [API] [options]

Shows the APIs of a running server: status, replicas ready/total, requests,
responses by class, mean latency and URL. With API (a name or unique prefix),
shows that API only. Server-side batching settings, durable jobs queued and
running (docs/async.md) and the errors of failing APIs are listed below the table.

Options:
  --url URL     the server (default: $CORTEX_SERVE_URL, else http://127.0.0.1:8888)
  -h, --help    this help

Environment:
  CORTEX_API_KEY   sent as the API key, for a server started with --api-key-file

Examples:
  cortex-serve get
  cortex-serve get classifier --url http://10.0.0.5:8080
`;

/** What `get` was asked to do. */
export interface GetOptions {
  readonly api: string | undefined;
  readonly url: string;
}

const FLAGS = {
  url: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

const COLUMNS = ["api", "status", "replicas", "requests", "2XX", "4XX", "5XX", "avg latency", "url"];

/** Parsed `get` arguments, or `"help"`. */
export function parseGetArgs(args: readonly string[]): GetOptions | "help" {
  const { values, positionals } = parseStrict("get", args, FLAGS);
  if (values.help) return "help";
  if (positionals.length > 1) {
    throw new UsageError(
      `get takes at most one api name, got ${positionals.length}: ${positionals.join(" ")}`,
    );
  }
  return { api: positionals[0], url: normaliseUrl(values.url ?? defaultUrl()) };
}

/** Runs `get`; prints the table on stdout; returns the exit code. */
export async function get(options: GetOptions): Promise<number> {
  try {
    const index = await fetchIndex(options.url);
    const apis = options.api === undefined ? index.apis : [resolveApi(index.apis, options.api)];
    console.log(formatTable(apis, options.url));
    const splitters = options.api === undefined ? index.splitters ?? [] : [];
    if (splitters.length > 0) console.log(`\n${formatSplitters(splitters, options.url)}`);
    const notes = formatNotes(apis);
    if (notes !== "") console.log(`\n${notes}`);
    return 0;
  } catch (error) {
    if (!(error instanceof ClientError)) throw error;
    console.error(`error: ${error.message}`);
    return 1;
  }
}

/** The status table: one row per API, columns padded to their widest cell. */
export function formatTable(apis: readonly ListedApi[], base: string): string {
  const rows = apis.map((api) => [
    api.name,
    api.status,
    `${api.replicas.ready}/${api.replicas.total}`,
    String(api.requests),
    String(api.status_2xx),
    String(api.status_4xx),
    String(api.status_5xx),
    api.requests === 0 ? "-" : `${formatMs(api.avg_latency_ms)}`,
    `${base}${api.endpoint}`,
  ]);
  const table = [COLUMNS, ...rows];
  const widths = COLUMNS.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
  if (apis.length === 0) return `${COLUMNS.join("  ")}\n(no apis)`;
  return table
    .map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join("  "))
    .join("\n");
}

/** The TrafficSplitters: one line each, with every API's share. */
export function formatSplitters(splitters: readonly ListedSplitter[], base: string): string {
  return splitters.map((s) =>
    `splitter ${s.name} (${s.status}) ${base}${s.endpoint}: ` +
    s.apis.map((a) => `${a.api} ${a.weight}%${a.shadow === true ? " mirrored" : ""} (${a.status})`).join(", ")
  ).join("\n");
}

/**
 * The lines under the table: each API's server-side batching, its durable
 * jobs when some are queued or running, then the errors of failing APIs;
 * empty when there is nothing to say.
 */
export function formatNotes(apis: readonly ListedApi[]): string {
  const batching = apis.flatMap((api) =>
    api.batching
      ? [
        `${api.name}: server-side batching, up to ${api.batching.max_batch_size} requests per predict call, ` +
        `waiting at most ${api.batching.batch_interval_ms} ms for a batch to fill`,
      ]
      : []
  );
  const jobs = apis.flatMap((api) =>
    api.jobs && api.jobs.in_queue + api.jobs.in_progress > 0
      ? [`${api.name}: jobs: ${api.jobs.in_queue} queued, ${api.jobs.in_progress} running`]
      : []
  );
  const errors = apis.flatMap((api) =>
    api.last_error !== null && api.last_error !== undefined ? [`${api.name}: ${api.last_error}`] : []
  );
  return [batching.join("\n"), jobs.join("\n"), errors.join("\n\n")].filter((part) => part !== "").join(
    "\n\n",
  );
}

function formatMs(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms < 10 ? ms.toFixed(2) : ms.toFixed(0)} ms`;
}
