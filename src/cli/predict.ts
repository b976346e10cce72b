/**
 * `cortex-serve predict API SAMPLE_FILE [--url]`: POSTs a sample to a
 * running server and pretty-prints the answer, like `cortex predict`.
 */
import {
  ClientError,
  defaultUrl,
  errorMessage,
  fetchIndex,
  normaliseUrl,
  parseStrict,
  request,
  resolveApi,
} from "./client.ts";
import { UsageError } from "./units.ts";

/** `cortex-serve predict --help`. */
export const PREDICT_HELP = `Usage: cortex-serve predict API SAMPLE_FILE [options]

Sends the JSON in SAMPLE_FILE (- reads stdin) to API on a running server and
prints the prediction, pretty-printed. API may be a unique prefix of the name.
Exits 1 with "error: <message>" when the server answers with an error.

With --stream, an API whose predict returns a generator prints each item on
its own line (compact JSON) as it arrives; an error after the first item is
printed as "error: <message>" and exits 1. An API that does not stream
answers as without --stream.

Options:
  --url URL     the server (default: $CORTEX_SERVE_URL, else http://127.0.0.1:8888)
  --stream      print streamed items as they arrive
  -h, --help    this help

Environment:
  CORTEX_API_KEY   sent as the API key, for a server started with --api-key-file

Examples:
  cortex-serve predict classifier sample.json
  cortex-serve predict class sample.json --url http://10.0.0.5:8080
  cortex-serve predict generator prompt.json --stream
  echo '{"x": 1}' | cortex-serve predict classifier -
`;

/** What `predict` was asked to do. */
export interface PredictOptions {
  readonly api: string;
  readonly sampleFile: string;
  readonly url: string;
  /** Print streamed items line by line as they arrive. */
  readonly stream: boolean;
}

const FLAGS = {
  url: { type: "string" },
  stream: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

/** Parsed `predict` arguments, or `"help"`. */
export function parsePredictArgs(args: readonly string[]): PredictOptions | "help" {
  const { values, positionals } = parseStrict("predict", args, FLAGS);
  if (values.help) return "help";
  const [api, sampleFile, ...rest] = positionals;
  if (api === undefined || sampleFile === undefined || rest.length > 0) {
    throw new UsageError(
      `predict takes an api name and a sample file, got ${positionals.length} arguments (see cortex-serve predict --help)`,
    );
  }
  return { api, sampleFile, url: normaliseUrl(values.url ?? defaultUrl()), stream: values.stream ?? false };
}

/** Runs `predict`; prints the answer on stdout or the error on stderr; returns the exit code. */
export async function predict(options: PredictOptions): Promise<number> {
  try {
    const sample = await readSample(options.sampleFile);
    const index = await fetchIndex(options.url);
    const api = resolveApi(index.apis, options.api);
    const res = await request(`${options.url}${api.endpoint}`, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/x-ndjson, application/json" },
      body: sample,
    });
    if (options.stream && res.ok && res.headers.get("content-type") === "application/x-ndjson") {
      return await printLines(res.body!);
    }
    const text = await res.text();
    let body: unknown = undefined;
    try {
      body = JSON.parse(text);
    } catch {
      // Not JSON: shown as text below.
    }
    if (!res.ok) throw new ClientError("SERVER_ERROR", errorMessage(res, body, text));
    console.log(body === undefined ? text : JSON.stringify(body, null, 2));
    return 0;
  } catch (error) {
    if (!(error instanceof ClientError)) throw error;
    console.error(`error: ${error.message}`);
    return 1;
  }
}

/** Prints each NDJSON item as it arrives; a last `{"error": ...}` line fails. */
async function printLines(body: ReadableStream<Uint8Array>): Promise<number> {
  const out = Deno.stdout;
  const encoder = new TextEncoder();
  let rest = "";
  const emit = async (line: string): Promise<void> => {
    if (line === "") return;
    const value = JSON.parse(line);
    if (isStreamError(value)) throw new ClientError("SERVER_ERROR", value.error);
    await out.write(encoder.encode(JSON.stringify(value) + "\n"));
  };
  for await (const chunk of body.pipeThrough(new TextDecoderStream())) {
    const lines = (rest + chunk).split("\n");
    rest = lines.pop() ?? "";
    for (const line of lines) await emit(line);
  }
  await emit(rest);
  return 0;
}

/** The last line of a stream that failed: `{"error": ..., "api": ..., "request_id": ...}`. */
function isStreamError(value: unknown): value is { error: string } {
  return typeof value === "object" && value !== null && !Array.isArray(value) &&
    typeof (value as { error?: unknown }).error === "string" && "request_id" in value;
}

async function readSample(file: string): Promise<Uint8Array<ArrayBuffer>> {
  try {
    if (file === "-") return new Uint8Array(await new Response(Deno.stdin.readable).arrayBuffer());
    return await Deno.readFile(file);
  } catch (error) {
    const reason = error instanceof Deno.errors.NotFound
      ? "no such file"
      : error instanceof Error
      ? error.message
      : String(error);
    throw new ClientError("SERVER_ERROR", `Cannot read the sample file ${file}: ${reason}`);
  }
}
