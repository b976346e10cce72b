/**
 * Validates one api of the later Cortex dialects, whose inference file is
 * named by `predictor:`: Cortex 0.10/0.11 (`predictor: {path, model,
 * python_path, metadata}`, module functions with `init(model_path,
 * metadata)`), 0.12 and 0.13 (`predictor: {type: python, path, config,
 * python_path, env}`, `class PythonPredictor`). Fields that mean nothing on
 * one machine are accepted and collected as ignored.
 */

import { fileURLToPath } from "node:url";
import type { IgnoredField, ResolvedCompute, ResolvedModel } from "./types.ts";
import {
  checkKeys,
  get,
  keyPos,
  readMap,
  readString,
  type RefusedKey,
  report,
  type Scope,
} from "./_fields.ts";
import { normalizeProjectPath, type PathCheck } from "./_paths.ts";
import { COMPUTE_KEYS, validateCompute } from "./_validate_compute.ts";
import { validateBatching } from "./_validate_batching.ts";
import {
  type ApiDraft,
  readApiName,
  readAsync,
  readEndpoint,
  readEnv,
  readInferencePath,
  readPlainMap,
  readTracker,
  REFUSED_FRAMEWORKS,
} from "./_validate_api.ts";
import type { YamlEntry, YamlMap } from "./_yaml_nodes.ts";

/** The dialects whose apis have `predictor:`. */
export type PredictorDialect = "0.11" | "0.12" | "0.13";

const _SCALING = "replicas are added and retired by queue depth between min_replicas and max_replicas " +
  "(--scale-window, --scale-cooldown)";
const _ONE_WORKER =
  "each replica is one worker that handles one request at a time: raise min_replicas instead";
const _RELOAD = "a reload (SIGHUP) starts the new version beside the old one and switches when it is ready";

/** Accepted and ignored keys, with why, per map. */
const _IGNORED_COMPUTE_011: Readonly<Record<string, string>> = { target_cpu_utilization: _SCALING };
const _IGNORED_AUTOSCALING: Readonly<Record<string, string>> = {
  workers_per_replica: _ONE_WORKER,
  threads_per_worker: _ONE_WORKER,
  target_replica_concurrency: _SCALING,
  max_replica_concurrency: "the queue is bounded by --queue per replica",
  window: _SCALING,
  downscale_stabilization_period: _SCALING,
  upscale_stabilization_period: _SCALING,
  max_downscale_factor: _SCALING,
  max_upscale_factor: _SCALING,
  downscale_tolerance: _SCALING,
  upscale_tolerance: _SCALING,
};
const _IGNORED_UPDATE: Readonly<Record<string, string>> = { max_surge: _RELOAD, max_unavailable: _RELOAD };
const _IGNORED_PREDICTOR: Readonly<Record<string, string>> = {
  image: "workers run the interpreter chosen with --python (or CORTEX_PYTHON)",
};
const _REPLICA_KEYS = ["min_replicas", "max_replicas", "init_replicas"];

const _REFUSED_011: Readonly<Record<string, RefusedKey>> = {
  config: {
    problem: "is Cortex 0.12 syntax, and this predictor has no type (Cortex 0.10/0.11)",
    fix:
      'use metadata with init(model_path, metadata), or add "type: python" and write class PythonPredictor',
  },
  env: {
    problem: "is Cortex 0.12 syntax, and this predictor has no type (Cortex 0.10/0.11)",
    fix: 'add "type: python" (Cortex 0.12) to use env, or set the variables outside cortex-serve',
  },
};
const _REFUSED_012: Readonly<Record<string, RefusedKey>> = {
  model: {
    problem: "is refused for type: python (as in Cortex 0.12)",
    fix: "put the model's path in config and load it in PythonPredictor.__init__(self, config)",
  },
  metadata: {
    problem: "is Cortex 0.10/0.11 syntax: a PythonPredictor receives config",
    fix: "rename metadata to config",
  },
};

