/**
 * The Open Inference Protocol (KServe V2 REST), on by default beside each
 * API's own endpoint: every API is a model of the same name.
 *
 * | route | answer |
 * | --- | --- |
 * | `GET /v2` | server metadata: name, version, extensions |
 * | `GET /v2/health/live` | 200 while serving (empty body) |
 * | `GET /v2/health/ready` | 200 when every API is ready, else 400 (empty body) |
 * | `GET /v2/models/{api}` | model metadata; inputs from the API's `sample.json` when it is an object |
 * | `GET /v2/models/{api}/ready` | 200 when the API is ready, else 400 (empty body) |
 * | `POST /v2/models/{api}/infer` | tensors in, `predict` on the sample they make, tensors out |
 *
 * Tensors map onto `predict`'s sample and back as ./inference_v2_tensors.ts
 * says. Errors answer `{"error": "..."}` with the server's usual status
 * (./error_answer.ts).
 * These routes go through the router: the prediction fast path does not see
 * them, and they cost nothing until called.
 *
 * @module
 */
import type { Context, Hono } from "hono";
import type { ResolvedApi, ResolvedProject } from "../config/types.ts";
import { ApiError } from "../errors/api_error.ts";
import type { ApiPool } from "../supervision/pool.ts";
import type { AppEnv } from "./app_env.ts";
import { type BodyLimits, readBody } from "./body.ts";
import { samples } from "./console/data.ts";
import type { ErrorAnswers } from "./error_answer.ts";
import { answerError } from "./steps.ts";
import { round } from "./exchange.ts";
import { apiStatus } from "./status.ts";
import { inferCall, outputsOf, parsePrediction, type Tensor, tensorOf } from "./inference_v2_tensors.ts";

/** The extensions `GET /v2` names: none of the optional ones. */
const EXTENSIONS: readonly string[] = [];

/** `platform` of every model: Python code behind `predict`. */
export const PLATFORM = "cortex_python";

/** What the routes read. */
export interface InferenceV2Options {
  readonly project: ResolvedProject;
  readonly pools: ReadonlyMap<string, ApiPool>;
  /** The body limits the prediction route reads with (`--max-body`, `--body-timeout`). */
  readonly body: BodyLimits;
  readonly version: string;
  /** The app's error answers, given the protocol's body here (./steps.ts). */
  readonly errors: ErrorAnswers;
}

/** One API as a model. */
interface Model {
  readonly api: ResolvedApi;
  readonly pool: ApiPool;
}

/** Adds the `/v2` routes to `app`. Register them after the APIs' own routes, which win. */
export function addInferenceV2Routes(app: Hono<AppEnv>, options: InferenceV2Options): void {
  const { project, pools } = options;
  const models = new Map<string, Model>(
    project.apis.map((api) => [api.name, { api, pool: pools.get(api.name)! }]),
  );
  const ready = (model: Model) => apiStatus(model.pool, model.api.endpoint).status === "ready";
  const health = (ok: boolean) => new Response(null, { status: ok ? 200 : 400 });
  const find = (c: Context<AppEnv>): Model => {
    const name = c.req.param("name") ?? "";
    const model = models.get(name);
    if (model === undefined) {
      const names = [...models.keys()].join(", ");
      throw new ApiError(
        "NOT_FOUND",
        `Unknown model '${name}': the models are the deployment's APIs (${names})`,
      );
    }
    return model;
  };
  /** Answers V2 errors as `{"error": ...}`. */
  const guarded =
    (handler: (c: Context<AppEnv>) => Response | Promise<Response>) => async (c: Context<AppEnv>) => {
      try {
        return await handler(c);
      } catch (error) {
        return await answerError(options.errors, error, c.get("exchange"), "v2");
      }
    };
  let metadata: Promise<Record<string, string | null>> | undefined;

  app.get("/v2", (c) => c.json({ name: "cortex-serve", version: options.version, extensions: EXTENSIONS }));
  app.get("/v2/health/live", () => health(true));
  app.get("/v2/health/ready", () => health([...models.values()].every(ready)));
  app.get(
    "/v2/models/:name",
    guarded(async (c) => {
      const model = find(c);
      metadata ??= samples(project);
      const inputs = sampleInputs((await metadata)[model.api.name] ?? null);
      return c.json({ name: model.api.name, platform: PLATFORM, inputs, outputs: [] });
    }),
  );
  app.get("/v2/models/:name/ready", guarded((c) => health(ready(find(c)))));
  app.post("/v2/models/:name/infer", guarded((c) => infer(c, find(c), options)));
  const other = (c: Context<AppEnv>) =>
    answerError(options.errors, unrouted(c.req.method, c.req.path), c.get("exchange"), "v2");
  app.all("/v2", other);
  app.all("/v2/*", other);
}

