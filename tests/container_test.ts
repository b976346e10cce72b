/**
 * The image recipe deploy/container/Containerfile agrees with the repository
 * and the Kubernetes manifests. Base images cannot be pulled here, so the
 * image is not built: what it names is checked instead. Each `COPY` source
 * exists (or is the output of `deno task compile`), each `cortex-serve` flag
 * is one the real CLI's `serve --help` lists, the arguments and user match
 * deployment.yaml, and the `HEALTHCHECK` command, run as written, passes
 * against a ready server and fails against one that is not.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { parseServeArgs } from "../src/cli/serve_options.ts";
import { loadProjectConfig } from "../src/config/load.ts";
import { Logger } from "../src/log/logger.ts";
import { createApp } from "../src/http/app.ts";
import { ApiPool } from "../src/supervision/pool.ts";
import { runCli } from "./_cli.ts";
import { PYTHON, ROOT, startServer } from "./_helpers.ts";

const CONTAINERFILE = join(ROOT, "deploy", "container", "Containerfile");
const BINARY = "dist/cortex-serve";

interface Instruction {
  readonly keyword: string;
  readonly args: string;
}

/** Instructions in order: continuation lines joined, comments dropped. */
function parseContainerfile(text: string): Instruction[] {
  const logical: string[] = [];
  let pending = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line.startsWith("#") || (line === "" && pending === "")) continue;
    if (line.endsWith("\\")) {
      pending += line.slice(0, -1) + " ";
      continue;
    }
    logical.push(pending + line);
    pending = "";
  }
  return logical.filter((line) => line !== "").map((line) => {
    const [keyword, ...rest] = line.split(/\s+/);
    return { keyword: keyword!.toUpperCase(), args: rest.join(" ") };
  });
}

function only(instructions: Instruction[], keyword: string): string {
  const found = instructions.filter((i) => i.keyword === keyword);
  assert.equal(found.length, 1, `one ${keyword}`);
  return found[0]!.args;
}

/** `${NAME}` and `$NAME` replaced by the `ARG` defaults. */
function substitute(value: string, args: ReadonlyMap<string, string>): string {
  return value.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, braced, bare) => {
    const name = braced ?? bare;
    const found = args.get(name);
    assert.ok(found !== undefined, `ARG ${name} has no default`);
    return found;
  });
}

async function recipe() {
  const text = await Deno.readTextFile(CONTAINERFILE);
  const instructions = parseContainerfile(text);
  const deployment = parseYaml(
    await Deno.readTextFile(join(ROOT, "deploy", "kubernetes", "deployment.yaml")),
  );
  const container = deployment.spec.template.spec.containers[0];
  return { text, instructions, container };
}

Deno.test("Containerfile: Debian 12 slim, the Python packages, a non-root user, the manifests' tag", async () => {
  const { text, instructions, container } = await recipe();
  assert.equal(instructions[0]?.keyword, "FROM");
  assert.match(only(instructions, "FROM"), /^(docker\.io\/library\/)?debian:(12|bookworm)-slim$/);
  const install = instructions.find((i) => i.keyword === "RUN" && i.args.includes("apt-get install"));
  assert.ok(install, "an apt-get install step");
  const packages = new Set(install.args.split(/\s+/));
  for (const name of ["python3", "python3-msgpack", "python3-numpy", "python3-boto3", "python3-requests"]) {
    assert.ok(packages.has(name), `installs ${name}`);
  }

  const user = only(instructions, "USER");
  assert.notEqual(user, "0");
  assert.notEqual(user, "root");
  assert.equal(Number(user), container.securityContext.runAsUser);
  assert.equal(only(instructions, "STOPSIGNAL"), "SIGTERM");

  // The documented build command tags the image the Deployment runs.
  const tags = [...text.matchAll(/ -t (\S+) /g)].map((m) => m[1]);
  assert.ok(tags.length > 0, "a documented build command");
  for (const tag of tags) assert.equal(tag, container.image);
  const operations = await Deno.readTextFile(join(ROOT, "docs", "operations.md"));
  assert.ok(
    operations.includes(`-t ${container.image}`),
    "docs/operations.md shows the build with the manifests' tag",
  );

  const env = new Map(
    instructions.filter((i) => i.keyword === "ENV").map((i) => i.args.split("=", 2) as [string, string]),
  );
  for (const { name, value } of container.env ?? []) assert.equal(env.get(name), value, `ENV ${name}`);
});

