/**
 * Walking a project directory: which entries are staged, which are left out
 * by rule, and which are skipped and reported (docs/configuration.md,
 * "Staging").
 *
 * @module
 */
import { UserError } from "../errors/user_error.ts";
import * as path from "node:path";
import { type IgnoreRules, readIgnoreRules } from "./cortexignore.ts";

/** An entry of the project that was not staged, for the caller to log. */
export interface SkippedEntry {
  /** Path relative to the project root, `/`-separated. */
  readonly path: string;
  /**
   * Why it was skipped: a symlink whose target lies outside the project
   * (never followed), a device file, FIFO or socket (never opened), or a
   * symlink that cannot be resolved (missing target or a loop of links).
   */
  readonly reason:
    | "symlink-outside-project"
    | "special-file"
    | "broken-symlink";
}

/** Staging failed; `path` names the offending file or directory when there is one. */
export class StagingError extends UserError {
  /** `PROJECT_NOT_FOUND` when the project root is missing or not a directory. */
  override readonly code: "STAGING_FAILED" | "PROJECT_NOT_FOUND";
  /** The path concerned, when the failure is about one path. */
  readonly path: string | undefined;

  /**
   * @param code What kind of failure.
   * @param message What happened, the path, and the fix.
   * @param path The path concerned, if any.
   * @param options `cause`, the underlying error.
   */
  constructor(
    code: "STAGING_FAILED" | "PROJECT_NOT_FOUND",
    message: string,
    path?: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "StagingError";
    this.code = code;
    this.path = path;
  }
}

/**
 * The exclusion rule of staging: `true` when an entry with this name is left
 * out of the staged tree. Left out are every file or directory whose name
 * starts with `.` (`.git`, `.venv`, `.env` ...), files named `cortex.yaml` at
 * any depth, and `*.pyc`, `*.pyo`, `*.pyd` files. `__pycache__` directories
 * hold only such bytecode files, so they are left out whole rather than
 * staged empty.
 *
 * @param name The entry's base name.
 * @param isDirectory Whether the entry (for a symlink: its target) is a directory.
 *
 * @example
 * ```ts
 * isExcluded(".env", false); // true
 * isExcluded("model.pyc", false); // true
 * isExcluded("src", true); // false
 * ```
 */
export function isExcluded(name: string, isDirectory: boolean): boolean {
  if (name.startsWith(".")) return true;
  if (isDirectory) return name === "__pycache__";
  return name === "cortex.yaml" || /\.py[cod]$/.test(name);
}

/** A regular file to stage, with the stat values its hash depends on. */
export interface ProjectFile {
  /** Path in the staged tree, relative, `/`-separated. */
  readonly path: string;
  /** Absolute path to read the content from (the target, for a symlink). */
  readonly source: string;
  readonly executable: boolean;
  readonly size: number;
  readonly mtimeMs: number;
  readonly ino: number;
}

/** What a walk found: directories and files to stage, entries skipped. */
export interface ProjectTree {
  /** Relative paths of directories, parents before children. */
  readonly dirs: readonly string[];
  readonly files: readonly ProjectFile[];
  readonly skipped: readonly SkippedEntry[];
}

interface _Walk {
  readonly root: string;
  readonly dirs: string[];
  readonly files: ProjectFile[];
  readonly skipped: SkippedEntry[];
  /** Real paths of the directories being walked, to detect symlink cycles. */
  readonly ancestors: Set<string>;
  /** The project's `.cortexignore`. */
  readonly rules: IgnoreRules;
}

/**
 * Lists what would be staged from the project at `root`, less what its
 * `.cortexignore` leaves out (./cortexignore.ts). Symlinks whose
 * target lies inside the project are materialised (their target's content
 * appears under the link's name); FIFOs, sockets and devices are only
 * `lstat`ed, never opened.
 *
 * @param root The project root; must be a real path (no symlink components).
 * @throws {StagingError} `STAGING_FAILED` on an unreadable entry or a
 * symlink cycle.
 */