/** The routes above by path pattern, and their one method. */
const ROUTES: readonly (readonly [RegExp, string])[] = [
  [/^\/v2\/?$/, "GET"],
  [/^\/v2\/health\/(live|ready)$/, "GET"],
  [/^\/v2\/models\/[^/]+$/, "GET"],
  [/^\/v2\/models\/[^/]+\/ready$/, "GET"],
  [/^\/v2\/models\/[^/]+\/infer$/, "POST"],
];

/** 405 for a known path with another method, else 404. */
function unrouted(method: string, path: string): ApiError {
  const route = ROUTES.find(([pattern]) => pattern.test(path));
  if (route === undefined) {
    return new ApiError("NOT_FOUND", `No route for ${method} ${path} in the Open Inference Protocol`);
  }
  return new ApiError("METHOD_NOT_ALLOWED", `Use ${route[1]} for ${path}`, { headers: { allow: route[1] } });
}

/** `POST /v2/models/{api}/infer`. */
async function infer(c: Context<AppEnv>, model: Model, options: InferenceV2Options): Promise<Response> {
  const x = c.get("exchange");
  // Counted and logged as a request of the API, like its own endpoint's (the metadata and ready routes are not).
  x.api = model.api.name;
  const refused = model.pool.refusal();
  if (refused !== undefined) throw refused;
  const body = await readBody(c.req.raw, options.body);
  let request: unknown;
  try {
    request = JSON.parse(new TextDecoder().decode(body));
  } catch (error) {
    throw new ApiError("BAD_REQUEST", `The inference request is not JSON: ${(error as Error).message}`);
  }
  const call = inferCall(request);
  const prediction = await model.pool.submit(new TextEncoder().encode(JSON.stringify(call.sample)), {
    debug: false,
    client: c.req.raw,
    onBatch: model.api.batching === undefined ? undefined : (size) => x.batchSize = size,
  });
  x.queueMs = round(prediction.queueMs);
  const answer = prediction.answer;
  if (answer.type === "stream") {
    await cancelStream(answer.stream);
    throw new ApiError(
      "BAD_REQUEST",
      `Api ${model.api.name} streams its answer, which the Open Inference Protocol cannot carry: ` +
        `POST the sample to ${model.api.endpoint} instead`,
    );
  }
  let outputs = outputsOf(parsePrediction(new TextDecoder().decode(answer.body)));
  if (call.outputs !== undefined) {
    const byName = new Map(outputs.map((output) => [output.name, output]));
    outputs = call.outputs.map((name) => {
      const output = byName.get(name);
      if (output === undefined) {
        throw new ApiError(
          "BAD_REQUEST",
          `No output '${name}': the prediction has ${[...byName.keys()].join(", ")}`,
        );
      }
      return output;
    });
  }
  return c.json({ model_name: model.api.name, id: call.id ?? x.requestId, outputs });
}

/** Stops a stream: leaving its iteration (once started) cancels the request in the worker. */
async function cancelStream(stream: AsyncIterable<Uint8Array>): Promise<void> {
  try {
    for await (const _ of stream) break;
  } catch {
    // It ended with an error: nothing left to cancel.
  }
}

/** The metadata tensors of a model's inputs: the keys of its `sample.json` object, else none. */
export function sampleInputs(text: string | null): Omit<Tensor, "data" | "parameters">[] {
  if (text === null) return [];
  let sample: unknown;
  try {
    sample = parsePrediction(text);
  } catch {
    return [];
  }
  if (typeof sample !== "object" || sample === null || Array.isArray(sample)) return [];
  return Object.entries(sample).map(([name, value]) => {
    const { shape, datatype } = tensorOf(name, value);
    return { name, datatype, shape };
  });
}
