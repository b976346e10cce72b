/**
 * Staging (docs/configuration.md, "Staging"): the project is copied into a
 * content-keyed directory under the state directory before any Python runs,
 * so the running API never sees half-edited files and an unchanged project
 * restarts without copying.
 *
 * Layout: `<stateDir>/projects/<sha256 of the real root path, 12 hex>/`
 * holds `stat-cache.json` and one `<content key>/` tree per staged version.
 *
 * @module
 */
import * as path from "node:path";
import { contentKey, hashTree, loadStatCache, saveStatCache, sha256Hex, type StatCache } from "./hash.ts";
import { type ProjectTree, type SkippedEntry, StagingError, walkProject } from "./walk.ts";

export { isExcluded, StagingError } from "./walk.ts";
export type { SkippedEntry } from "./walk.ts";

/** A staged copy of a project, ready to be the workers' working directory. */
export interface StagedProject {
  /** Absolute path of the staged tree. */
  readonly dir: string;
  /** Content key (hex sha256), also the tree's directory name. */
  readonly key: string;
  /** `true` when an identical staged tree already existed and nothing was copied. */
  readonly reused: boolean;
  /** Number of files in the tree. */
  readonly files: number;
  /** Total size of those files. */
  readonly bytes: number;
  /** Entries not staged that the caller should log. */
  readonly skipped: readonly SkippedEntry[];
}

/** Options of {@linkcode stageProject}. */
export interface StageOptions {
  /** The state directory (see `defaultStateDir`); created if missing. */
  readonly stateDir: string;
  /** How many staged trees to keep per project root (default 3, at least 1). */
  readonly keep?: number;
}

type _Attempt =
  | { readonly staged: StagedProject; readonly cache: StatCache }
  | { readonly changed: string };

const _ATTEMPTS = 3;
const _KEY_NAME = /^[0-9a-f]{64}$/;
const _STALE_TEMP_MS = 24 * 60 * 60 * 1000;

/**
 * Copies the project at `root` into
 * `<stateDir>/projects/<hash of root path, 12 hex>/<content key>/`, leaving
 * out what {@linkcode isExcluded} names, materialising symlinks that point
 * inside the project and skipping (and reporting) the rest.
 *
 * The tree is built in a temporary sibling and renamed into place, so a
 * half-built tree is never used and concurrent servers do not corrupt each
 * other. Staged directories are `0o700`, files `0o700` when executable and
 * `0o600` otherwise. Afterwards only the newest `keep` trees are kept.
 *
 * A staged tree is never modified after it is published; user code that
 * writes into its working directory changes it for later reuse too.
 *
 * @param root The project root (the directory holding `cortex.yaml`).
 * @param options Where to stage and how many trees to keep.
 * @throws {StagingError} `PROJECT_NOT_FOUND` when `root` is not an existing
 * directory; `STAGING_FAILED` when a file cannot be read or copied.
 * @throws {RangeError} When `keep` is not a positive integer.
 *
 * @example
 * ```ts
 * const staged = await stageProject("./iris-classifier", { stateDir });
 * for (const entry of staged.skipped) log.warn(`skipped ${entry.path}: ${entry.reason}`);
 * ```
 */
export async function stageProject(
  root: string,
  options: StageOptions,
): Promise<StagedProject> {
  const keep = options.keep ?? 3;
  if (!Number.isInteger(keep) || keep < 1) {
    throw new RangeError(
      `Cannot keep ${keep} staged trees: keep must be an integer of at least 1`,
    );
  }
  const realRoot = await _projectRoot(root);
  const projectDir = path.join(
    path.resolve(options.stateDir),
    "projects",
    sha256Hex(realRoot).slice(0, 12),
  );
  await _fs(
    projectDir,
    () => Deno.mkdir(projectDir, { recursive: true, mode: 0o700 }),
  );
  const cacheFile = path.join(projectDir, "stat-cache.json");
  const cache = await loadStatCache(cacheFile);
  for (let attempt = 1;; attempt++) {
    const result = await _attempt(realRoot, projectDir, cache);
    if ("staged" in result) {
      await saveStatCache(cacheFile, result.cache);
      await _prune(projectDir, result.staged.key, keep);
      return result.staged;
    }
    if (attempt >= _ATTEMPTS) {
      throw new StagingError(
        "STAGING_FAILED",
        `Project files kept changing while staging: "${result.changed}": ` +
          "wait until edits are finished, then start again",
        result.changed,
      );
    }
  }
}

