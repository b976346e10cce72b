/**
 * The job routes of an API (docs/async.md): `POST <endpoint>` of an
 * `async: true` API, or of any API with `Prefer: respond-async`, stores the
 * request as a job and answers 202 with its id; `GET <endpoint>/<id>` shows
 * it; `DELETE <endpoint>/<id>` (or `POST <endpoint>/<id>/cancel`) cancels it.
 *
 * @module
 */
import type { Hono } from "hono";
import { parsesByContentType, type ResolvedApi } from "../config/types.ts";
import { ApiError } from "../errors/api_error.ts";
import type { JobRequest } from "../jobs/job.ts";
import type { JobService } from "../jobs/service.ts";
import { jobView } from "../jobs/view.ts";
import { parseWebhook } from "../jobs/webhooks.ts";
import type { AppEnv } from "./app_env.ts";
import { type BodyLimits, checkNotEmpty, readBody } from "./body.ts";

/** Headers not kept with a job: credentials, and what only framed the request. */
const NOT_KEPT = new Set([
  "authorization",
  "proxy-authorization",
  "x-api-key",
  "cookie",
  "content-length",
  "connection",
  "transfer-encoding",
]);

/** True when the client asked for an asynchronous answer (Cog's `Prefer: respond-async`). */
export function prefersAsync(headers: Headers): boolean {
  return headers.get("prefer")?.includes("respond-async") === true;
}

/**
 * Stores `request` as a job of `api` and answers 202 `{"id", "status"}`
 * with the job's URL in `Location`.
 *
 * @throws {ApiError} PAYLOAD_TOO_LARGE, BAD_REQUEST (empty body, malformed webhook)
 */
export async function submitJob(
  jobs: JobService,
  api: Pick<ResolvedApi, "name" | "endpoint" | "pythonInterface">,
  request: Request,
  limits: BodyLimits,
): Promise<Response> {
  const url = new URL(request.url);
  const params = url.searchParams;
  let webhook;
  try {
    webhook = parseWebhook(params.get("webhook"), params.get("webhook_events_filter"));
  } catch (error) {
    throw new ApiError("BAD_REQUEST", (error as Error).message);
  }
  const body = await readBody(request, limits);
  // As a synchronous prediction: a payload parsed by its Content-Type may be empty.
  const typed = parsesByContentType(api.pythonInterface);
  if (!typed) checkNotEmpty(body);
  const headers: Record<string, string> = {};
  request.headers.forEach((value, name) => {
    if (!NOT_KEPT.has(name)) headers[name] = value;
  });
  const job: JobRequest = {
    body,
    contentType: request.headers.get("content-type") ?? (typed ? "" : "application/json"),
    query: url.search.slice(1),
    headers,
  };
  const id = await jobs.submit(api.name, job, webhook);
  return new Response(JSON.stringify({ id, status: "in_queue" }), {
    status: 202,
    headers: { "content-type": "application/json", location: `${api.endpoint}/${id}` },
  });
}

/** Adds `GET`/`DELETE <endpoint>/<id>` and `POST <endpoint>/<id>/cancel` of one API. */
export function addJobRoutes(
  app: Hono<AppEnv>,
  api: { readonly name: string; readonly endpoint: string },
  jobs: JobService,
): void {
  const path = `${api.endpoint}/:id`;
  app.get(path, async (c) => {
    c.get("exchange").api = api.name;
    const record = await jobs.get(api.name, c.req.param("id") ?? "");
    if (record === undefined) throw unknown(api.name, c.req.param("id") ?? "");
    return c.json(jobView(record));
  });
  const cancel = async (id: string): Promise<Response> => {
    const record = await jobs.cancel(api.name, id);
    if (record === undefined) throw unknown(api.name, id);
    return Response.json(jobView(record));
  };
  app.delete(path, (c) => {
    c.get("exchange").api = api.name;
    return cancel(c.req.param("id") ?? "");
  });
  app.post(`${path}/cancel`, (c) => {
    c.get("exchange").api = api.name;
    return cancel(c.req.param("id") ?? "");
  });
}

function unknown(api: string, id: string): ApiError {
  return new ApiError(
    "NOT_FOUND",
    `Api ${api} has no job ${JSON.stringify(id)} (it may have expired, see --job-ttl)`,
  );
}
