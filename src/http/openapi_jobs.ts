/**
 * Durable jobs in the OpenAPI document (docs/async.md): the submit's
 * `Prefer` header, webhook parameters and 202 answer on each API's `POST`
 * (the only answer of an `async: true` API), and the job routes
 * `GET`/`DELETE <endpoint>/{id}` and `POST <endpoint>/{id}/cancel`.
 *
 * @module
 */
import type { ResolvedApi } from "../config/types.ts";
import { errorResponses, jsonContent, type OpenApiObject, ref } from "./openapi_schemas.ts";
import { WEBHOOK_EVENTS } from "../jobs/webhooks.ts";

/** The schemas the job routes refer to. */
export const JOB_SCHEMAS: Readonly<Record<string, OpenApiObject>> = {
  JobAccepted: {
    type: "object",
    required: ["id", "status"],
    properties: {
      id: { type: "string", description: "The job's id: GET <endpoint>/<id> shows it" },
      status: { const: "in_queue" },
    },
  },
  Job: {
    type: "object",
    required: ["id", "status", "timestamp", "created_at", "started_at", "completed_at", "attempts"],
    properties: {
      id: { type: "string" },
      status: { enum: ["in_queue", "in_progress", "completed", "failed", "cancelled"] },
      result: { description: "`completed` only: predict's return value (base64 with `result_encoding`)" },
      result_encoding: { const: "base64" },
      result_content_type: { type: "string" },
      error: { type: "string", description: "`failed` only: what went wrong" },
      timestamp: { type: "string", format: "date-time", description: "The job's last change" },
      created_at: { type: "string", format: "date-time" },
      started_at: { type: ["string", "null"], format: "date-time" },
      completed_at: { type: ["string", "null"], format: "date-time" },
      attempts: { type: "integer", minimum: 0, description: "Times a server started it" },
    },
  },
};

/** `post` of an API's path with the job submit added (or, for an `async: true` API, only it). */
export function withJobSubmit(post: OpenApiObject, api: ResolvedApi): OpenApiObject {
  const accepted = {
    "202": {
      description: "The job, stored: poll `GET <endpoint>/{id}` or wait for the webhook",
      headers: { Location: { description: "The job's URL path", schema: { type: "string" } } },
      content: jsonContent(ref("schemas", "JobAccepted")),
    },
  };
  const { "200": _sync, ...others } = post.responses as Record<string, OpenApiObject>;
  const parameters = [
    ...(post.parameters as OpenApiObject[]),
    ...(api.async === true ? [] : [{
      name: "Prefer",
      in: "header",
      required: false,
      description: "`respond-async` submits the prediction as a durable job (202)",
      schema: { type: "string" },
    }]),
    {
      name: "webhook",
      in: "query",
      required: false,
      description: "With a job: an http(s) URL that receives the job (POST, JSON) on its events",
      schema: { type: "string", format: "uri" },
    },
    {
      name: "webhook_events_filter",
      in: "query",
      required: false,
      description: `With a webhook: comma-separated events among ${WEBHOOK_EVENTS.join(", ")} (default all)`,
      schema: { type: "string" },
    },
  ];
  return {
    ...post,
    ...(api.async === true
      ? {
        description: "The body is stored as a durable job and answered at once with its id (docs/async.md).",
      }
      : {}),
    parameters,
    responses: api.async === true
      ? { ...accepted, ...others }
      : { ...post.responses as OpenApiObject, ...accepted },
  };
}

/** The job routes of `api`, by path. */
export function jobPaths(api: ResolvedApi, operation: (prefix: string) => string, keys: boolean) {
  const auth = keys ? ["401"] : [];
  const id = { name: "id", in: "path", required: true, schema: { type: "string" } };
  const job = { "200": { description: "The job", content: jsonContent(ref("schemas", "Job")) } };
  const cancel = (operationId: string) => ({
    tags: ["predictions"],
    operationId,
    summary: `Cancel a queued or running job of ${api.name} (a finished one is left as it is)`,
    parameters: [id],
    responses: { ...job, ...errorResponses(...auth, "404") },
  });
  return {
    [`${api.endpoint}/{id}`]: {
      get: {
        tags: ["predictions"],
        operationId: operation("job"),
        summary: `A job of ${api.name}: its status and, once completed, its result`,
        parameters: [id],
        responses: { ...job, ...errorResponses(...auth, "404") },
      },
      delete: cancel(operation("cancel")),
    },
    [`${api.endpoint}/{id}/cancel`]: { post: cancel(operation("cancel_post")) },
  };
}
