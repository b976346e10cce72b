/**
 * The Cortex 0.20–0.30 examples serve what their READMEs show, unchanged:
 * image bytes in and JSON out, a form upload, one model in two versions
 * (and a third added while serving), a TrafficSplitter.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { cp } from "node:fs/promises";
import { PYTHON, ROOT, startServer, tempDir } from "./_helpers.ts";
import { runCli } from "./_cli.ts";

const EXAMPLES = join(ROOT, "examples");

Deno.test("example image-colors-0.30: a PNG's bytes in, its colours as JSON out", async () => {
  const dir = join(EXAMPLES, "image-colors-0.30");
  await using server = await startServer(dir);
  const response = await fetch(`${server.url}/image-colors`, {
    method: "POST",
    headers: { "content-type": "image/png" },
    body: await Deno.readFile(join(dir, "sample.png")),
  });
  assert.equal(response.status, 200);
  assert.deepEqual(
    await response.json(),
    JSON.parse(await Deno.readTextFile(join(dir, "expected-answer.json"))),
  );
});

Deno.test("example csv-stats-0.20: a multipart upload's file and field reach predict", async () => {
  const dir = join(EXAMPLES, "csv-stats-0.20");
  await using server = await startServer(dir, { args: ["--max-body=1Mi"] });
  const form = new FormData();
  form.append(
    "data",
    new Blob([await Deno.readFile(join(dir, "sample.csv"))], { type: "text/csv" }),
    "sample.csv",
  );
  form.append("column", "petal_length");
  const response = await fetch(`${server.url}/csv-stats`, { method: "POST", body: form });
  assert.deepEqual(await response.json(), {
    file: "sample.csv",
    content_type: "text/csv",
    column: "petal_length",
    count: 6,
    mean: 3.85,
    min: 1.4,
    max: 6,
  });
  const tooLarge = await fetch(`${server.url}/csv-stats`, {
    method: "POST",
    body: (() => {
      const big = new FormData();
      big.append("data", new Blob([new Uint8Array(2 * 1024 * 1024)]), "big.csv");
      return big;
    })(),
  });
  assert.equal(tooLarge.status, 413, "the body limit bounds uploads");
  await tooLarge.body?.cancel();
});

Deno.test("example sentiment-versions-0.25: two versions, a third added while serving", async () => {
  // A copy: the test adds a version to the project's model directory.
  await using work = await tempDir();
  await cp(join(EXAMPLES, "sentiment-versions-0.25"), work.path, { recursive: true });
  await using server = await startServer(work.path);
  const sample = await Deno.readTextFile(join(work.path, "sample.json"));
  const ask = async (query = "") => {
    const response = await fetch(`${server.url}/sentiment${query}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: sample,
    });
    return await response.json();
  };
  assert.deepEqual(await ask(), { label: "positive", score: 3, version: "latest" });
  assert.deepEqual(await ask("?version=1"), { label: "negative", score: -1, version: "1" });
  await Deno.mkdir(join(work.path, "models/sentiment/3"));
  await Deno.writeTextFile(join(work.path, "models/sentiment/3/lexicon.json"), '{"love": 10}');
  assert.deepEqual(await ask(), { label: "positive", score: 10, version: "latest" });
});

Deno.test("example fare-split-0.30: the splitter sends requests to both fare models", async () => {
  const dir = join(EXAMPLES, "fare-split-0.30");
  await using server = await startServer(dir);
  const sample = await Deno.readTextFile(join(dir, "sample.json"));
  const models = new Map<string, number>();
  for (let i = 0; i < 100 && models.size < 2; i++) {
    const response = await fetch(`${server.url}/fare`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: sample,
    });
    const { model, fare } = await response.json();
    assert.equal(fare, model === "v1" ? 19.9 : 19.84);
    models.set(model, (models.get(model) ?? 0) + 1);
  }
  assert.deepEqual([...models.keys()].sort(), ["v1", "v2"]);
  const described = await (await fetch(`${server.url}/fare`)).json();
  assert.deepEqual(described.apis.map((a: { api: string; weight: number }) => [a.api, a.weight]), [
    ["fare-current", 80],
    ["fare-candidate", 20],
  ]);
});

Deno.test("validate names a splitter and its shares", async () => {
  const result = await runCli(["validate", join(EXAMPLES, "fare-split-0.30"), `--python=${PYTHON}`]);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /; splitter fare \(\/fare\): fare-current 80%, fare-candidate 20%;/);
  assert.match(result.stdout, /dialect: Cortex 0\.19–0\.35/);
});