/** Validates one api resource of a predictor dialect (its dialect has been detected). */
export function validatePredictorApi(
  scope: Scope,
  map: YamlMap,
  dialect: PredictorDialect,
  ignored: IgnoredField[],
): ApiDraft {
  const before = scope.issues.length;
  const apiKeys = ["name", "endpoint", "predictor", "tracker", "compute", "async"];
  if (dialect !== "0.13") apiKeys.push("kind");
  if (dialect !== "0.11") apiKeys.push("autoscaling", "update_strategy");
  if (dialect === "0.13") {
    // Cortex 0.16's local provider port: the server answers on --port.
    apiKeys.push("local_port");
    ignoreKeys(scope, map, "", { local_port: "the server answers on --port for every api" }, ignored);
  }
  const metadata: RefusedKey = dialect === "0.11"
    ? { problem: "belongs under predictor: in Cortex 0.10/0.11", fix: "move it to predictor.metadata" }
    : { problem: "is not read by a PythonPredictor", fix: "move it to predictor.config" };
  checkKeys(scope, map, "", apiKeys, { ...REFUSED_FRAMEWORKS, metadata });
  const { name, pos: namePos } = readApiName(scope, map);
  const pathChecks: PathCheck[] = [];
  const predictor = _predictor(scope, map, dialect, { ignored, checks: pathChecks });
  const tracker = readTracker(scope, map);
  const compute = validateScaling(scope, map, dialect, ignored);
  const endpoint = readEndpoint(scope, map);
  const asyncApi = readAsync(scope, map);
  const ok = scope.issues.length === before;
  return {
    scope,
    name,
    namePos,
    endpoint,
    rest: ok && predictor !== undefined && tracker !== null && compute !== undefined
      ? { ...predictor, tracker, compute, ...(asyncApi ? { async: true } : {}) }
      : undefined,
    pathChecks,
  };
}

interface _Collect {
  readonly ignored: IgnoredField[];
  readonly checks: PathCheck[];
}

type _Predictor = Pick<
  NonNullable<ApiDraft["rest"]>,
  "inference" | "env" | "metadata" | "pythonInterface" | "model" | "pythonPath" | "batching"
>;

function _predictor(
  scope: Scope,
  map: YamlMap,
  dialect: PredictorDialect,
  collect: _Collect,
): _Predictor | undefined {
  const entry = get(map, "predictor");
  if (entry === undefined) {
    report(
      scope,
      keyPos(map, "predictor"),
      "predictor",
      "is required",
      'add "predictor:" with "type: python" and "path: <your .py file>" below it',
    );
    return undefined;
  }
  const predictor = readMap(scope, entry, "predictor", 'write "predictor:" with "path: <file>" below it');
  if (predictor === undefined) return undefined;
  const before = scope.issues.length;
  const classic = dialect === "0.11";
  const keys = classic
    ? ["path", "model", "python_path", "metadata", "server_side_batching"]
    : ["type", "path", "config", "python_path", "env", "server_side_batching"];
  ignoreKeys(scope, predictor, "predictor", classic ? {} : _IGNORED_PREDICTOR, collect.ignored);
  const allowed = classic ? keys : [...keys, ...Object.keys(_IGNORED_PREDICTOR)];
  checkKeys(scope, predictor, "predictor", allowed, classic ? _REFUSED_011 : _REFUSED_012);
  if (!classic) _type(scope, predictor);
  const inference = readInferencePath(scope, predictor, "path", collect.checks);
  const pythonPath = readPythonPath(scope, predictor, collect.checks);
  const metadata = readPlainMap(
    scope,
    predictor,
    classic ? "metadata" : "config",
    `predictor.${classic ? "metadata" : "config"}`,
  );
  const env = classic ? {} : readEnv(scope, predictor, "predictor.env");
  const modelEntry = classic ? get(predictor, "model") : undefined;
  const model = modelEntry && readModelLocation(scope, modelEntry, "predictor.model", collect.checks);
  const batching = validateBatching(scope, predictor, "predictor");
  if (
    scope.issues.length > before || inference === undefined || metadata === undefined || env === undefined ||
    batching === null
  ) {
    return undefined;
  }
  return {
    inference,
    env,
    metadata,
    pythonInterface: classic ? "init_model_path" : "python_predictor",
    model: model ?? undefined,
    pythonPath,
    batching,
  };
}

