/**
 * Content hashing for staging: streamed file hashes, a stat cache so
 * unchanged (large) files are not re-read on every start, and the content
 * key of a whole project tree.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { type ProjectFile, type ProjectTree, StagingError } from "./walk.ts";

/** A file's hash, valid while its size, mtime and inode stay the same. */
export interface StatCacheEntry {
  readonly size: number;
  readonly mtimeMs: number;
  readonly ino: number;
  readonly sha256: string;
}

/** Relative path -> cached hash. */
export type StatCache = Map<string, StatCacheEntry>;

/** Hashes of a tree's files, by relative path, and whether any changed while read. */
export interface TreeHashes {
  readonly hashes: ReadonlyMap<string, string>;
  /** Entries worth caching for the next start. */
  readonly cache: StatCache;
  /** Relative path of a file that changed while it was hashed, if any. */
  readonly changed: string | undefined;
}

const _CHUNK = 1 << 20;
const _PARALLEL = 4;
/**
 * A file modified this recently may be modified again within the same mtime
 * tick without its size changing; its hash is not cached (git's "racily
 * clean" problem).
 */
const _RACY_MS = 2_000;
const _KEY_VERSION = 1;

/** Hex sha256 of a string. */
export function sha256Hex(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/**
 * Reads the stat cache; a missing or malformed file gives an empty cache.
 *
 * @param file Path of `stat-cache.json`.
 */
export async function loadStatCache(file: string): Promise<StatCache> {
  const cache: StatCache = new Map();
  let parsed: unknown;
  try {
    parsed = JSON.parse(await Deno.readTextFile(file));
  } catch {
    return cache;
  }
  const entries = _isRecord(parsed) ? parsed["entries"] : undefined;
  if (!_isRecord(entries)) return cache;
  for (const [rel, value] of Object.entries(entries)) {
    if (_isCacheEntry(value)) cache.set(rel, value);
  }
  return cache;
}

/**
 * Writes the stat cache atomically (temp file, then rename), owner-only.
 * Best effort: the cache only saves time, so a failure is ignored.
 *
 * @param file Path of `stat-cache.json`.
 * @param cache The entries to keep.
 */
export async function saveStatCache(
  file: string,
  cache: StatCache,
): Promise<void> {
  const temp = `${file}.tmp-${Deno.pid}-${_random()}`;
  const body = JSON.stringify({
    version: 1,
    entries: Object.fromEntries(cache),
  });
  try {
    await Deno.writeTextFile(temp, body, { mode: 0o600 });
    await Deno.rename(temp, file);
  } catch {
    await Deno.remove(temp).catch(() => {});
  }
}

/**
 * Hashes every file of `tree`, reusing `cache` for files whose size, mtime
 * and inode are unchanged. Stops early when a file changed (or vanished)
 * since the walk.
 *
 * @param tree The walked project.
 * @param cache The cache from the previous start.
 * @throws {StagingError} `STAGING_FAILED` when a file cannot be read.
 */
export async function hashTree(
  tree: ProjectTree,
  cache: StatCache,
): Promise<TreeHashes> {
  const hashes = new Map<string, string>();
  const next: StatCache = new Map();
  const racyAfter = Date.now() - _RACY_MS;
  let changed: string | undefined;
  const queue = [...tree.files];
  const worker = async (): Promise<void> => {
    for (let file = queue.shift(); file; file = queue.shift()) {
      if (changed !== undefined) return;
      const entry = await _hashWithCache(file, cache);
      if (entry === undefined) {
        changed = file.path;
        return;
      }
      hashes.set(file.path, entry.sha256);
      if (entry.mtimeMs < racyAfter) next.set(file.path, entry);
    }
  };
  await Promise.all(Array.from({ length: _PARALLEL }, worker));
  return { hashes, cache: next, changed };
}

/**
 * The content key: sha256 over the sorted directories and the sorted
 * (relative path, executable bit, content hash) of every file. Directories
 * count so that an empty directory the code expects is part of the key.
 *
 * @param tree The walked project.
 * @param hashes Content hash of every file in `tree`.
 */
export function contentKey(
  tree: ProjectTree,
  hashes: ReadonlyMap<string, string>,
): string {
  const files = [...tree.files]
    .sort((a, b) => _compare(a.path, b.path))
    .map((file) => [file.path, file.executable, hashes.get(file.path) ?? ""]);
  const dirs = [...tree.dirs].sort(_compare);
  return sha256Hex(JSON.stringify({ version: _KEY_VERSION, dirs, files }));
}

/** The cached entry when still valid, else a fresh hash; `undefined` if the file changed since the walk. */
async function _hashWithCache(
  file: ProjectFile,
  cache: StatCache,
): Promise<StatCacheEntry | undefined> {
  const cached = cache.get(file.path);
  if (
    cached !== undefined && cached.size === file.size &&
    cached.mtimeMs === file.mtimeMs && cached.ino === file.ino
  ) {
    return cached;
  }
  let fresh: StatCacheEntry;
  try {
    fresh = await hashFile(file.source);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw new StagingError(
      "STAGING_FAILED",
      `Cannot read "${file.path}" in the project: ${_message(error)}: ` +
        "make it readable by the server's user, or remove it",
      file.path,
      { cause: error },
    );
  }
  if (
    fresh.size !== file.size || fresh.mtimeMs !== file.mtimeMs ||
    fresh.ino !== file.ino
  ) {
    return undefined;
  }
  return fresh;
}

/**
 * Streams a file through sha256 (never whole in memory) and returns its hash
 * with the stat values seen after reading it.
 *
 * @param source Path of a regular file.
 */
export async function hashFile(source: string): Promise<StatCacheEntry> {
  using file = await Deno.open(source, { read: true });
  const hash = createHash("sha256");
  const buffer = new Uint8Array(_CHUNK);
  for (;;) {
    const read = await file.read(buffer);
    if (read === null) break;
    hash.update(buffer.subarray(0, read));
  }
  const info = await file.stat();
  return {
    size: info.size,
    mtimeMs: info.mtime?.getTime() ?? 0,
    ino: info.ino ?? 0,
    sha256: hash.digest("hex"),
  };
}

function _compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function _message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function _random(): string {
  return crypto.randomUUID().slice(0, 8);
}

function _isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function _isCacheEntry(value: unknown): value is StatCacheEntry {
  return _isRecord(value) && typeof value["size"] === "number" &&
    typeof value["mtimeMs"] === "number" && typeof value["ino"] === "number" &&
    typeof value["sha256"] === "string" &&
    /^[0-9a-f]{64}$/.test(value["sha256"]);
}