/** The real path of the project root, checked to be a directory. */
async function _projectRoot(root: string): Promise<string> {
  const absolute = path.resolve(root);
  let real: string;
  try {
    real = await Deno.realPath(absolute);
  } catch (error) {
    if (
      !(error instanceof Deno.errors.NotFound ||
        error instanceof Deno.errors.NotADirectory)
    ) {
      throw _copyError(absolute, error);
    }
    throw new StagingError(
      "PROJECT_NOT_FOUND",
      `Project directory not found: "${absolute}": ` +
        "pass the directory that holds cortex.yaml",
      absolute,
      { cause: error },
    );
  }
  const info = await _fs(absolute, () => Deno.stat(real));
  if (!info.isDirectory) {
    throw new StagingError(
      "PROJECT_NOT_FOUND",
      `Project path is not a directory: "${absolute}": ` +
        "pass the directory that holds cortex.yaml, not a file in it",
      absolute,
    );
  }
  return real;
}

/** One walk-hash-copy pass; reports a file that changed meanwhile instead of staging it. */
async function _attempt(
  root: string,
  projectDir: string,
  cache: StatCache,
): Promise<_Attempt> {
  const tree = await walkProject(root);
  const hashed = await hashTree(tree, cache);
  if (hashed.changed !== undefined) return { changed: hashed.changed };
  const key = contentKey(tree, hashed.hashes);
  const dir = path.join(projectDir, key);
  const summary = {
    dir,
    key,
    files: tree.files.length,
    bytes: tree.files.reduce((sum, file) => sum + file.size, 0),
    skipped: tree.skipped,
  };
  if (await _isDirectory(dir)) {
    await _touch(dir);
    return { staged: { ...summary, reused: true }, cache: hashed.cache };
  }
  const changed = await _build(tree, dir);
  if (changed !== undefined) return { changed };
  return { staged: { ...summary, reused: false }, cache: hashed.cache };
}

/** Builds the tree in a temporary sibling and renames it to `dir`. */
async function _build(
  tree: ProjectTree,
  dir: string,
): Promise<string | undefined> {
  const temp = `${dir}.tmp-${Deno.pid}-${_random()}`;
  try {
    const changed = await _copyTree(tree, temp);
    if (changed !== undefined) return changed;
    await _publish(temp, dir);
    return undefined;
  } finally {
    // Gone after a successful rename; our half-built or losing copy otherwise.
    await Deno.remove(temp, { recursive: true }).catch(() => {});
  }
}

/**
 * Copies every directory and file of `tree` under `temp`; returns the path
 * of a source that changed since it was hashed, if any.
 */
async function _copyTree(
  tree: ProjectTree,
  temp: string,
): Promise<string | undefined> {
  await _mkdirPrivate(temp);
  for (const dir of tree.dirs) await _mkdirPrivate(path.join(temp, dir));
  for (const file of tree.files) {
    const target = path.join(temp, file.path);
    // A copy, not a hard link: an in-place edit of the source file would
    // otherwise leak into the running API through the shared inode.
    try {
      await Deno.copyFile(file.source, target);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return file.path;
      throw _copyError(file.path, error);
    }
    await _fs(
      target,
      () => Deno.chmod(target, file.executable ? 0o700 : 0o600),
    );
    const after = await Deno.stat(file.source).catch(() => undefined);
    if (
      after === undefined || after.size !== file.size ||
      (after.mtime?.getTime() ?? 0) !== file.mtimeMs ||
      (after.ino ?? 0) !== file.ino
    ) {
      return file.path;
    }
  }
  return undefined;
}

