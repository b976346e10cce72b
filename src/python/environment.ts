/**
 * Preparing the Python environment of one staged project version:
 * `dependencies.sh` when asked for, then the cached virtual environment of
 * `requirements.txt` when the project has one. Called at startup and again
 * on reload, since `requirements.txt` may have changed.
 *
 * @module
 */
import * as path from "node:path";
import type { Logger } from "../log/logger.ts";
import { handleDependenciesSh } from "./dependencies_sh.ts";
import type { Interpreter } from "./interpreter.ts";
import { ensureVenv } from "./venv.ts";
import { pipEnv } from "./worker_env.ts";

/** The requirements file's name at the project root, as in Cortex. */
export const REQUIREMENTS_TXT = "requirements.txt";

/** Options of {@linkcode preparePythonEnvironment}. */
export interface PrepareEnvironmentOptions {
  /** The checked base interpreter (`--python`, `CORTEX_PYTHON` or `python3`). */
  readonly interpreter: Interpreter;
  readonly stateDir: string;
  /** `--run-dependencies-sh` was given. */
  readonly runDependenciesSh: boolean;
  /** The server's environment: given to dependencies.sh unchanged, to pip filtered (see `pipEnv`). */
  readonly serverEnv: Readonly<Record<string, string>>;
  readonly logger: Logger;
  readonly signal?: AbortSignal;
  /** `--no-requirements`: skip requirements.txt and run with the interpreter's packages (logged). */
  readonly skipRequirements?: boolean;
}

/** What workers of one project version run with. */
export interface PythonEnvironment {
  /** The interpreter workers run: the venv's when there is a requirements.txt, else the base one. */
  readonly python: string;
  readonly version: string;
  /** The virtual environment's directory, if any. */
  readonly venv: string | undefined;
  /** True when the virtual environment came from the cache. */
  readonly reused: boolean;
  /**
   * The server's environment as workers should inherit it: with a venv, its
   * `bin/` first on `PATH`, so console scripts that requirements installed
   * are found as they were in the Cortex image.
   */
  readonly serverEnv: Readonly<Record<string, string>>;
}

/**
 * Prepares the environment for the project staged at `stagedDir`.
 *
 * @throws {PythonEnvError} When dependencies.sh, venv creation or pip fails.
 */
export async function preparePythonEnvironment(
  stagedDir: string,
  options: PrepareEnvironmentOptions,
): Promise<PythonEnvironment> {
  const { logger, interpreter, serverEnv } = options;
  const signal = options.signal === undefined ? {} : { signal: options.signal };
  await handleDependenciesSh(stagedDir, {
    run: options.runDependenciesSh,
    env: serverEnv,
    logger,
    ...signal,
  });

  const requirements = path.join(stagedDir, REQUIREMENTS_TXT);
  const present = await _isFile(requirements);
  if (present && options.skipRequirements) {
    logger.info("requirements.txt skipped (--no-requirements): workers use the interpreter's packages", {
      python: interpreter.executable,
    });
  }
  if (!present || options.skipRequirements) {
    return {
      python: interpreter.executable,
      version: interpreter.version,
      venv: undefined,
      reused: false,
      serverEnv,
    };
  }
  const started = Date.now();
  const venv = await ensureVenv({
    interpreter,
    requirements,
    cwd: stagedDir,
    stateDir: options.stateDir,
    env: pipEnv(serverEnv),
    logger,
    ...signal,
  });
  logger.info(venv.reused ? "python environment reused" : "python environment built", {
    dir: venv.dir,
    seconds: Math.round((Date.now() - started) / 100) / 10,
  });
  const bin = path.join(venv.dir, "bin");
  const pathVar = serverEnv["PATH"];
  return {
    python: venv.interpreter.executable,
    version: venv.interpreter.version,
    venv: venv.dir,
    reused: venv.reused,
    serverEnv: { ...serverEnv, PATH: pathVar === undefined || pathVar === "" ? bin : `${bin}:${pathVar}` },
  };
}

async function _isFile(file: string): Promise<boolean> {
  try {
    return (await Deno.stat(file)).isFile;
  } catch {
    return false;
  }
}
