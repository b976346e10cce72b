/**
 * `GET /openapi.json`: an OpenAPI 3.1 description of the deployment: each
 * API's prediction and description routes (with the API's `sample.json` as
 * the request example), the server's own routes (`/`, `/healthz`, `/livez`,
 * `/metrics`, the console's data), the Open Inference Protocol routes, and
 * the error answers. It is built once per app, on the first request, and
 * goes through the router like every route but the predictions.
 *
 * A sample's schema comes from the type hint of `predict`'s sample parameter
 * when there is one (./openapi_hints.ts reads the inference file's text);
 * an untyped sample is a generic JSON object (any JSON value when the API's
 * `sample.json` is not an object). The return type hint describes the answer.
 *
 * @module
 */
import type { Hono } from "hono";
import type { ResolvedApi, ResolvedProject } from "../config/types.ts";
import { ApiError } from "../errors/api_error.ts";
import type { AppEnv } from "./app_env.ts";
import { join } from "node:path";
import { samples } from "./console/data.ts";
import { type PredictHints, predictHints } from "./openapi_hints.ts";
import { inferenceV2Paths, inferenceV2Schemas, requestExample } from "./inference_v2_openapi.ts";
import { components, errorResponses, jsonContent, type OpenApiObject, ref } from "./openapi_schemas.ts";
import { JOB_SCHEMAS, jobPaths, withJobSubmit } from "./openapi_jobs.ts";

/** Where the document is served. */
export const OPENAPI_PATH = "/openapi.json";

/** What the document describes. */
export interface OpenApiSources {
  readonly project: ResolvedProject;
  /** The server's version, as `info.version`. */
  readonly version: string;
  /** `GET /metrics` is served. */
  readonly metrics: boolean;
  /** API keys are required (`--api-key-file`). */
  readonly keys: boolean;
  /** Durable jobs are on (docs/async.md): the job routes and the submit's 202. */
  readonly jobs?: boolean;
}

/** Adds `GET /openapi.json` (and its 405) to `app`. */
export function addOpenApiRoute(app: Hono<AppEnv>, sources: OpenApiSources): void {
  let document: Promise<string> | undefined;
  app.get(OPENAPI_PATH, async (c) => {
    document ??= Promise.all([samples(sources.project), hints(sources.project)]).then(([found, hinted]) =>
      JSON.stringify(openApiDocument(sources, found, hinted))
    );
    return c.body(await document, 200, { "content-type": "application/json" });
  });
  app.all(OPENAPI_PATH, () => {
    throw new ApiError("METHOD_NOT_ALLOWED", `Use GET for ${OPENAPI_PATH}`, { headers: { allow: "GET" } });
  });
}

/** Each API's type hints of `predict` (./openapi_hints.ts), by API name; none when its file cannot be read. */
export async function hints(project: ResolvedProject): Promise<Record<string, PredictHints>> {
  const entries = await Promise.all(project.apis.map(async (api) => {
    try {
      const source = await Deno.readTextFile(join(project.root, api.inference));
      const method = api.pythonInterface === "python_predictor";
      return [api.name, predictHints(source, { batched: api.batching !== undefined, method })] as const;
    } catch {
      return [api.name, {}] as const;
    }
  }));
  return Object.fromEntries(entries);
}

/**
 * The document for `sources`, with `sampleTexts` (API name -> the text of its
 * `sample.json`, or null) as request examples and `hinted` (API name ->
 * what `predict`'s type hints say) as schemas.
 */
export function openApiDocument(
  sources: OpenApiSources,
  sampleTexts: Readonly<Record<string, string | null>>,
  hinted: Readonly<Record<string, PredictHints>> = {},
): OpenApiObject {
  const { project, keys } = sources;
  const paths: Record<string, OpenApiObject> = {};
  const v2Examples: Record<string, OpenApiObject> = {};
  for (const api of project.apis) {
    const sample = parseSample(sampleTexts[api.name] ?? null);
    paths[api.endpoint] = apiPath(api, sample, hinted[api.name] ?? {}, keys);
    if (sources.jobs === true) {
      const path = paths[api.endpoint]!;
      path.post = withJobSubmit(path.post as OpenApiObject, api);
      Object.assign(paths, jobPaths(api, (prefix) => operationName(prefix, api.name), keys));
    }
    const example = requestExample(sample?.value);
    if (example !== undefined) v2Examples[api.name] = example;
  }
  Object.assign(paths, serverPaths(sources), inferenceV2Paths(project, v2Examples, keys));
  const parts = components(keys);
  Object.assign(
    parts.schemas as OpenApiObject,
    inferenceV2Schemas(),
    sources.jobs === true ? JOB_SCHEMAS : {},
  );
  const document: OpenApiObject = {
    openapi: "3.1.0",
    info: {
      title: `${project.deployment.name} (cortex-serve)`,
      version: sources.version,
      description: `The APIs of deployment ${project.deployment.name}, served by cortex-serve. ` +
        "Each API takes a JSON sample and answers with its predictor's return value as JSON.",
    },
    tags: [
      { name: "predictions", description: "The deployment's APIs" },
      { name: "server", description: "Status, health and metrics of the server" },
      { name: "open inference protocol", description: "KServe V2 REST: tensors in, tensors out" },
    ],
    paths,
    components: parts,
  };
  if (keys) document.security = [{ bearer: [] }, { apiKey: [] }];
  return document;
}

/** The sample's JSON value, or undefined when there is none or it is not JSON. */
function parseSample(text: string | null): { value: unknown } | undefined {
  if (text === null) return undefined;
  try {
    return { value: JSON.parse(text) };
  } catch {
    return undefined;
  }
}

