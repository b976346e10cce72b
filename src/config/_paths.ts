/**
 * Paths inside the project: the syntax check done while validating, and the
 * filesystem check done afterwards (exists, right type, stays inside the
 * project once symbolic links are resolved).
 */

import { posix } from "node:path";
import * as path from "node:path";
import type { ConfigIssue } from "./errors.ts";
import type { Position } from "./_yaml_nodes.ts";

/** The outcome of {@linkcode normalizeProjectPath}. */
export type NormalizedPath =
  | { readonly ok: true; readonly path: string }
  | { readonly ok: false; readonly problem: string; readonly fix: string };

/** A path from the config that must exist in the project. */
export interface PathCheck {
  readonly resource: string | undefined;
  /** Key path, e.g. `python.inference`. */
  readonly key: string;
  readonly pos: Position;
  /** Normalized, relative to the project root; absolute when `absolute` is set. */
  readonly path: string;
  readonly want: "file" | "directory" | "any";
  /** An absolute path that may lie outside the project (`predictor.model`). */
  readonly absolute?: boolean;
}

/**
 * Checks that `raw` is a relative path that stays inside the project and is
 * copied into staging, and normalizes it (POSIX separators, no `./`, no
 * trailing slash).
 *
 * @example
 * ```ts
 * normalizeProjectPath("./src//inference.py"); // { ok: true, path: "src/inference.py" }
 * ```
 */
export function normalizeProjectPath(raw: string): NormalizedPath {
  const example = 'e.g. "src/inference.py"';
  if (raw.trim() === "") {
    return { ok: false, problem: "must not be empty", fix: `write a path, ${example}` };
  }
  if (raw.includes("\0")) {
    return { ok: false, problem: "must not contain a NUL character", fix: "remove it" };
  }
  if (raw.startsWith("/") || raw.startsWith("\\") || /^[A-Za-z]:/.test(raw)) {
    return {
      ok: false,
      problem: `must be relative to the project root, got the absolute path "${raw}"`,
      fix: `write the path from the directory holding cortex.yaml, ${example}`,
    };
  }
  if (raw.includes("\\")) {
    return {
      ok: false,
      problem: `must use forward slashes, got "${raw}"`,
      fix: `write "${raw.replaceAll("\\", "/")}"`,
    };
  }
  if (raw.split("/").includes("..")) {
    return {
      ok: false,
      problem: `must not contain a ".." segment, got "${raw}"`,
      fix: "move the file into the project directory and give its path from the project root",
    };
  }
  const normalized = posix.normalize(raw).replace(/\/+$/, "");
  const hidden = normalized.split("/").find((s) => s.startsWith(".") && s !== ".");
  if (hidden !== undefined) {
    return {
      ok: false,
      problem: `"${hidden}" starts with ".", and such files and directories are not staged`,
      fix: `rename "${hidden}" so that it does not start with "."`,
    };
  }
  return { ok: true, path: normalized === "" ? "." : normalized };
}

/**
 * Checks each path on disk, relative to `root`.
 *
 * @param root absolute project root
 * @param file the config file name for the issues
 * @param checks what to check
 * @returns an issue per failed check
 */
export async function checkProjectPaths(
  root: string,
  file: string,
  checks: readonly PathCheck[],
): Promise<ConfigIssue[]> {
  if (checks.length === 0) return [];
  const realRoot = await Deno.realPath(root);
  const issues: ConfigIssue[] = [];
  let pythonFiles: Promise<string[]> | undefined;
  for (const check of checks) {
    const problem = await _checkOne(realRoot, check);
    if (problem === undefined) continue;
    let fix = problem.fix;
    if (problem.missing && check.want === "file" && check.path.endsWith(".py")) {
      pythonFiles ??= findPythonFiles(realRoot, 2);
      const found = await pythonFiles;
      if (found.length === 1 && found[0] !== check.path) fix = `did you mean "${found[0]}"?`;
    }
    issues.push({
      file,
      resource: check.resource,
      path: check.key,
      line: check.pos.line,
      column: check.pos.column,
      problem: problem.problem,
      fix,
    });
  }
  return issues;
}

async function _checkOne(
  realRoot: string,
  check: PathCheck,
): Promise<{ problem: string; fix: string; missing: boolean } | undefined> {
  const shown = `"${check.path}"`;
  if (check.absolute) return await _checkAbsolute(check);
  let real: string;
  try {
    real = await Deno.realPath(path.join(realRoot, check.path));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) {
      return {
        problem: `${check.want === "any" ? "path" : check.want} ${shown} does not exist in the project`,
        fix: `create it or correct the path; it is relative to the directory holding cortex.yaml`,
        missing: true,
      };
    }
    return {
      problem: `${shown} cannot be read: ${e instanceof Error ? e.message : String(e)}`,
      fix: "check the file permissions",
      missing: false,
    };
  }
  const inside = path.relative(realRoot, real);
  if (inside === ".." || inside.startsWith(`..${path.sep}`) || path.isAbsolute(inside)) {
    return {
      problem: `${shown} leads outside the project through a symbolic link`,
      fix: "copy the target into the project instead of linking to it",
      missing: false,
    };
  }
  const info = await Deno.stat(real);
  if (check.want === "file" && !info.isFile) {
    return { problem: `${shown} is not a regular file`, fix: "give the path of a .py file", missing: false };
  }
  if (check.want === "directory" && !info.isDirectory) {
    return { problem: `${shown} is not a directory`, fix: "give the path of a directory", missing: false };
  }
  return undefined;
}

async function _checkAbsolute(
  check: PathCheck,
): Promise<{ problem: string; fix: string; missing: boolean } | undefined> {
  try {
    await Deno.stat(check.path);
    return undefined;
  } catch (e) {
    const missing = e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory;
    return {
      problem: missing
        ? `"${check.path}" does not exist on this machine`
        : `"${check.path}" cannot be read: ${e instanceof Error ? e.message : String(e)}`,
      fix: missing ? "correct the path, or copy the model into the project" : "check the file permissions",
      missing: false,
    };
  }
}

/**
 * Lists up to `limit` `.py` files under `root` (relative, POSIX), skipping
 * hidden entries, `__pycache__` and symbolic links; gives up after scanning
 * a few thousand entries.
 */
export async function findPythonFiles(root: string, limit: number): Promise<string[]> {
  const found: string[] = [];
  const pending = [""];
  let budget = 5000;
  while (pending.length > 0) {
    const dir = pending.shift() ?? "";
    try {
      for await (const entry of Deno.readDir(path.join(root, dir))) {
        if (--budget < 0) return [];
        if (entry.name.startsWith(".") || entry.name === "__pycache__") continue;
        const rel = dir === "" ? entry.name : `${dir}/${entry.name}`;
        if (entry.isDirectory) pending.push(rel);
        else if (entry.isFile && entry.name.endsWith(".py")) {
          found.push(rel);
          if (found.length >= limit) return found;
        }
      }
    } catch {
      // An unreadable directory only means fewer suggestions.
    }
  }
  return found;
}
