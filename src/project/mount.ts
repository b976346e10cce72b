/**
 * `--project-mount PATH` (docs/python-environment.md, "/mnt/project"): the
 * staged project made visible at a fixed path, so Cortex code that reads
 * `/mnt/project/...` literally runs unchanged. PATH becomes a symbolic link
 * to the staged tree.
 *
 * A link at PATH that points into this server's state directory is ours (left
 * by an earlier start) and is replaced atomically; anything else at PATH is
 * refused, never removed.
 *
 * @module
 */
import { UserError } from "../errors/user_error.ts";
import * as path from "node:path";

/** Stable codes of {@linkcode MountError}. */
export type MountErrorCode = "MOUNT_PATH_TAKEN" | "MOUNT_FAILED";

/** The project cannot be made visible at the `--project-mount` path. */
export class MountError extends UserError {
  override readonly code: MountErrorCode;
  /** The `--project-mount` path. */
  readonly path: string;
  constructor(code: MountErrorCode, message: string, mountPath: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "MountError";
    this.code = code;
    this.path = mountPath;
  }
}

/**
 * The link at the `--project-mount` path. Dispose to remove it (only while
 * it still points where this server left it).
 *
 * @example
 * ```ts
 * await using mount = await ProjectMount.create("/mnt/project", staged.dir, stateDir);
 * // on reload:
 * await mount.point(newStaged.dir);
 * ```
 */
export class ProjectMount implements AsyncDisposable {
  /** The absolute `--project-mount` path. */
  readonly path: string;
  readonly #stateDir: string;
  #target: string | undefined;

  private constructor(mountPath: string, stateDir: string) {
    this.path = path.resolve(mountPath);
    this.#stateDir = path.resolve(stateDir);
  }

  /**
   * Points `mountPath` at `stagedDir`.
   *
   * @param mountPath Where the project should be visible, e.g. `/mnt/project`.
   * @param stagedDir The staged project tree (inside `stateDir`).
   * @param stateDir The server's state directory: links into it are ours.
   * @throws {MountError} `MOUNT_PATH_TAKEN` when something else is at `mountPath`,
   *   `MOUNT_FAILED` when the link cannot be made.
   */
  static async create(mountPath: string, stagedDir: string, stateDir: string): Promise<ProjectMount> {
    const mount = new ProjectMount(mountPath, stateDir);
    await mount.point(stagedDir);
    return mount;
  }

  /** The staged tree the link points at now. */
  get target(): string | undefined {
    return this.#target;
  }

  /** Re-points the link at `stagedDir` atomically (a new link renamed over the old one). */
  async point(stagedDir: string): Promise<void> {
    await this.#checkOurs();
    const parent = path.dirname(this.path);
    const temp = path.join(parent, `.${path.basename(this.path)}.cortex-serve-${Deno.pid}-${_random()}`);
    try {
      await Deno.mkdir(parent, { recursive: true });
      await Deno.symlink(stagedDir, temp);
      await Deno.rename(temp, this.path);
    } catch (error) {
      await Deno.remove(temp).catch(() => {});
      if (error instanceof Deno.errors.IsADirectory || error instanceof Deno.errors.NotADirectory) {
        throw this.#taken("something else appeared there");
      }
      throw new MountError(
        "MOUNT_FAILED",
        `Cannot make the project visible at --project-mount "${this.path}": ${_message(error)}: ` +
          `give the server's user write access to "${parent}", or choose another path`,
        this.path,
        { cause: error },
      );
    }
    this.#target = stagedDir;
  }

  /** Removes the link if it still points at what this server set; best effort. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#target === undefined) return;
    const current = await Deno.readLink(this.path).catch(() => undefined);
    if (current === this.#target) await Deno.remove(this.path).catch(() => {});
    this.#target = undefined;
  }

  /** Throws unless `path` is free or a link into the state directory. */
  async #checkOurs(): Promise<void> {
    let info: Deno.FileInfo;
    try {
      info = await Deno.lstat(this.path);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return;
      throw new MountError(
        "MOUNT_FAILED",
        `Cannot inspect --project-mount "${this.path}": ${_message(error)}: choose another path`,
        this.path,
        { cause: error },
      );
    }
    if (!info.isSymlink) throw this.#taken(info.isDirectory ? "a directory" : "a file");
    const link = await Deno.readLink(this.path);
    const target = path.resolve(path.dirname(this.path), link);
    if (!(await this.#inStateDir(target))) {
      throw this.#taken(`a link to "${link}", outside the state directory "${this.#stateDir}"`);
    }
  }

  async #inStateDir(target: string): Promise<boolean> {
    const roots = [this.#stateDir, await Deno.realPath(this.#stateDir).catch(() => this.#stateDir)];
    return roots.some((root) => target.startsWith(root + path.sep));
  }

  #taken(what: string): MountError {
    return new MountError(
      "MOUNT_PATH_TAKEN",
      `The --project-mount path "${this.path}" already exists and was not made by cortex-serve (${what}): ` +
        "remove it or choose another path",
      this.path,
    );
  }
}

function _message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function _random(): string {
  return crypto.randomUUID().slice(0, 8);
}
