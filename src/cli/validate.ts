/**
 * `cortex-serve validate [DIR]`: checks a project without serving it - the
 * config, what staging would do (a dry run: nothing is copied), the Python
 * interpreter, and for each API an import + signature check + `init()` in a
 * throwaway worker. Lists every problem found; exits 1 if there is any.
 */
import { relative, resolve } from "node:path";
import { loadProjectConfig } from "../config/load.ts";
import { ConfigError } from "../config/errors.ts";
import type { ResolvedApi, ResolvedProject } from "../config/types.ts";
import {
  checkInterpreter,
  chooseInterpreter,
  type Interpreter,
  InterpreterError,
} from "../python/interpreter.ts";
import { preparePythonEnvironment, type PythonEnvironment } from "../python/environment.ts";
import { PythonEnvError } from "../python/environment_error.ts";
import { Logger } from "../log/logger.ts";
import { defaultStateDir, ensureStateDir } from "../project/state_dir.ts";
import { apiInitMessage, apiWorkerEnv, modelDir } from "../python/worker_launch.ts";
import { DIALECT_NAMES } from "../config/dialect.ts";
import { InitFailedError, WorkerProcess } from "../python/worker_process.ts";
import { writeWorker } from "../python/worker_source.ts";
import { StagingError, walkProject } from "../project/walk.ts";
import { parseStrict } from "./client.ts";
import { parseDuration, UsageError } from "./units.ts";

/** `cortex-serve validate --help`. */
export const VALIDATE_HELP = `Usage: cortex-serve validate [DIR] [options]

Checks the Cortex project in DIR (default: the current directory) without
serving it: cortex.yaml, the files staging would copy (nothing is copied), the
Python interpreter (and the requirements.txt environment, built and cached as
serve does), and for each API that its inference file imports, has the
signatures the config's dialect asks for (init/predict, or PythonPredictor)
and that its init succeeds, in a throwaway worker. Names the dialect found;
lists every problem with its file and line; exits 1 if any.

Options:
  --python PATH          Python interpreter (default: $CORTEX_PYTHON, else python3)
  --state-dir DIR        where a requirements.txt environment is built and cached,
                         shared with serve (default as for serve)
  --init-timeout DUR     deadline of import + init() per API (default 300s)
  --no-requirements      skip requirements.txt: check with the interpreter's packages
  -v, --verbose          also print the worker's output and full tracebacks
  -h, --help             this help

Examples:
  cortex-serve validate examples/iris-classifier
  cortex-serve validate . --python /usr/bin/python3
`;

/** What `validate` was asked to do. */
export interface ValidateOptions {
  readonly projectDir: string;
  readonly python: string | undefined;
  readonly stateDir: string | undefined;
  readonly initTimeoutMs: number;
  readonly verbose: boolean;
  readonly noRequirements: boolean;
}

const FLAGS = {
  "no-requirements": { type: "boolean" },
  python: { type: "string" },
  "state-dir": { type: "string" },
  "init-timeout": { type: "string" },
  verbose: { type: "boolean", short: "v" },
  help: { type: "boolean", short: "h" },
} as const;

const MAX_FRAME_BYTES = 64 * 1024 * 1024;
const KILL_GRACE_MS = 2000;

/** Parsed `validate` arguments, or `"help"`. */
export function parseValidateArgs(args: readonly string[]): ValidateOptions | "help" {
  const { values, positionals } = parseStrict("validate", args, FLAGS);
  if (values.help) return "help";
  if (positionals.length > 1) {
    throw new UsageError(
      `validate takes one project directory, got ${positionals.length}: ${positionals.join(" ")}`,
    );
  }
  return {
    projectDir: resolve(positionals[0] ?? "."),
    python: values.python,
    stateDir: values["state-dir"] === undefined ? undefined : resolve(values["state-dir"]),
    initTimeoutMs: parseDuration("init-timeout", values["init-timeout"] ?? "300"),
    verbose: values.verbose ?? false,
    noRequirements: values["no-requirements"] ?? false,
  };
}

/** Runs every check; prints problems on stderr and a summary; returns the exit code. */
export async function validate(options: ValidateOptions): Promise<number> {
  const problems: string[] = [];
  const project = await loadProjectConfig(options.projectDir).catch((error) => {
    if (!(error instanceof ConfigError)) throw error;
    problems.push(...error.message.split("\n"));
    return undefined;
  });
  if (project !== undefined) {
    for (const field of project.ignored) {
      const where = `${relative(options.projectDir, project.configPath)}:${field.line}:${field.column}`;
      console.error(
        `note: ${where}: ${field.resource ?? ""}: ${field.path}: accepted and ignored: ${field.reason}`,
      );
    }
  }
  const files = await stagingDryRun(options.projectDir, problems);
  const python = await checkInterpreter(chooseInterpreter(options.python, Deno.env.toObject())).catch(
    (error) => {
      if (!(error instanceof InterpreterError)) throw error;
      problems.push(error.message);
      return undefined;
    },
  );
  for (const warning of python?.warnings ?? []) console.error(`warning: ${warning}`);
  const stateDir = await ensureStateDir(options.stateDir ?? defaultStateDir());
  const env = project === undefined || python === undefined
    ? undefined
    : await projectEnvironment(project.root, python, stateDir, options.noRequirements).catch((error) => {
      if (!(error instanceof PythonEnvError)) throw error;
      problems.push(error.message);
      return undefined;
    });
  if (project !== undefined && env !== undefined) {
    const workDir = await Deno.makeTempDir({ prefix: "cortex-serve-validate-" });
    try {
      const workerPath = await writeWorker(workDir);
      for (const api of project.apis) {
        const problem = await checkApi(project, api, {
          ...options,
          python: env.python,
          serverEnv: env.serverEnv,
          workerPath,
          modelDir: modelDir(stateDir),
        });
        if (problem !== undefined) problems.push(problem);
      }
    } finally {
      await Deno.remove(workDir, { recursive: true }).catch(() => {});
    }
  }
  for (const problem of problems) console.error(problem);
  if (problems.length > 0) {
    if (project !== undefined) {
      console.error(`note: cortex.yaml is read as ${DIALECT_NAMES[project.dialect]}`);
    }
    if (env === undefined) {
      console.error("note: the Python checks of each api run once the problems above are fixed");
    }
    const count = problems.length;
    console.error(`error: ${count} problem${count === 1 ? "" : "s"} in ${options.projectDir}`);
    return 1;
  }
  const splitters = (project!.splitters ?? []).map((s) =>
    `; splitter ${s.name} (${s.endpoint}): ` +
    s.apis.map((t) => `${t.api} ${t.weight}%${t.shadow === true ? " mirrored" : ""}`).join(", ")
  ).join("");
  const apis = project!.apis.map(describeApi).join(", ") + splitters;
  console.log(
    `ok: deployment ${project!.deployment.name}: ${apis}; ${files} files would be staged; Python ${
      python!.version
    }; dialect: ${DIALECT_NAMES[project!.dialect]}`,
  );
  return 0;
}

