/**
 * Where cortex-serve keeps its state: staged projects, virtual environments,
 * the worker program.
 *
 * @module
 */
import * as path from "node:path";

/** Environment variables consulted by {@linkcode defaultStateDir}. */
type Env = Readonly<Record<string, string | undefined>>;

const APP_NAME = "cortex-serve";

/**
 * The default state directory, from the first of these that is set:
 *
 * 1. `$CORTEX_SERVE_STATE_DIR` (resolved against the working directory),
 * 2. `$STATE_DIRECTORY`, set by systemd for `StateDirectory=` (the first entry
 *    when it holds several, colon-separated),
 * 3. `$XDG_STATE_HOME/cortex-serve` (ignored when relative, as the XDG Base
 *    Directory specification requires),
 * 4. `$HOME/.local/state/cortex-serve`.
 *
 * Empty values count as unset.
 *
 * @param env The environment to read; defaults to the process environment.
 * @returns An absolute path.
 * @throws {Error} When none of the variables gives a usable directory.
 *
 * @example
 * ```ts
 * defaultStateDir({ HOME: "/home/ada" }); // "/home/ada/.local/state/cortex-serve"
 * ```
 */
export function defaultStateDir(env: Env = Deno.env.toObject()): string {
  const explicit = _nonEmpty(env["CORTEX_SERVE_STATE_DIR"]);
  if (explicit !== undefined) return path.resolve(explicit);

  const systemd = _nonEmpty(env["STATE_DIRECTORY"]?.split(":")[0]);
  if (systemd !== undefined) return path.resolve(systemd);

  const xdg = _nonEmpty(env["XDG_STATE_HOME"]);
  if (xdg !== undefined && path.isAbsolute(xdg)) {
    return path.join(xdg, APP_NAME);
  }

  const home = _nonEmpty(env["HOME"]);
  if (home !== undefined && path.isAbsolute(home)) {
    return path.join(home, ".local", "state", APP_NAME);
  }

  throw new Error(
    "Cannot determine a state directory: none of CORTEX_SERVE_STATE_DIR, " +
      "STATE_DIRECTORY, XDG_STATE_HOME or HOME is set to an absolute path; " +
      "pass --state-dir or set CORTEX_SERVE_STATE_DIR",
  );
}

/**
 * Creates `dir` and any missing parents (like `mkdir -p`) with mode `0o700`,
 * so only the owner can read staged code and models.
 *
 * A directory that already exists keeps its mode: an operator may have chosen
 * it (systemd's `StateDirectoryMode=`); what cortex-serve creates inside it
 * is owner-only anyway.
 *
 * @param dir The state directory, absolute or relative to the working directory.
 * @returns The absolute path of the directory.
 * @throws {Error} When the path exists and is not a directory, or cannot be created.
 */
export async function ensureStateDir(dir: string): Promise<string> {
  const absolute = path.resolve(dir);
  try {
    await Deno.mkdir(absolute, { recursive: true, mode: 0o700 });
  } catch (error) {
    if (await _existsAsNonDirectory(absolute)) {
      throw new Error(
        `State directory "${absolute}" exists but is not a directory: ` +
          "remove it or pass another --state-dir",
        { cause: error },
      );
    }
    throw new Error(
      `Cannot create state directory "${absolute}": ${_message(error)}; ` +
        "pass --state-dir with a writable directory",
      { cause: error },
    );
  }
  return absolute;
}

async function _existsAsNonDirectory(dir: string): Promise<boolean> {
  try {
    return !(await Deno.stat(dir)).isDirectory;
  } catch {
    return false;
  }
}

function _nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === "" ? undefined : value;
}

function _message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
