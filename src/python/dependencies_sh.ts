/**
 * Cortex's `dependencies.sh`: a shell script at the project root that
 * installed system packages into the API's image. On a VM cortex-serve does
 * not install system packages by itself; it runs the script only when the
 * operator asks for it with `--run-dependencies-sh`.
 *
 * @module
 */
import * as path from "node:path";
import type { Logger } from "../log/logger.ts";
import { outputTail, PythonEnvError } from "./environment_error.ts";
import { runLogged } from "./run_logged.ts";

/** The script's name at the project root. */
export const DEPENDENCIES_SH = "dependencies.sh";

/** Options of {@linkcode handleDependenciesSh}. */
export interface DependenciesShOptions {
  /** `--run-dependencies-sh` was given. */
  readonly run: boolean;
  /** The environment the script runs with (the server's). */
  readonly env: Readonly<Record<string, string>>;
  readonly logger: Logger;
  readonly signal?: AbortSignal;
}

/**
 * When the staged project has a `dependencies.sh`: runs it with `bash -e` in
 * the staged directory if `options.run`, else logs a warning saying how to
 * run it. Returns whether it ran.
 *
 * @param stagedDir The staged project.
 * @throws {PythonEnvError} `DEPENDENCIES_SH_FAILED` when the script fails.
 */
export async function handleDependenciesSh(
  stagedDir: string,
  options: DependenciesShOptions,
): Promise<boolean> {
  const script = path.join(stagedDir, DEPENDENCIES_SH);
  try {
    if (!(await Deno.stat(script)).isFile) return false;
  } catch {
    return false;
  }
  const { logger } = options;
  if (!options.run) {
    logger.warn(
      "the project has a dependencies.sh, which cortex-serve does not run by default: install the system packages it needs yourself, or pass --run-dependencies-sh to run it at startup as this user",
      { script: DEPENDENCIES_SH },
    );
    return false;
  }
  logger.info("running dependencies.sh (--run-dependencies-sh)", { script });
  let result;
  try {
    result = await runLogged("bash", {
      args: ["-e", script],
      cwd: stagedDir,
      env: options.env,
      logger,
      stream: DEPENDENCIES_SH,
      progress: { message: "still running dependencies.sh", everyMs: 15_000 },
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    throw new PythonEnvError(
      "DEPENDENCIES_SH_FAILED",
      "Cannot run dependencies.sh: bash is not installed: install bash or leave out --run-dependencies-sh",
      { cause: error },
    );
  }
  if (!result.success) {
    throw new PythonEnvError(
      "DEPENDENCIES_SH_FAILED",
      `The project's dependencies.sh failed (exit ${result.signal ?? `code ${result.code}`}): ` +
        "fix the script, or install its packages yourself and leave out --run-dependencies-sh; " +
        `its last lines:${outputTail(result.lastLines)}`,
    );
  }
  logger.info("dependencies.sh done", { seconds: Math.round(result.elapsedMs / 100) / 10 });
  return true;
}