Deno.test("Containerfile: each COPY source exists or is built by `deno task compile`", async () => {
  const { instructions } = await recipe();
  const args = new Map(
    instructions.filter((i) => i.keyword === "ARG").map((i) => {
      const [name, value] = i.args.split("=", 2);
      return [name!, value ?? ""] as [string, string];
    }),
  );
  const copies = instructions.filter((i) => i.keyword === "COPY").map((i) => {
    const parts = i.args.split(/\s+/).filter((p) => !p.startsWith("--"));
    return { sources: parts.slice(0, -1).map((p) => substitute(p, args)), dest: parts.at(-1)! };
  });
  assert.ok(copies.length >= 2);
  for (const { sources } of copies) {
    for (const source of sources) {
      if (source === BINARY) continue; // a build output, checked below
      await Deno.stat(join(ROOT, source)).catch(() => assert.fail(`COPY source ${source} does not exist`));
    }
  }
  // dist/cortex-serve is what the compile task writes.
  const tasks = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json"))).tasks;
  assert.equal(tasks.compile, "./scripts/compile");
  assert.match(await Deno.readTextFile(join(ROOT, "scripts", "compile")), new RegExp(`--output ${BINARY} `));
  const binary = copies.find((c) => c.sources.includes(BINARY));
  assert.ok(binary, `COPY ${BINARY}`);
  assert.deepEqual(JSON.parse(only(instructions, "ENTRYPOINT")), [binary.dest]);

  // The project lands at /project, the directory the arguments serve, and loads.
  const project = copies.find((c) => c.dest.replace(/\/$/, "") === "/project");
  assert.ok(project, "COPY … /project/");
  const config = await loadProjectConfig(join(ROOT, project.sources[0]!));
  assert.ok(config.apis.length > 0);
});

Deno.test("Containerfile: the Deployment's arguments, each a flag `serve --help` lists", async () => {
  const { instructions, container } = await recipe();
  const cmd: string[] = JSON.parse(only(instructions, "CMD"));
  assert.equal(container.command, undefined, "the Deployment keeps the image's ENTRYPOINT");
  assert.deepEqual(cmd, container.args);
  assert.equal(cmd[0], "serve");
  assert.equal(cmd[1], "/project");

  const help = await runCli(["serve", "--help"]);
  assert.equal(help.code, 0, help.stderr);
  const flags = cmd.filter((arg) => arg.startsWith("--")).map((arg) => arg.split("=")[0]!);
  assert.ok(flags.length >= 4);
  for (const flag of flags) {
    assert.match(help.stdout, new RegExp(`^\\s+${flag}\\b`, "m"), `serve --help does not list ${flag}`);
  }
  const options = parseServeArgs(cmd.slice(1));
  assert.notEqual(options, "help");
  if (options === "help") return;
  assert.equal(only(instructions, "EXPOSE"), String(options.port));
  assert.equal(options.stateDir, "/var/lib/cortex-serve");
});

Deno.test("Containerfile: the HEALTHCHECK command passes on a ready server and fails otherwise", async () => {
  const { instructions } = await recipe();
  const healthcheck = only(instructions, "HEALTHCHECK");
  const exec = /\bCMD (\[.*\])$/.exec(healthcheck);
  assert.ok(exec, "exec form");
  const command: string[] = JSON.parse(exec[1]!);
  assert.equal(command[0], "/usr/bin/python3");
  const cmd: string[] = JSON.parse(only(instructions, "CMD"));
  const port = parseServeArgs(cmd.slice(1));
  assert.ok(port !== "help");
  const url = `http://127.0.0.1:${port.port}/healthz`;
  assert.ok(command.some((arg) => arg.includes(url)), `checks ${url}`);

  /** Runs the HEALTHCHECK as written, aimed at `base` instead of the image's port. */
  const check = async (base: string) => {
    const args = command.slice(1).map((arg) => arg.replace(`http://127.0.0.1:${port.port}`, base));
    const output = await new Deno.Command(PYTHON, { args, stdout: "null", stderr: "null" }).output();
    return output.code;
  };

  await using ready = await startServer(join(ROOT, "examples", "iris-classifier"));
  assert.equal(await check(ready.url), 0);

  // The real app with no ready replica answers 503.
  const project = await loadProjectConfig(join(ROOT, "examples", "iris-classifier"));
  const logger = new Logger({ sink: () => {} });
  const pools = new Map(project.apis.map((api) => [
    api.name,
    new ApiPool({ api: api.name, queuePerReplica: 1, maxReplicas: 1, predictTimeoutMs: 1000, logger }),
  ]));
  const { app } = createApp({ project, pools, maxBodyBytes: 1024, debug: false, logger });
  const starting = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app.fetch);
  const base = `http://127.0.0.1:${starting.addr.port}`;
  try {
    assert.notEqual(await check(base), 0);
  } finally {
    await starting.shutdown();
  }
  assert.notEqual(await check(base), 0, "nothing listening");
});