/** Checks `predictor.type`: required, and only `python` is in scope. */
function _type(scope: Scope, predictor: YamlMap): void {
  const entry = get(predictor, "type");
  if (entry === undefined) {
    report(scope, keyPos(predictor, "type"), "predictor.type", "is required", 'add "type: python"');
    return;
  }
  const value = readString(scope, entry, "predictor.type", '"python"');
  if (value === undefined || value === "python") return;
  const framework = value === "tensorflow" || value === "onnx";
  report(
    scope,
    entry.value.pos,
    "predictor.type",
    framework
      ? `out of scope: only Python predictors are supported, not ${JSON.stringify(value)}`
      : `must be "python", got ${JSON.stringify(value)}`,
    framework
      ? `load the model with ${
        value === "onnx" ? "onnxruntime" : "tensorflow"
      } in a PythonPredictor and write "type: python"`
      : 'write "type: python"',
  );
}

/** Reads `predictor.python_path`: a project directory, `undefined` when absent or after an issue. */
export function readPythonPath(scope: Scope, predictor: YamlMap, checks: PathCheck[]): string | undefined {
  const entry = get(predictor, "python_path");
  const raw = entry && readString(scope, entry, "predictor.python_path", '"src"');
  if (entry === undefined || raw === undefined) return undefined;
  const normalized = normalizeProjectPath(raw);
  if (!normalized.ok) {
    report(scope, entry.value.pos, "predictor.python_path", normalized.problem, normalized.fix);
    return undefined;
  }
  checks.push({
    resource: scope.resource,
    key: "predictor.python_path",
    pos: entry.value.pos,
    path: normalized.path,
    want: "directory",
  });
  return normalized.path;
}

/**
 * Reads a model location (`predictor.model`, a multi-model path): a project
 * path, an absolute path, a `file://` or an `s3://` URL; `null` after an issue.
 */
export function readModelLocation(
  scope: Scope,
  entry: YamlEntry,
  key: string,
  checks: PathCheck[],
): ResolvedModel | null {
  const raw = readString(scope, entry, key, '"model.npz" or "s3://bucket/model.pkl"');
  if (raw === undefined) return null;
  const pos = entry.value.pos;
  const fail = (problem: string, fix: string) => {
    report(scope, pos, key, problem, fix);
    return null;
  };
  const check = (path: string, absolute: boolean): void => {
    const base = { resource: scope.resource, key, pos, path, want: "any" as const };
    checks.push(absolute ? { ...base, absolute } : base);
  };
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(raw)?.[1]?.toLowerCase();
  if (scheme === "s3") {
    if (!/^s3:\/\/[^/]+\/?/.test(raw) || raw.length <= "s3://".length) {
      return fail(`must name a bucket, got ${JSON.stringify(raw)}`, 'write "s3://bucket/path/to/model"');
    }
    return { kind: "s3", url: raw };
  }
  if (scheme === "file") {
    let path: string;
    try {
      path = fileURLToPath(raw);
    } catch (e) {
      return fail(
        `is not a valid file:// URL: ${e instanceof Error ? e.message : String(e)}`,
        'write "file:///absolute/path/to/model"',
      );
    }
    check(path, true);
    return { kind: "local", path };
  }
  if (scheme !== undefined) {
    return fail(
      `${scheme}:// URLs are not supported, got ${JSON.stringify(raw)}`,
      "download the model and give its path, or use an s3:// or file:// URL",
    );
  }
  if (raw.startsWith("/")) {
    check(raw, true);
    return { kind: "local", path: raw };
  }
  const normalized = normalizeProjectPath(raw);
  if (!normalized.ok) return fail(normalized.problem, normalized.fix);
  check(normalized.path, false);
  return { kind: "project", path: normalized.path };
}