export async function walkProject(root: string): Promise<ProjectTree> {
  const walk: _Walk = {
    root,
    dirs: [],
    files: [],
    skipped: [],
    ancestors: new Set([root]),
    rules: await _fs(".cortexignore", () => readIgnoreRules(root)),
  };
  await _walkDir(walk, root, "");
  return { dirs: walk.dirs, files: walk.files, skipped: walk.skipped };
}

async function _walkDir(walk: _Walk, dir: string, rel: string): Promise<void> {
  const names = await _fs(rel || ".", async () => {
    const found: string[] = [];
    for await (const entry of Deno.readDir(dir)) found.push(entry.name);
    return found.sort();
  });
  for (const name of names) {
    if (name.startsWith(".")) continue;
    const childRel = rel === "" ? name : `${rel}/${name}`;
    const child = path.join(dir, name);
    const info = await _fs(childRel, () => Deno.lstat(child));
    if (info.isSymlink) {
      await _visitSymlink(walk, child, childRel, name);
    } else {
      await _visitEntry(walk, child, childRel, name, info);
    }
  }
}

/** Visits a non-symlink entry, or a symlink's resolved target at `real`. */
async function _visitEntry(
  walk: _Walk,
  real: string,
  rel: string,
  name: string,
  info: Deno.FileInfo,
): Promise<void> {
  if (isExcluded(name, info.isDirectory) || walk.rules.ignores(rel, info.isDirectory)) return;
  if (info.isDirectory) {
    walk.dirs.push(rel);
    walk.ancestors.add(real);
    await _walkDir(walk, real, rel);
    walk.ancestors.delete(real);
  } else if (info.isFile) {
    walk.files.push({
      path: rel,
      source: real,
      executable: ((info.mode ?? 0) & 0o111) !== 0,
      size: info.size,
      mtimeMs: info.mtime?.getTime() ?? 0,
      ino: info.ino ?? 0,
    });
  } else {
    walk.skipped.push({ path: rel, reason: "special-file" });
  }
}

async function _visitSymlink(
  walk: _Walk,
  link: string,
  rel: string,
  name: string,
): Promise<void> {
  const target = await _resolve(link, rel);
  if (target === undefined) {
    if (!isExcluded(name, false)) {
      walk.skipped.push({ path: rel, reason: "broken-symlink" });
    }
    return;
  }
  // stat, not open: the target may be a FIFO.
  const info = await _fs(rel, () => Deno.stat(target));
  if (isExcluded(name, info.isDirectory)) return;
  if (!_isInside(walk.root, target)) {
    walk.skipped.push({ path: rel, reason: "symlink-outside-project" });
    return;
  }
  if (info.isDirectory && walk.ancestors.has(target)) {
    throw new StagingError(
      "STAGING_FAILED",
      `Symlink cycle in the project: "${rel}" points to "${target}", ` +
        "which contains the link: remove the link or point it elsewhere",
      rel,
    );
  }
  await _visitEntry(walk, target, rel, name, info);
}

/** The link's real target, or `undefined` when it is missing or loops. */
async function _resolve(
  link: string,
  rel: string,
): Promise<string | undefined> {
  try {
    return await Deno.realPath(link);
  } catch (error) {
    if (
      error instanceof Deno.errors.NotFound ||
      error instanceof Deno.errors.FilesystemLoop ||
      error instanceof Deno.errors.NotADirectory
    ) {
      return undefined;
    }
    throw _fsError(rel, error);
  }
}

function _isInside(root: string, target: string): boolean {
  const relative = path.relative(root, target);
  return relative === "" ||
    (relative !== ".." && !relative.startsWith(`..${path.sep}`) &&
      !path.isAbsolute(relative));
}

async function _fs<T>(rel: string, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (error) {
    throw _fsError(rel, error);
  }
}

function _fsError(rel: string, error: unknown): StagingError {
  const detail = error instanceof Error ? error.message : String(error);
  return new StagingError(
    "STAGING_FAILED",
    `Cannot read "${rel}" in the project: ${detail}: ` +
      "make it readable by the server's user, or remove it",
    rel,
    { cause: error },
  );
}