/** Renames `temp` to `dir`; losing the race to an identical tree is fine. */
async function _publish(temp: string, dir: string): Promise<void> {
  try {
    await Deno.rename(temp, dir);
  } catch (error) {
    // Another server published the same content key first: use theirs.
    if (await _isDirectory(dir)) return;
    throw _stateError(dir, error);
  }
}

/**
 * Removes all but the newest `keep` staged trees (by mtime; a reused tree is
 * touched, so it counts as new), never `current`, plus leftovers of
 * interrupted runs. Best effort: failing to prune never fails staging.
 */
async function _prune(
  projectDir: string,
  current: string,
  keep: number,
): Promise<void> {
  const entries = await _listWithMtime(projectDir).catch(() => []);
  const trees = entries
    .filter((e) => e.isDirectory && _KEY_NAME.test(e.name) && e.name !== current)
    .sort((a, b) => b.mtimeMs - a.mtimeMs);
  for (const old of trees.slice(keep - 1)) {
    await _removeTree(path.join(projectDir, old.name));
  }
  const staleBefore = Date.now() - _STALE_TEMP_MS;
  for (const entry of entries) {
    const stale = entry.name.includes(".old-") ||
      (entry.name.includes(".tmp-") && entry.mtimeMs < staleBefore);
    if (stale) {
      await Deno.remove(path.join(projectDir, entry.name), { recursive: true })
        .catch(() => {});
    }
  }
}

/**
 * Renames a tree aside before deleting it, so an interrupted delete never
 * leaves a partial tree under a content-key name that would be reused.
 */
async function _removeTree(dir: string): Promise<void> {
  const aside = `${dir}.old-${Deno.pid}-${_random()}`;
  try {
    await Deno.rename(dir, aside);
  } catch {
    return;
  }
  await Deno.remove(aside, { recursive: true }).catch(() => {});
}

async function _listWithMtime(
  dir: string,
): Promise<{ name: string; isDirectory: boolean; mtimeMs: number }[]> {
  const found = [];
  for await (const entry of Deno.readDir(dir)) {
    const info = await Deno.lstat(path.join(dir, entry.name)).catch(() => undefined);
    if (info === undefined) continue;
    found.push({
      name: entry.name,
      isDirectory: info.isDirectory,
      mtimeMs: info.mtime?.getTime() ?? 0,
    });
  }
  return found;
}

async function _mkdirPrivate(dir: string): Promise<void> {
  await _fs(dir, () => Deno.mkdir(dir, { mode: 0o700 }));
  // mkdir's mode is filtered by the umask; make sure the owner has access.
  await _fs(dir, () => Deno.chmod(dir, 0o700));
}

async function _isDirectory(dir: string): Promise<boolean> {
  try {
    return (await Deno.lstat(dir)).isDirectory;
  } catch {
    return false;
  }
}

async function _touch(dir: string): Promise<void> {
  const now = new Date();
  await Deno.utime(dir, now, now).catch(() => {});
}

async function _fs<T>(target: string, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (error) {
    throw _stateError(target, error);
  }
}

function _stateError(target: string, error: unknown): StagingError {
  return new StagingError(
    "STAGING_FAILED",
    `Cannot stage the project at "${target}": ${_message(error)}: ` +
      "check free space and permissions of the state directory",
    target,
    { cause: error },
  );
}

function _copyError(rel: string, error: unknown): StagingError {
  return new StagingError(
    "STAGING_FAILED",
    `Cannot copy "${rel}" from the project: ${_message(error)}: ` +
      "check that it is readable and that the state directory has free space",
    rel,
    { cause: error },
  );
}

function _message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function _random(): string {
  return crypto.randomUUID().slice(0, 8);
}
