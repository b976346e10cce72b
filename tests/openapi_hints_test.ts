/**
 * Schemas from `predict`'s type hints, read from the inference file's text:
 * builtins and typing forms, TypedDict and pydantic classes of the file,
 * the PythonPredictor class, server-side batching, and files with no or
 * unreadable hints. The served document uses them (through `app.request()`),
 * and the example still validates against the sharper schema.
 */
import assert from "node:assert/strict";
import { Ajv2020 } from "ajv/dist/2020.js";
import SwaggerParser from "@apidevtools/swagger-parser";
import { predictHints } from "../src/http/openapi_hints.ts";
import { loadProjectConfig } from "../src/config/load.ts";
import { createApp } from "../src/http/app.ts";
import { Logger } from "../src/log/logger.ts";
import { ApiPool } from "../src/supervision/pool.ts";
import { makeProject, singleApiConfig } from "./_helpers.ts";

const MODULE = { batched: false, method: false } as const;
const BATCHED = { batched: true, method: false } as const;

Deno.test("hints: builtins, typing forms, unions and literals", () => {
  const cases: [string, unknown][] = [
    ["int", { type: "integer" }],
    ["float", { type: "number" }],
    ["str", { type: "string" }],
    ["bool", { type: "boolean" }],
    ["dict", { type: "object" }],
    ["dict[str, float]", { type: "object", additionalProperties: { type: "number" } }],
    ["typing.Dict[str, List[int]]", {
      type: "object",
      additionalProperties: { type: "array", items: { type: "integer" } },
    }],
    ["list[list[float]]", { type: "array", items: { type: "array", items: { type: "number" } } }],
    ["tuple[int, str]", {
      type: "array",
      prefixItems: [{ type: "integer" }, { type: "string" }],
      minItems: 2,
      maxItems: 2,
    }],
    ["tuple[float, ...]", { type: "array", items: { type: "number" } }],
    ["Optional[str]", { anyOf: [{ type: "string" }, { type: "null" }] }],
    ["int | None", { anyOf: [{ type: "integer" }, { type: "null" }] }],
    ["Union[int, str]", { anyOf: [{ type: "integer" }, { type: "string" }] }],
    ['Literal["a", 2]', { anyOf: [{ const: "a" }, { const: 2 }] }],
    ["'dict'", { type: "object" }],
    ["Any", {}],
    ["np.ndarray", {}],
    ["Union[int, SomethingElse]", {}],
  ];
  for (const [annotation, schema] of cases) {
    const source = `def predict(sample: ${annotation}, metadata):\n    return sample\n`;
    assert.deepEqual(predictHints(source, MODULE).sample, schema, annotation);
  }
});

Deno.test("hints: TypedDict and pydantic classes, return types, comments and multi-line signatures", () => {
  const source = `
from typing import TypedDict, NotRequired
from pydantic import BaseModel, Field

class Iris(TypedDict):
    """One flower."""
    sepal_length: float  # cm
    sepal_width: float
    petal_length: float
    petal_width: float
    note: NotRequired[str]

class Answer(BaseModel):
    label: str
    scores: dict[str, float] = {}
    rank: int = Field(..., ge=1)

    def describe(self) -> str:
        return self.label

def predict(
    sample: Iris,  # the request
    metadata: dict,
) -> "Answer":
    ...
`;
  const hints = predictHints(source, MODULE);
  assert.deepEqual(hints.sample, {
    type: "object",
    title: "Iris",
    properties: {
      sepal_length: { type: "number" },
      sepal_width: { type: "number" },
      petal_length: { type: "number" },
      petal_width: { type: "number" },
      note: { type: "string" },
    },
    required: ["sepal_length", "sepal_width", "petal_length", "petal_width"],
  });
  assert.deepEqual(hints.prediction, {
    type: "object",
    title: "Answer",
    properties: {
      label: { type: "string" },
      scores: { type: "object", additionalProperties: { type: "number" } },
      rank: { type: "integer" },
    },
    required: ["label", "rank"],
  });
  const partial = predictHints(
    "class P(TypedDict, total=False):\n    a: int\n\ndef predict(s: P, m): pass\n",
    MODULE,
  );
  assert.deepEqual(partial.sample, { type: "object", title: "P", properties: { a: { type: "integer" } } });
});

Deno.test("hints: PythonPredictor, batching, and no hints", () => {
  const predictor =
    "class PythonPredictor:\n    def predict(self, payload: dict[str, str]) -> list[float]:\n        pass\n";
  assert.deepEqual(predictHints(predictor, { batched: false, method: true }), {
    sample: { type: "object", additionalProperties: { type: "string" } },
    prediction: { type: "array", items: { type: "number" } },
  });
  const batched = "def predict(samples: list[list[float]], metadata) -> list[str]:\n    pass\n";
  assert.deepEqual(predictHints(batched, BATCHED), {
    sample: { type: "array", items: { type: "number" } },
    prediction: { type: "string" },
  });
  assert.deepEqual(predictHints("def predict(samples: list, metadata):\n    pass\n", BATCHED), {});
  assert.deepEqual(predictHints("def predict(sample, metadata):\n    return sample\n", MODULE), {});
  assert.deepEqual(predictHints("def predict(*args):\n    pass\n", MODULE), {});
  assert.deepEqual(predictHints("print('no predict here')\n", MODULE), {});
  const helper = "class Model:\n    def predict(self, x: list[float]) -> int:\n        pass\n\n" +
    "def predict(sample: dict, metadata) -> str:\n    pass\n";
  assert.deepEqual(predictHints(helper, MODULE), {
    sample: { type: "object" },
    prediction: { type: "string" },
  });
  assert.deepEqual(predictHints(helper, { batched: false, method: true }), {}, "no class PythonPredictor");
  assert.deepEqual(predictHints("def predict(sample: dict[str, int", MODULE), {});
});

Deno.test("hints: the served document describes a typed predictor, and its example fits", async () => {
  await using project = await makeProject({
    "cortex.yaml": singleApiConfig(),
    "inference.py": `from typing import TypedDict

class Iris(TypedDict):
    sepal_length: float
    sepal_width: float
    petal_length: float
    petal_width: float

def predict(sample: Iris, metadata) -> str:
    return "iris-setosa"
`,
    "sample.json": '{"sepal_length": 5.2, "sepal_width": 3.6, "petal_length": 1.4, "petal_width": 0.3}',
  });
  const config = await loadProjectConfig(project.path);
  const logger = new Logger({ sink: () => {} });
  const pools = new Map(config.apis.map((api) => [
    api.name,
    new ApiPool({ api: api.name, queuePerReplica: 1, maxReplicas: 1, predictTimeoutMs: 1000, logger }),
  ]));
  const { app } = createApp({ project: config, pools, maxBodyBytes: 1024, debug: false, logger });
  const document = await (await app.request("/openapi.json")).json();
  await SwaggerParser.validate(structuredClone(document));
  const post = document.paths["/test/api"].post;
  const media = post.requestBody.content["application/json"];
  assert.deepEqual(media.schema.required, ["sepal_length", "sepal_width", "petal_length", "petal_width"]);
  assert.match(media.schema.description, /type hint.*inference\.py/);
  assert.equal(post.responses["200"].content["application/json"].schema.type, "string");
  const ajv = new Ajv2020({ strict: false });
  assert.ok(ajv.validate(media.schema, media.example), ajv.errorsText());
  assert.ok(
    !ajv.validate(media.schema, { sepal_length: "wide" }),
    "the sharper schema refuses a wrong sample",
  );
});
