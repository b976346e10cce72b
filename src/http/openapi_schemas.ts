/**
 * The reusable parts of the OpenAPI document (./openapi.ts): the JSON
 * schemas of the server's own answers and the error answers of each status,
 * as `components`.
 *
 * @module
 */

/** An OpenAPI object, as plain JSON. */
export type OpenApiObject = Record<string, unknown>;

/** `{"$ref": "#/components/<section>/<name>"}`. */
export function ref(section: "schemas" | "responses", name: string): OpenApiObject {
  return { $ref: `#/components/${section}/${name}` };
}

/** A JSON answer with `schema`. */
export function jsonContent(schema: OpenApiObject, example?: unknown): OpenApiObject {
  return { "application/json": example === undefined ? { schema } : { schema, example } };
}

const ERROR_SCHEMA: OpenApiObject = {
  type: "object",
  description: "Every error answer of the server. The message says what to fix; the status says who can.",
  required: ["error", "api", "request_id"],
  properties: {
    error: { type: "string", description: "What went wrong, written for the caller" },
    api: { type: ["string", "null"], description: "The API the request reached, if any" },
    request_id: { type: "string", description: "Also in the `X-Request-Id` header and the server's log" },
    traceback: { type: "string", description: "The Python traceback; only with `--debug`" },
  },
};

const REPLICAS_SCHEMA: OpenApiObject = {
  type: "object",
  required: ["ready", "starting", "failed", "total", "states"],
  properties: {
    ready: { type: "integer", minimum: 0 },
    starting: { type: "integer", minimum: 0 },
    failed: { type: "integer", minimum: 0 },
    total: { type: "integer", minimum: 0 },
    states: { type: "object", additionalProperties: { type: "integer", minimum: 0 } },
  },
};

const API_STATE: OpenApiObject = {
  type: "string",
  enum: ["ready", "starting", "restarting", "init_failed", "out_of_memory", "stopped"],
};

const BATCHING_SCHEMA: OpenApiObject = {
  type: ["object", "null"],
  description: "`server_side_batching`, or null when off",
  properties: {
    max_batch_size: { type: "integer", minimum: 1 },
    batch_interval_ms: { type: "number", minimum: 0 },
  },
};

const API_DESCRIPTION_SCHEMA: OpenApiObject = {
  type: "object",
  required: ["api", "endpoint", "status", "replicas"],
  properties: {
    api: { type: "string" },
    endpoint: { type: "string" },
    status: API_STATE,
    replicas: ref("schemas", "Replicas"),
    batching: ref("schemas", "Batching"),
    last_error: { type: ["string", "null"] },
    usage: { type: "string" },
    example: { type: "string" },
  },
};

const DEPLOYMENT_STATUS_SCHEMA: OpenApiObject = {
  type: "object",
  required: ["deployment", "apis"],
  properties: {
    deployment: { type: "string" },
    apis: {
      type: "array",
      items: {
        type: "object",
        required: ["name", "endpoint", "status", "replicas", "queue", "in_flight"],
        properties: {
          name: { type: "string" },
          endpoint: { type: "string" },
          status: API_STATE,
          replicas: ref("schemas", "Replicas"),
          batching: ref("schemas", "Batching"),
          last_error: { type: ["string", "null"] },
          queue: { type: "integer", minimum: 0, description: "Requests waiting for a replica" },
          in_flight: { type: "integer", minimum: 0, description: "Predictions running in a worker" },
        },
      },
    },
  },
};

const HEALTH_SCHEMA: OpenApiObject = {
  type: "object",
  required: ["ok"],
  properties: {
    ok: { type: "boolean" },
    apis: {
      type: "object",
      description: "When not ready (and no API keys are set): each API's state and last error",
      additionalProperties: {
        type: "object",
        properties: { status: API_STATE, last_error: { type: ["string", "null"] } },
      },
    },
  },
};

/** Error answers by status, with the error codes behind each (see src/errors/api_error.ts). */
export const ERROR_RESPONSES: Readonly<Record<string, string>> = {
  "400": "Bad request: an empty body, or a body the worker cannot parse as JSON",
  "401": "Missing or invalid API key (`Authorization: Bearer <key>` or `X-Api-Key`)",
  "404": "No such route",
  "405": "Method not allowed; the `Allow` header lists the methods",
  "413": "The body is over `--max-body`",
  "500": "`predict` raised (the message is the exception's), or an internal error",
  "502": "The worker died or ran out of memory during the request; it is restarted",
  "503": "Not ready, at capacity (queue full or waited too long) or shutting down; see `Retry-After`",
  "504": "`predict` ran longer than `--predict-timeout` and was cancelled",
};

/** The `components` of the document; `keys` adds the API key schemes. */
export function components(keys: boolean): OpenApiObject {
  const responses: Record<string, OpenApiObject> = {};
  for (const [status, description] of Object.entries(ERROR_RESPONSES)) {
    responses[`Error${status}`] = { description, content: jsonContent(ref("schemas", "Error")) };
  }
  const all: OpenApiObject = {
    schemas: {
      Error: ERROR_SCHEMA,
      Replicas: REPLICAS_SCHEMA,
      Batching: BATCHING_SCHEMA,
      ApiDescription: API_DESCRIPTION_SCHEMA,
      DeploymentStatus: DEPLOYMENT_STATUS_SCHEMA,
      Health: HEALTH_SCHEMA,
    },
    responses,
  };
  if (keys) {
    all.securitySchemes = {
      bearer: { type: "http", scheme: "bearer", description: "An API key from `--api-key-file`" },
      apiKey: { type: "apiKey", in: "header", name: "X-Api-Key", description: "The same key, in a header" },
    };
  }
  return all;
}

/** `responses` entries for these error statuses. */
export function errorResponses(...statuses: string[]): Record<string, OpenApiObject> {
  return Object.fromEntries(statuses.map((status) => [status, ref("responses", `Error${status}`)]));
}
