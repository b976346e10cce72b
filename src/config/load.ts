/**
 * Loads `cortex.yaml`: reads it (size-capped), parses it, validates every
 * resource, checks paths on disk and resolves defaults.
 *
 * @example
 * ```ts
 * import { loadProjectConfig } from "./load.ts";
 * import { ConfigError } from "./errors.ts";
 *
 * try {
 *   const project = await loadProjectConfig("./iris-classifier");
 *   console.log(project.apis.map((api) => api.endpoint));
 * } catch (e) {
 *   if (e instanceof ConfigError) console.error(e.message); // one issue per line
 *   else throw e;
 * }
 * ```
 */

import * as path from "node:path";
import { ConfigError, type ConfigErrorCode, type ConfigIssue } from "./errors.ts";
import type { ResolvedProject } from "./types.ts";
import { validateConfig } from "./validate.ts";
import { readDotenv } from "./dotenv.ts";
import { bySource } from "./_fields.ts";
import { checkProjectPaths } from "./_paths.ts";
import { parseYamlTree } from "./_yaml_tree.ts";

/** Largest config file accepted, in bytes (1 MiB). */
export const MAX_CONFIG_BYTES = 1024 * 1024;

/** Options of {@linkcode loadProjectConfig}. */
export interface LoadOptions {
  /**
   * Config file to read instead of `<projectDir>/cortex.yaml`; a relative
   * path is resolved against `projectDir`.
   */
  readonly configFile?: string;
}

/**
 * Reads `<projectDir>/cortex.yaml` (or the file given), validates it and
 * resolves defaults.
 *
 * @param projectDir the project root: paths in the config are relative to it
 * @param options another config file
 * @returns the resolved project
 * @throws {ConfigError} listing every problem found, with `code`
 * `CONFIG_NOT_FOUND`, `CONFIG_TOO_LARGE`, `CONFIG_SYNTAX` or `CONFIG_INVALID`
 */
export async function loadProjectConfig(
  projectDir: string,
  options: LoadOptions = {},
): Promise<ResolvedProject> {
  const root = path.resolve(projectDir);
  const configPath = path.resolve(root, options.configFile ?? "cortex.yaml");
  const file = path.relative(root, configPath).split(path.sep).join("/");
  await _checkProjectDir(root, file);
  const text = await _readConfig(configPath, file);

  const parsed = parseYamlTree(text);
  if (!parsed.ok) {
    throw new ConfigError(
      "CONFIG_SYNTAX",
      parsed.problems.map((p) => _issue(file, p.problem, p.fix, p.pos?.line, p.pos?.column)),
    );
  }
  const result = validateConfig(parsed.root, file, { defaultDeployment: defaultDeploymentName(root) });
  const diskIssues = await checkProjectPaths(root, file, result.pathChecks);
  // `.env` is Cortex 0.18+: the earlier dialects never read it.
  const later = result.dialect === "0.17" || result.dialect === "0.19";
  const dotenv = later ? await readDotenv(root) : { vars: {}, issues: [] };
  const issues = [...result.issues, ...diskIssues, ...dotenv.issues].sort(bySource);
  if (issues.length > 0 || result.config === undefined) {
    throw new ConfigError("CONFIG_INVALID", issues);
  }
  const config = result.config;
  if (Object.keys(dotenv.vars).length === 0) return { root, configPath, ...config };
  const apis = config.apis.map((api) => ({ ...api, env: { ...api.env, ...dotenv.vars } }));
  return { root, configPath, ...config, apis };
}

/**
 * The deployment name of a file without deployment (Cortex 0.13): the
 * project directory's name as a DNS label, else `"cortex"`.
 */
export function defaultDeploymentName(root: string): string {
  const name = path.basename(root).toLowerCase().replace(/[^a-z0-9-]+/g, "-").replace(/^-+|-+$/g, "")
    .slice(0, 63).replace(/-+$/, "");
  return name === "" ? "cortex" : name;
}

async function _checkProjectDir(root: string, file: string): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(root);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    _fail("CONFIG_NOT_FOUND", file, `Project directory "${root}" does not exist`, _NOT_FOUND_FIX);
  }
  if (!info.isDirectory) {
    _fail("CONFIG_NOT_FOUND", file, `"${root}" is not a directory`, _NOT_FOUND_FIX);
  }
}

const _NOT_FOUND_FIX = "pass the project directory, the one that holds cortex.yaml";

/** Reads the config as UTF-8, refusing anything over the size cap before reading it. */
async function _readConfig(configPath: string, file: string): Promise<string> {
  const tooLarge = (size: number | undefined) =>
    _fail(
      "CONFIG_TOO_LARGE",
      file,
      `The config file is over the limit of ${MAX_CONFIG_BYTES} bytes (1 MiB)` +
        (size === undefined ? "" : `: ${size} bytes`),
      "keep large data out of cortex.yaml: put it in a file of the project and read it in init()",
    );
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(configPath);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    return _fail(
      "CONFIG_NOT_FOUND",
      file,
      `No config file at "${configPath}"`,
      "create cortex.yaml in the project directory, or pass the directory that holds it",
    );
  }
  if (!info.isFile) {
    _fail("CONFIG_NOT_FOUND", file, `"${configPath}" is not a regular file`, _NOT_FOUND_FIX);
  }
  if (info.size > MAX_CONFIG_BYTES) tooLarge(info.size);

  using handle = await Deno.open(configPath, { read: true });
  // The file may have grown since stat: read at most one byte past the cap.
  const buffer = new Uint8Array(MAX_CONFIG_BYTES + 1);
  let length = 0;
  while (length < buffer.length) {
    const n = await handle.read(buffer.subarray(length));
    if (n === null) break;
    length += n;
  }
  if (length > MAX_CONFIG_BYTES) tooLarge(undefined);
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(buffer.subarray(0, length));
  } catch {
    return _fail(
      "CONFIG_SYNTAX",
      file,
      "The config file is not valid UTF-8 text",
      "save the file with UTF-8 encoding",
    );
  }
}

function _issue(
  file: string,
  problem: string,
  fix: string,
  line?: number,
  column?: number,
): ConfigIssue {
  return { file, resource: undefined, path: "", line, column, problem, fix };
}

function _fail(code: ConfigErrorCode, file: string, problem: string, fix: string): never {
  throw new ConfigError(code, [_issue(file, problem, fix)]);
}