/** The schema of a predictor's sample: from its type hints, else generic. */
function sampleSchema(
  api: ResolvedApi,
  sample: { value: unknown } | undefined,
  hints: PredictHints,
): OpenApiObject {
  if (hints.sample !== undefined) {
    return { ...hints.sample, description: `From the type hint of predict's sample in ${api.inference}` };
  }
  const description = "The sample passed whole to `predict` (its type is not known to the server)";
  const value = sample?.value;
  const isObject = value === undefined ||
    (typeof value === "object" && value !== null && !Array.isArray(value));
  return isObject ? { type: "object", additionalProperties: true, description } : { description };
}

/** `operationId`s must be unique: the API name with anything but word characters replaced. */
export function operationName(prefix: string, api: string): string {
  return `${prefix}_${api.replace(/\W/g, "_")}`;
}

function apiPath(
  api: ResolvedApi,
  sample: { value: unknown } | undefined,
  hints: PredictHints,
  keys: boolean,
): OpenApiObject {
  const prediction = hints.prediction === undefined
    ? { description: "`predict`'s return value" }
    : { ...hints.prediction, description: `From the return type hint of predict in ${api.inference}` };
  const auth = keys ? ["401"] : [];
  const streamItems = "One JSON value per item, when `predict` returns a generator";
  return {
    post: {
      tags: ["predictions"],
      operationId: operationName("predict", api.name),
      summary: `Predict with ${api.name}`,
      description:
        "The body is parsed as JSON and passed whole to `predict` as `sample`; the answer is its " +
        "return value as JSON. A `predict` that returns a generator streams its items: Server-Sent Events " +
        "with `Accept: text/event-stream`, else NDJSON.",
      parameters: [
        {
          name: "debug",
          in: "query",
          required: false,
          description: "`true` logs the sample and the prediction, truncated",
          schema: { type: "boolean" },
        },
        requestIdParameter(),
      ],
      requestBody: {
        required: true,
        content: jsonContent(sampleSchema(api, sample, hints), sample?.value),
      },
      responses: {
        "200": {
          description: "The prediction",
          headers: requestIdHeader(),
          content: {
            "application/json": { schema: prediction },
            "application/x-ndjson": { schema: { type: "string", description: streamItems } },
            "text/event-stream": { schema: { type: "string", description: streamItems } },
          },
        },
        ...errorResponses("400", ...auth, "413", "500", "502", "503", "504"),
      },
    },
    get: {
      tags: ["predictions"],
      operationId: operationName("describe", api.name),
      summary: `Describe ${api.name}: status, replicas, how to call it`,
      responses: {
        "200": { description: "The API", content: jsonContent(ref("schemas", "ApiDescription")) },
        ...errorResponses(...auth),
      },
    },
  };
}

function requestIdParameter(): OpenApiObject {
  return {
    name: "X-Request-Id",
    in: "header",
    required: false,
    description: "Echoed in the answer and the log; one is made up when absent",
    schema: { type: "string" },
  };
}

function requestIdHeader(): OpenApiObject {
  return { "X-Request-Id": { description: "The request's id", schema: { type: "string" } } };
}

/** `GET` routes of the server itself. */
function serverPaths(sources: OpenApiSources): Record<string, OpenApiObject> {
  const auth = sources.keys ? ["401"] : [];
  const open = sources.keys ? { security: [] } : {};
  const get = (
    operationId: string,
    summary: string,
    responses: OpenApiObject,
    extra: OpenApiObject = {},
  ) => ({
    get: { tags: ["server"], operationId, summary, ...extra, responses },
  });
  const paths: Record<string, OpenApiObject> = {
    "/": get("status", "Every API's status and request counts (a browser gets the console page)", {
      "200": {
        description: "The deployment's status",
        content: {
          "application/json": { schema: ref("schemas", "DeploymentStatus") },
          "text/html": { schema: { type: "string" } },
        },
      },
      ...errorResponses(...auth),
    }),
    "/livez": get("live", "200 while the process serves HTTP (restart it when this fails)", {
      "200": { description: "Serving", content: jsonContent(ref("schemas", "Health")) },
    }, open),
    "/healthz": get("ready", "200 when every API has a ready replica (route traffic on this)", {
      "200": { description: "Ready", content: jsonContent(ref("schemas", "Health")) },
      "503": { description: "Not ready", content: jsonContent(ref("schemas", "Health")) },
    }, open),
    [OPENAPI_PATH]: get("openapi", "This document", {
      "200": { description: "OpenAPI 3.1", content: jsonContent({ type: "object" }) },
      ...errorResponses(...auth),
    }),
    "/_console/data": get("console_data", "The JSON behind the console page", {
      "200": {
        description: "Status, recent requests and log lines",
        content: jsonContent({ type: "object" }),
      },
      ...errorResponses(...auth),
    }),
    "/_console/samples": get("console_samples", "Each API's sample.json as text, or null", {
      "200": {
        description: "API name \u2192 sample text",
        content: jsonContent({ type: "object", additionalProperties: { type: ["string", "null"] } }),
      },
      ...errorResponses(...auth),
    }),
  };
  if (sources.metrics) {
    paths["/metrics"] = get("metrics", "Prometheus metrics", {
      "200": {
        description: "Prometheus text exposition format 0.0.4",
        content: { "text/plain": { schema: { type: "string" } } },
      },
      ...errorResponses(...auth),
    });
  }
  return paths;
}
