/**
 * The project files of the Cortex 0.18+ dialects: `.cortexignore` (gitignore
 * syntax) leaves files out of staging, `.env` reaches every worker's
 * environment and its bad lines are errors naming `.env` and the line.
 */
import assert from "node:assert/strict";
import { IgnoreRules } from "../src/project/cortexignore.ts";
import { walkProject } from "../src/project/walk.ts";
import { parseDotenv } from "../src/config/dotenv.ts";
import { loadProjectConfig } from "../src/config/load.ts";
import { ConfigError } from "../src/config/errors.ts";
import { makeProject } from "./_helpers.ts";

Deno.test(".cortexignore: gitignore patterns, anchors, directories only, negation", () => {
  const rules = new IgnoreRules([
    "# data is downloaded at init",
    "data/",
    "*.ipynb",
    "/build",
    "docs/**/*.png",
    "logs/*.log",
    "!logs/keep.log",
    "model-?.bin",
    "",
  ].join("\n"));
  const cases: [string, boolean, boolean][] = [
    ["data", true, true],
    ["src/data", true, true],
    ["data", false, false], // a file named data: the rule is for directories
    ["notebook.ipynb", false, true],
    ["src/deep/n.ipynb", false, true],
    ["build", true, true],
    ["src/build", true, false], // anchored at the root
    ["docs/a/b/c.png", false, true],
    ["docs/c.png", false, true],
    ["docs/c.jpg", false, false],
    ["logs/a.log", false, true],
    ["logs/keep.log", false, false],
    ["model-1.bin", false, true],
    ["model-10.bin", false, false],
    ["predictor.py", false, false],
  ];
  for (const [path, dir, expected] of cases) {
    assert.equal(rules.ignores(path, dir), expected, `${path} (${dir ? "directory" : "file"})`);
  }
});

Deno.test("walkProject leaves out what .cortexignore names", async () => {
  await using project = await makeProject({
    ".cortexignore": "samples/\n*.csv\n",
    "predictor.py": "",
    "samples/big.bin": "x",
    "data/train.csv": "1,2",
    "data/keep.txt": "k",
  });
  const tree = await walkProject(await Deno.realPath(project.path));
  assert.deepEqual(tree.files.map((f) => f.path).sort(), ["data/keep.txt", "predictor.py"]);
});

Deno.test(".env: quotes, export, comments; bad lines name the line", () => {
  const { vars, issues } = parseDotenv([
    "# settings",
    "export MODEL_BUCKET=my-bucket",
    "THRESHOLD = 0.5  # a comment",
    "GREETING='hello # not a comment'",
    'ESCAPED="a \\"b\\"\\nc"',
    "not a line",
    "CORTEX_X=1",
  ].join("\n"));
  assert.deepEqual(vars, {
    MODEL_BUCKET: "my-bucket",
    THRESHOLD: "0.5",
    GREETING: "hello # not a comment",
    ESCAPED: 'a "b"\nc',
  });
  assert.deepEqual(issues.map((i) => i.line), [6, 7]);
});

Deno.test(".env is read for Cortex 0.19+ projects and overrides predictor.env; not for 0.13", async () => {
  const later = "- name: api\n  kind: RealtimeAPI\n  predictor:\n    type: python\n    path: p.py\n" +
    "    env:\n      A: from-yaml\n      B: kept\n";
  await using project = await makeProject({
    "cortex.yaml": later,
    "p.py": "",
    ".env": "A=from-dotenv\nC=3\n",
  });
  const config = await loadProjectConfig(project.path);
  assert.deepEqual(config.apis[0]!.env, { A: "from-dotenv", B: "kept", C: "3" });

  const earlier = "- name: api\n  predictor:\n    type: python\n    path: p.py\n";
  await using old = await makeProject({ "cortex.yaml": earlier, "p.py": "", ".env": "C=3\n" });
  assert.deepEqual((await loadProjectConfig(old.path)).apis[0]!.env, {});

  await using bad = await makeProject({ "cortex.yaml": later, "p.py": "", ".env": "OK=1\n=nope\n" });
  const error = await loadProjectConfig(bad.path).catch((e) => e);
  assert.ok(error instanceof ConfigError);
  assert.match(error.message, /\.env:2.*not a VARIABLE=value line/);
});
