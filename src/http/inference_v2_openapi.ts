/**
 * The Open Inference Protocol routes (./inference_v2.ts) in the OpenAPI
 * document (./openapi.ts): their paths, and the protocol's JSON objects as
 * component schemas.
 *
 * @module
 */
import type { ResolvedProject } from "../config/types.ts";
import { DATATYPES, tensorOf } from "./inference_v2_tensors.ts";
import { jsonContent, type OpenApiObject, ref } from "./openapi_schemas.ts";

const V2_ERROR = "V2Error";

/** The protocol's objects, for `components.schemas`. */
export function inferenceV2Schemas(): Record<string, OpenApiObject> {
  const parameters: OpenApiObject = {
    type: "object",
    additionalProperties: { type: ["string", "number", "boolean"] },
  };
  const tensorData: OpenApiObject = {
    type: "array",
    description: "Elements in row-major order, flat or nested",
    items: {
      anyOf: [{ $ref: "#/components/schemas/V2TensorData" }, { type: ["number", "string", "boolean"] }],
    },
  };
  const tensor: OpenApiObject = {
    type: "object",
    required: ["name", "shape", "datatype", "data"],
    properties: {
      name: { type: "string" },
      shape: { type: "array", items: { type: "integer", minimum: 0 } },
      datatype: { type: "string", enum: [...DATATYPES] },
      parameters: ref("schemas", "V2Parameters"),
      data: ref("schemas", "V2TensorData"),
    },
  };
  return {
    V2Parameters: parameters,
    V2TensorData: tensorData,
    V2Tensor: tensor,
    V2MetadataTensor: {
      type: "object",
      required: ["name", "datatype", "shape"],
      properties: {
        name: { type: "string" },
        datatype: { type: "string", enum: [...DATATYPES] },
        shape: { type: "array", items: { type: "integer", minimum: -1 } },
      },
    },
    V2InferenceRequest: {
      type: "object",
      required: ["inputs"],
      properties: {
        id: { type: "string" },
        parameters: ref("schemas", "V2Parameters"),
        inputs: { type: "array", minItems: 1, items: ref("schemas", "V2Tensor") },
        outputs: {
          type: "array",
          items: { type: "object", required: ["name"], properties: { name: { type: "string" } } },
        },
      },
    },
    V2InferenceResponse: {
      type: "object",
      required: ["model_name", "outputs"],
      properties: {
        model_name: { type: "string" },
        id: { type: "string" },
        parameters: ref("schemas", "V2Parameters"),
        outputs: { type: "array", items: ref("schemas", "V2Tensor") },
      },
    },
    V2ServerMetadata: {
      type: "object",
      required: ["name", "version", "extensions"],
      properties: {
        name: { type: "string" },
        version: { type: "string" },
        extensions: { type: "array", items: { type: "string" } },
      },
    },
    V2ModelMetadata: {
      type: "object",
      required: ["name", "platform", "inputs", "outputs"],
      properties: {
        name: { type: "string" },
        platform: { type: "string" },
        inputs: { type: "array", items: ref("schemas", "V2MetadataTensor") },
        outputs: { type: "array", items: ref("schemas", "V2MetadataTensor") },
      },
    },
    [V2_ERROR]: { type: "object", required: ["error"], properties: { error: { type: "string" } } },
  };
}

/**
 * The `/v2` paths; `examples` maps API names to a request example (made
 * from the API's sample.json), when there is one.
 */
export function inferenceV2Paths(
  project: ResolvedProject,
  examples: Readonly<Record<string, OpenApiObject>>,
  keys: boolean,
): Record<string, OpenApiObject> {
  const names = project.apis.map((api) => api.name);
  const model = {
    name: "name",
    in: "path",
    required: true,
    description: "An API of the deployment",
    schema: { type: "string", enum: names },
  };
  const error = (description: string) => ({ description, content: jsonContent(ref("schemas", V2_ERROR)) });
  const auth = keys ? { "401": error("Missing or invalid API key") } : {};
  /** A health route; `open` ones need no API key (see src/http/auth.ts). */
  const health = (operationId: string, summary: string, open: boolean) => ({
    get: {
      tags: ["open inference protocol"],
      operationId,
      summary,
      ...(keys && open ? { security: [] } : {}),
      responses: {
        "200": { description: "Yes (empty body)" },
        "400": { description: "No (empty body)" },
        ...(open ? {} : auth),
      },
    },
  });
  const requestExamples = Object.fromEntries(
    Object.entries(examples).map(([api, value]) => [api, { summary: `From ${api}'s sample.json`, value }]),
  );
  return {
    "/v2": {
      get: {
        tags: ["open inference protocol"],
        operationId: "v2_server_metadata",
        summary: "Server metadata",
        responses: {
          "200": { description: "The server", content: jsonContent(ref("schemas", "V2ServerMetadata")) },
          ...auth,
        },
      },
    },
    "/v2/health/live": health("v2_server_live", "The server is live", true),
    "/v2/health/ready": health("v2_server_ready", "Every model (API) is ready", true),
    "/v2/models/{name}": {
      parameters: [model],
      get: {
        tags: ["open inference protocol"],
        operationId: "v2_model_metadata",
        summary: "Model metadata: inputs from the API's sample.json when it is a JSON object",
        responses: {
          "200": { description: "The model", content: jsonContent(ref("schemas", "V2ModelMetadata")) },
          ...auth,
          "404": error("No such model"),
        },
      },
    },
    "/v2/models/{name}/ready": {
      parameters: [model],
      ...health("v2_model_ready", "The model (API) is ready", false),
    },
    "/v2/models/{name}/infer": {
      parameters: [model],
      post: {
        tags: ["open inference protocol"],
        operationId: "v2_infer",
        summary: "Inference: the inputs become predict's sample (name \u2192 nested lists of the shape)",
        requestBody: {
          required: true,
          content: {
            "application/json": {
              schema: ref("schemas", "V2InferenceRequest"),
              ...(Object.keys(requestExamples).length > 0 ? { examples: requestExamples } : {}),
            },
          },
        },
        responses: {
          "200": {
            description: "The prediction as tensors",
            content: jsonContent(ref("schemas", "V2InferenceResponse")),
          },
          "400": error(
            "A request that is not a valid inference request, or that predict rejected as bad input",
          ),
          ...auth,
          "404": error("No such model"),
          "413": error("The body is over `--max-body`"),
          "500": error("`predict` raised"),
          "502": error("The worker died during the request"),
          "503": error("Not ready, at capacity or shutting down; see `Retry-After`"),
          "504": error("`predict` ran longer than `--predict-timeout`"),
        },
      },
    },
  };
}

/** An inference request made from a sample.json object (one input per key), or undefined. */
export function requestExample(sample: unknown): OpenApiObject | undefined {
  if (typeof sample !== "object" || sample === null || Array.isArray(sample)) return undefined;
  const inputs = Object.entries(sample).map(([name, value]) => tensorOf(name, value));
  return inputs.length === 0 ? undefined : { inputs };
}