/**
 * `compute:` (and in 0.12 and later `autoscaling:` and `update_strategy:`)
 * into one resolved compute; `computeIgnored` are further keys of `compute:`
 * accepted and ignored (the later dialects' `inf`, `node_groups`).
 */
export function validateScaling(
  scope: Scope,
  map: YamlMap,
  dialect: PredictorDialect,
  ignored: IgnoredField[],
  computeIgnored: Readonly<Record<string, string>> = {},
): ResolvedCompute | undefined {
  const read = (key: string): YamlMap | undefined | null => {
    const entry = get(map, key);
    if (entry === undefined) return undefined;
    return readMap(scope, entry, key, `write "${key}:" followed by indented keys`) ?? null;
  };
  const compute = read("compute");
  if (dialect === "0.11") {
    if (compute === null) return undefined;
    if (compute === undefined) return validateCompute(scope, undefined, "compute");
    ignoreKeys(scope, compute, "compute", _IGNORED_COMPUTE_011, ignored);
    const kept = { ...compute, entries: compute.entries.filter((e) => !(e.key in _IGNORED_COMPUTE_011)) };
    return validateCompute(scope, kept, "compute");
  }
  const autoscaling = read("autoscaling");
  const update = read("update_strategy");
  if (compute === null || autoscaling === null || update === null) return undefined;
  const entries: YamlEntry[] = [];
  if (compute !== undefined) {
    ignoreKeys(scope, compute, "compute", computeIgnored, ignored);
    const allowed = ["cpu", "mem", "gpu", ...Object.keys(computeIgnored)];
    checkKeys(scope, compute, "compute", allowed, _moved("autoscaling"));
    entries.push(...compute.entries.filter((e) => ["cpu", "mem", "gpu"].includes(e.key)));
  }
  if (autoscaling !== undefined) {
    ignoreKeys(scope, autoscaling, "autoscaling", _IGNORED_AUTOSCALING, ignored);
    const allowed = [..._REPLICA_KEYS, ...Object.keys(_IGNORED_AUTOSCALING)];
    checkKeys(scope, autoscaling, "autoscaling", allowed, _moved("compute"));
    entries.push(...autoscaling.entries.filter((e) => _REPLICA_KEYS.includes(e.key)));
  }
  if (update !== undefined) {
    ignoreKeys(scope, update, "update_strategy", _IGNORED_UPDATE, ignored);
    checkKeys(scope, update, "update_strategy", Object.keys(_IGNORED_UPDATE));
  }
  if (compute === undefined && autoscaling === undefined) return validateCompute(scope, undefined, "compute");
  return validateCompute(
    scope,
    { kind: "map", pos: (compute ?? autoscaling)!.pos, entries },
    (key) => `${_REPLICA_KEYS.includes(key) ? "autoscaling" : "compute"}.${key}`,
  );
}

/** Refusals for keys of `compute` that this dialect keeps in `target`, and back. */
function _moved(target: "autoscaling" | "compute"): Record<string, RefusedKey> {
  const keys = target === "autoscaling" ? _REPLICA_KEYS : ["cpu", "mem", "gpu"];
  return Object.fromEntries(
    keys.filter((k) => COMPUTE_KEYS.includes(k)).map((k) => [k, {
      problem: `is under ${target} in Cortex 0.12 and later`,
      fix: `move it to ${target}.${k}`,
    }]),
  );
}

/** Records the keys of `map` listed in `reasons` as ignored. */
export function ignoreKeys(
  scope: Scope,
  map: YamlMap,
  prefix: string,
  reasons: Readonly<Record<string, string>>,
  ignored: IgnoredField[],
): void {
  for (const { key, keyPos } of map.entries) {
    const reason = Object.hasOwn(reasons, key) ? reasons[key] : undefined;
    if (reason === undefined) continue;
    ignored.push({
      resource: scope.resource,
      path: prefix === "" ? key : `${prefix}.${key}`,
      ...keyPos,
      reason,
    });
  }
}
