/**
 * Self-containment: the bundled program, copied alone into an empty
 * directory, serves the example. Proves nothing is read from the source tree
 * at run time (the worker is imported as text), as `deno compile` requires.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { post, ROOT, startServer, tempDir } from "./_helpers.ts";
import { eventually } from "./_jobs.ts";

Deno.test("the bundle serves the example from an empty directory", async () => {
  await using out = await tempDir("cortex-serve-bundle-");
  await using empty = await tempDir("cortex-serve-empty-");
  const bundle = join(out.path, "cortex-serve.js");
  const built = await new Deno.Command(Deno.execPath(), {
    args: ["bundle", "--frozen", "--platform", "deno", "-o", bundle, "main.ts"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(built.code, 0, new TextDecoder().decode(built.stderr));
  // V8 keeps a script's source for as long as it runs, one byte a character
  // while every character is Latin-1, two bytes as soon as one is not: a
  // single "…" in a comment made the server hold 0.8 MB more.
  const source = await Deno.readTextFile(bundle);
  const wide = source.search(/[\u0100-\uffff]/);
  assert.equal(
    wide,
    -1,
    `a character past Latin-1 in the bundle: ${JSON.stringify(source.slice(wide - 60, wide + 20))}`,
  );

  const alone = join(empty.path, "cortex-serve.js");
  await Deno.copyFile(bundle, alone);
  const project = join(ROOT, "examples", "iris-classifier");
  await using server = await startServer(project, { entry: alone, cwd: empty.path });
  const res = await post(`${server.url}/iris/classifier`, {
    sepal_length: 5.2,
    sepal_width: 3.6,
    petal_length: 1.4,
    petal_width: 0.3,
  });
  assert.equal(res.status, 200);
  assert.equal(await res.json(), "iris-setosa");
  // The console's page and assets are inside the bundle.
  const page = await fetch(`${server.url}/`, { headers: { accept: "text/html" } });
  assert.match(await page.text(), /<title>cortex-serve console<\/title>/);
  for (const asset of ["console.js", "chart.js", "console.css", "icon.svg"]) {
    const res = await fetch(`${server.url}/_console/${asset}`);
    assert.equal(res.status, 200, asset);
    assert.ok((await res.text()).length > 100, asset);
  }
  // The job store's thread starts from the source inside the bundle.
  const sample = { sepal_length: 5.2, sepal_width: 3.6, petal_length: 1.4, petal_width: 0.3 };
  const submitted = await post(`${server.url}/iris/classifier`, sample, { prefer: "respond-async" });
  assert.equal(submitted.status, 202);
  const { id } = await submitted.json();
  await eventually("the job to complete", async () => {
    const job = await (await fetch(`${server.url}/iris/classifier/${id}`)).json();
    return job.status === "completed" && job.result === "iris-setosa";
  });
  assert.deepEqual([...Deno.readDirSync(empty.path)].map((e) => e.name), ["cortex-serve.js"]);
});
