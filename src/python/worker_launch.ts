/**
 * What one API's worker starts with: its environment and its `init`
 * message, for a project tree at `dir` (the staged copy when serving, the
 * project itself for `validate`).
 */
import { join } from "node:path";
import type { ResolvedApi, ResolvedProject } from "../config/types.ts";
import { type InitMessage, PROTOCOL_TABLE, PROTOCOL_VERSION } from "./protocol.ts";
import { workerEnv } from "./worker_env.ts";

/**
 * Items of one stream the worker may send before the server acknowledges
 * them: with the HTTP client's socket buffers, what a slow reader can make
 * the server hold per stream.
 */
export const STREAM_WINDOW: number = PROTOCOL_TABLE.stream_window;

/** Devices for replica `index` when each replica takes `perReplica` GPUs. */
export function gpuDevices(perReplica: number, index: number): string {
  return Array.from({ length: perReplica }, (_, i) => String(index * perReplica + i)).join(",");
}

/**
 * The environment of replica `index` of `api`: the server's allow-listed
 * variables, the API's `python.env`, then the `CORTEX_*` settings.
 */
export function apiWorkerEnv(
  serverEnv: Readonly<Record<string, string>>,
  api: ResolvedApi,
  options: { readonly dir: string; readonly index: number },
): Record<string, string> {
  return workerEnv(serverEnv, {
    ...api.env,
    CORTEX_PROJECT_DIR: options.dir,
    CORTEX_API_NAME: api.name,
    CORTEX_REPLICA: String(options.index),
    ...(api.compute.gpu > 0 ? { CUDA_VISIBLE_DEVICES: gpuDevices(api.compute.gpu, options.index) } : {}),
  });
}

/** Where workers download `s3://` models: `<state dir>/models`. */
export function modelDir(stateDir: string): string {
  return join(stateDir, "models");
}

/**
 * The `init` message for `api` with the project tree at `dir`.
 *
 * @param modelDownloads where an `s3://` model is downloaded (see {@linkcode modelDir})
 */
export function apiInitMessage(
  project: ResolvedProject,
  api: ResolvedApi,
  dir: string,
  modelDownloads?: string,
): Omit<InitMessage, "type"> {
  const pythonRoot = api.pythonPath ?? project.deployment.pythonRoot;
  const models = api.models;
  const init = {
    protocol: PROTOCOL_VERSION,
    api: api.name,
    inference: join(dir, api.inference),
    metadata: api.metadata,
    python_root: pythonRoot === undefined ? null : join(dir, pythonRoot),
    project_dir: dir,
    interface: api.pythonInterface,
    model: _modelLocation(api.model, dir),
    model_dir: api.model?.kind === "s3" && modelDownloads !== undefined ? modelDownloads : null,
    stream_window: STREAM_WINDOW,
    models: null,
  };
  if (models === undefined) return init;
  const s3 = models.dir?.kind === "s3" || (models.sources ?? []).some((s) => s.location.kind === "s3");
  return {
    ...init,
    model_dir: s3 && modelDownloads !== undefined ? modelDownloads : null,
    // Read where they are, not from the staged copy: a version added there is served live.
    models: {
      sources:
        models.sources?.map((s) => ({ name: s.name, path: _modelLocation(s.location, project.root)! })) ??
          null,
      dir: models.dir === undefined ? null : _modelLocation(models.dir, project.root),
      cache_size: models.cacheSize ?? null,
      disk_cache_size: models.diskCacheSize ?? null,
    },
  };
}

function _modelLocation(model: ResolvedApi["model"], dir: string): string | null {
  switch (model?.kind) {
    case undefined:
      return null;
    case "project":
      return join(dir, model.path);
    case "local":
      return model.path;
    case "s3":
      return model.url;
  }
}