/** `classifier (/iris/classifier)`, with its batching when on: `..., batches of up to 8 within 5 ms)`. */
function describeApi(api: ResolvedApi): string {
  const batching = api.batching === undefined
    ? ""
    : `, batches of up to ${api.batching.maxBatchSize} within ${api.batching.batchIntervalMs} ms`;
  return `${api.name} (${api.endpoint}${batching})`;
}

/**
 * The interpreter the project's workers would run: with a requirements.txt,
 * the cached virtual environment `serve` uses (built now if missing, into
 * the same state directory, so the next `serve` reuses it).
 */
async function projectEnvironment(
  root: string,
  interpreter: Interpreter,
  stateDir: string,
  skipRequirements: boolean,
): Promise<PythonEnvironment> {
  return await preparePythonEnvironment(root, {
    interpreter,
    stateDir,
    skipRequirements,
    runDependenciesSh: false,
    serverEnv: Deno.env.toObject(),
    logger: new Logger({ level: "warn" }),
  });
}

/** Walks the project as staging would; returns the file count, pushing problems and notes. */
async function stagingDryRun(dir: string, problems: string[]): Promise<number> {
  try {
    const tree = await walkProject(await Deno.realPath(dir));
    for (const entry of tree.skipped) {
      console.error(`warning: ${entry.path}: not staged (${entry.reason.replaceAll("-", " ")})`);
    }
    return tree.files.length;
  } catch (error) {
    if (error instanceof StagingError) problems.push(error.message);
    else if (!(error instanceof Deno.errors.NotFound)) throw error; // reported by the config check
    return 0;
  }
}

interface CheckOptions {
  readonly python: string;
  readonly serverEnv: Readonly<Record<string, string>>;
  readonly workerPath: string;
  readonly modelDir: string;
  readonly initTimeoutMs: number;
  readonly verbose: boolean;
}

/** Starts one throwaway worker for `api`, runs init, stops it; returns a problem line or undefined. */
async function checkApi(
  project: ResolvedProject,
  api: ResolvedApi,
  options: CheckOptions,
): Promise<string | undefined> {
  const root = project.root;
  const output: string[] = [];
  const worker = WorkerProcess.spawn({
    python: options.python,
    workerPath: options.workerPath,
    cwd: root,
    env: { ...apiWorkerEnv(options.serverEnv, api, { dir: root, index: 0 }), PYTHONDONTWRITEBYTECODE: "1" },
    maxFrameBytes: MAX_FRAME_BYTES,
    onLog: (line) => output.push(line),
  });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(new Error(`init did not finish within ${options.initTimeoutMs / 1000} s (--init-timeout)`)),
      options.initTimeoutMs,
    );
  });
  try {
    await Promise.race([
      worker.init(apiInitMessage(project, api, root, options.modelDir)),
      timeout,
    ]);
    if (options.verbose) output.forEach((line) => console.error(`${api.name}: ${line}`));
    return undefined;
  } catch (error) {
    if (options.verbose) output.forEach((line) => console.error(`${api.name}: ${line}`));
    if (error instanceof InitFailedError) {
      const where = sourceLocation(root, error.traceback) ?? api.inference;
      return `${where}: api "${api.name}": ${error.phase} failed: ${error.message}`;
    }
    const reason = error instanceof Error ? error.message : String(error);
    const last = output.at(-1);
    return `${api.inference}: api "${api.name}": ${reason}${last === undefined ? "" : `: ${last}`}`;
  } finally {
    clearTimeout(timer);
    await worker.shutdown(KILL_GRACE_MS);
  }
}

/**
 * The deepest `File "...", line N` of a traceback that lies inside the
 * project, as `path:line` relative to the root.
 */
export function sourceLocation(root: string, traceback: string): string | undefined {
  let found: string | undefined;
  for (const match of traceback.matchAll(/File "([^"]+)", line (\d+)/g)) {
    const rel = relative(root, match[1]!);
    if (rel.startsWith("..") || rel.startsWith("/")) continue;
    found = `${rel}:${match[2]}`;
  }
  return found;
}
