/**
 * Durable jobs in `GET /openapi.json`: the document stays valid OpenAPI 3.1
 * with the job routes and the submit's 202, an `async: true` API documents
 * only the 202, and a real job's answers match the documented schemas.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import SwaggerParser from "@apidevtools/swagger-parser";
import { Ajv2020 } from "ajv/dist/2020.js";
import { loadProjectConfig } from "../src/config/load.ts";
import { createApp } from "../src/http/app.ts";
import { Logger } from "../src/log/logger.ts";
import { ApiPool } from "../src/supervision/pool.ts";
import { JobService } from "../src/jobs/service.ts";
import { SqliteJobStore } from "../src/jobs/sqlite_store.ts";
import { post, ROOT, startServer, tempDir } from "./_helpers.ts";
import { eventually } from "./_jobs.ts";

const REPORTS = join(ROOT, "examples", "async-reports");

// deno-lint-ignore no-explicit-any
type Json = any;

Deno.test("openapi with jobs: valid, the job routes, 202 on submit, only 202 for an async API", async () => {
  await using dir = await tempDir();
  const project = await loadProjectConfig(REPORTS);
  const logger = new Logger({ sink: () => {} });
  const pools = new Map(project.apis.map((api) => [
    api.name,
    new ApiPool({ api: api.name, queuePerReplica: 1, maxReplicas: 1, predictTimeoutMs: 1000, logger }),
  ]));
  await using jobs = new JobService({ store: await SqliteJobStore.open({ dir: dir.path }), logger });
  const { app } = createApp({ project, pools, maxBodyBytes: 1024, debug: false, logger, jobs, version: "1" });
  const document: Json = await (await app.request("/openapi.json")).json();
  await SwaggerParser.validate(structuredClone(document));
  const submit = document.paths["/reports/summarizer"].post;
  assert.deepEqual(Object.keys(submit.responses).filter((s) => s.startsWith("2")), ["202"]);
  assert.ok(submit.parameters.some((p: Json) => p.name === "webhook"));
  assert.ok(document.paths["/reports/summarizer/{id}"].get);
  assert.ok(document.paths["/reports/summarizer/{id}"].delete);
  assert.ok(document.paths["/reports/summarizer/{id}/cancel"].post);
  assert.ok(document.components.schemas.Job);
});

Deno.test("openapi with jobs: a real job's answers match the documented schemas", async () => {
  await using server = await startServer(REPORTS, { replicas: 2 });
  const document: Json = await (await fetch(`${server.url}/openapi.json`)).json();
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  ajv.addFormat("date-time", true);
  ajv.addSchema({ $id: "doc", components: document.components });
  const check = (name: string, value: unknown) => {
    const validate = ajv.compile({ $ref: `doc#/components/schemas/${name}` });
    assert.ok(validate(value), `${name}: ${ajv.errorsText(validate.errors)}`);
  };
  const sample = await Deno.readTextFile(join(REPORTS, "sample.json"));
  const accepted = await (await post(`${server.url}/reports/summarizer`, sample)).json();
  check("JobAccepted", accepted);
  check("Job", await (await fetch(`${server.url}/reports/summarizer/${accepted.id}`)).json());
  let done: Json;
  await eventually("the job to complete", async () => {
    done = await (await fetch(`${server.url}/reports/summarizer/${accepted.id}`)).json();
    return done.status === "completed";
  });
  check("Job", done);
});
