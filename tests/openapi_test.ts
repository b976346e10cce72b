/**
 * `GET /openapi.json`: the served document is valid OpenAPI 3.1
 * (@apidevtools/swagger-parser), names every route the app registers, carries
 * each API's sample.json as its example, and, against a real server, the
 * answers of its GET routes and of a prediction with the example match the
 * statuses, content types and schemas it documents.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import SwaggerParser from "@apidevtools/swagger-parser";
import { Ajv2020 } from "ajv/dist/2020.js";
import { loadProjectConfig } from "../src/config/load.ts";
import { type CortexApp, createApp } from "../src/http/app.ts";
import { ServerMetrics } from "../src/http/metrics.ts";
import { Logger } from "../src/log/logger.ts";
import { KeyStore } from "../src/security/api_keys.ts";
import { OPEN_PATHS } from "../src/http/auth.ts";
import { ApiPool } from "../src/supervision/pool.ts";
import { makeProject, ROOT, startServer, tempDir } from "./_helpers.ts";

const IRIS = join(ROOT, "examples", "iris-classifier");

// deno-lint-ignore no-explicit-any
type Json = any;

/** An app on `projectDir` whose APIs have no replica (no worker is started). */
async function appOn(projectDir: string, keys?: KeyStore): Promise<CortexApp> {
  const project = await loadProjectConfig(projectDir);
  const logger = new Logger({ sink: () => {} });
  const pools = new Map(project.apis.map((api) => [
    api.name,
    new ApiPool({ api: api.name, queuePerReplica: 1, maxReplicas: 1, predictTimeoutMs: 1000, logger }),
  ]));
  const metrics = new ServerMetrics({ pools: () => pools.values() });
  return createApp({
    project,
    pools,
    maxBodyBytes: 1024,
    debug: false,
    logger,
    metrics,
    keys,
    version: "9.9.9",
  });
}

async function getDocument(app: CortexApp["app"], headers: HeadersInit = {}): Promise<Json> {
  const res = await app.request("/openapi.json", { headers });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "application/json");
  return await res.json();
}

/** Validates with swagger-parser (which rewrites what it is given: pass a copy). */
async function validate(document: Json): Promise<void> {
  await SwaggerParser.validate(structuredClone(document));
}

/** A validator of values against the document's schemas (`#/components/...` refs). */
function schemas(document: Json): (schema: Json, value: unknown) => string | undefined {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  ajv.addSchema({ $id: "doc", components: document.components });
  return (schema, value) => {
    const rebased = JSON.parse(JSON.stringify(schema).replaceAll('"#/components/', '"doc#/components/'));
    const check = ajv.compile(rebased);
    return check(value) ? undefined : ajv.errorsText(check.errors);
  };
}

Deno.test("openapi: a valid 3.1 document naming every route, with sample.json as the example", async () => {
  const { app } = await appOn(IRIS);
  const document = await getDocument(app);
  await validate(document);
  assert.equal(document.openapi, "3.1.0");
  assert.equal(document.info.version, "9.9.9");

  // Every GET and POST route of the router, and each API's POST (answered before the router).
  const staticAssets = /^\/_console\/.*\.(js|css|svg)$/;
  const routed = app.routes
    .filter((r) => r.method === "GET" || r.method === "POST")
    .map((r) => ({ method: r.method.toLowerCase(), path: r.path.replace(/:(\w+)/g, "{$1}") }))
    .filter((r) => !staticAssets.test(r.path));
  routed.push({ method: "post", path: "/iris/classifier" });
  for (const { method, path } of routed) {
    assert.ok(document.paths[path]?.[method], `${method.toUpperCase()} ${path} is not in the document`);
  }
  for (const path of ["/", "/livez", "/healthz", "/metrics", "/openapi.json", "/v2/models/{name}/infer"]) {
    assert.ok(document.paths[path], path);
  }

  const predict = document.paths["/iris/classifier"].post;
  const media = predict.requestBody.content["application/json"];
  const sample = JSON.parse(await Deno.readTextFile(join(IRIS, "sample.json")));
  assert.deepEqual(media.example, sample);
  assert.equal(media.schema.type, "object", "an untyped predictor takes a generic object");
  const check = schemas(document);
  assert.equal(check(media.schema, sample), undefined);
  for (const status of ["400", "413", "500", "502", "503", "504"]) {
    const answer = document.components.responses[predict.responses[status].$ref.split("/").pop()];
    assert.equal(
      check(answer.content["application/json"].schema, { error: "x", api: null, request_id: "r" }),
      undefined,
    );
    assert.ok(check(answer.content["application/json"].schema, { message: "x" }) !== undefined);
  }
  // The V2 request example is the same sample, as tensors.
  const v2 = document.paths["/v2/models/{name}/infer"].post.requestBody.content["application/json"];
  assert.deepEqual(v2.examples.classifier.value.inputs[0], {
    name: "sepal_length",
    shape: [],
    datatype: "FP64",
    data: [5.2],
  });
  assert.equal(check(v2.schema, v2.examples.classifier.value), undefined);
  assert.ok(!("security" in document), "no keys, no security");
});

Deno.test("openapi: the validator rejects a broken document", async () => {
  const { app } = await appOn(IRIS);
  const document = await getDocument(app);
  delete document.paths["/healthz"].get.responses["200"].description;
  await assert.rejects(() => validate(document), /description/);
});

Deno.test("openapi: with API keys, the schemes are declared, the probes are open, the document needs a key", async () => {
  await using dir = await tempDir();
  const file = join(dir.path, "keys");
  await Deno.writeTextFile(file, "k-0123456789abcdef0123456789abcdef\n", { mode: 0o600 });
  const { app } = await appOn(IRIS, await KeyStore.load(file));
  const refused = await app.request("/openapi.json");
  assert.equal(refused.status, 401);
  await refused.body?.cancel();
  const document = await getDocument(app, { authorization: "Bearer k-0123456789abcdef0123456789abcdef" });
  await validate(document);
  assert.deepEqual(Object.keys(document.components.securitySchemes).sort(), ["apiKey", "bearer"]);
  assert.deepEqual(document.security, [{ bearer: [] }, { apiKey: [] }]);
  // Exactly the server's open paths are open in the document; every other operation may answer 401.
  for (const [path, item] of Object.entries<Json>(document.paths)) {
    for (const [method, operation] of Object.entries<Json>(item)) {
      if (method === "parameters") continue;
      if (OPEN_PATHS.has(path)) {
        assert.deepEqual(operation.security, [], `${method} ${path} is open`);
        assert.equal(operation.responses["401"], undefined, `${method} ${path} answers no 401`);
      } else {
        assert.equal(operation.security, undefined, `${method} ${path} needs a key`);
        assert.ok(operation.responses["401"], `${method} ${path} documents its 401`);
      }
    }
  }
  assert.ok(OPEN_PATHS.has("/v2/health/ready"));
  assert.ok(document.paths["/iris/classifier"].post.responses["401"]);
});

Deno.test("openapi: no sample.json gives a generic object and no example; a list sample, any JSON", async () => {
  await using bare = await makeProject({
    "inference.py": "def predict(sample, metadata):\n    return sample\n",
  });
  const plain = await getDocument((await appOn(bare.path)).app);
  await validate(plain);
  const media = plain.paths["/test/api"].post.requestBody.content["application/json"];
  assert.deepEqual(
    { type: media.schema.type, additionalProperties: media.schema.additionalProperties },
    { type: "object", additionalProperties: true },
  );
  assert.ok(!("example" in media));
  assert.ok(
    !("examples" in plain.paths["/v2/models/{name}/infer"].post.requestBody.content["application/json"]),
  );

  await using listed = await makeProject({
    "inference.py": "def predict(sample, metadata):\n    return sample\n",
    "sample.json": "[[1, 2], [3, 4]]",
  });
  const list = await getDocument((await appOn(listed.path)).app);
  await validate(list);
  const listMedia = list.paths["/test/api"].post.requestBody.content["application/json"];
  assert.deepEqual(listMedia.example, [[1, 2], [3, 4]]);
  assert.equal(listMedia.schema.type, undefined);
});

Deno.test("openapi: a real server answers as its document says", async () => {
  await using server = await startServer(IRIS);
  const document: Json = await (await fetch(`${server.url}/openapi.json`)).json();
  await validate(document);
  const check = schemas(document);

  // Every GET route without a path parameter.
  const checked: string[] = [];
  for (const [path, item] of Object.entries<Json>(document.paths)) {
    if (item.get === undefined || path.includes("{")) continue;
    const res = await fetch(server.url + path, { headers: { accept: "application/json" } });
    checked.push(path);
    const documented = item.get.responses[String(res.status)];
    assert.ok(documented, `GET ${path} answered ${res.status}, not documented`);
    const type = (res.headers.get("content-type") ?? "").split(";")[0]!;
    if (documented.content === undefined) {
      await res.body?.cancel();
      continue;
    }
    const media = documented.content[type];
    assert.ok(media, `GET ${path}: ${type} not documented`);
    const body = type === "application/json" ? await res.json() : await res.text();
    if (type === "application/json") assert.equal(check(media.schema, body), undefined, `GET ${path}`);
  }

  assert.ok(checked.length >= 10, checked.join(" "));

  // The prediction with the document's example, and an error answer.
  const predict = document.paths["/iris/classifier"].post;
  const ok = await fetch(`${server.url}/iris/classifier`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(predict.requestBody.content["application/json"].example),
  });
  assert.equal(ok.status, 200);
  assert.equal(await ok.json(), "iris-setosa");
  const bad = await fetch(`${server.url}/iris/classifier`, { method: "POST", body: "{}" });
  const errorBody = await bad.json();
  assert.ok(predict.responses[String(bad.status)], `status ${bad.status} not documented`);
  const errorSchema = document.components.responses[`Error${bad.status}`].content["application/json"].schema;
  assert.equal(check(errorSchema, errorBody), undefined);
});
