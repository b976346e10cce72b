/**
 * Validates one api of the Cortex 0.17-0.35 dialects: a kindless list item
 * with `networking`/`monitoring` (0.17-0.18) or a `kind: RealtimeAPI`
 * resource (0.19-0.35; `SyncAPI` and `AsyncAPI` too). The predictor is
 * `type: python` with `class PythonPredictor`, its payload parsed by
 * Content-Type. Keys that mean nothing on one machine are accepted and
 * collected as ignored; `processes_per_replica` multiplies the workers.
 */

import type { IgnoredField, ResolvedCompute } from "./types.ts";
import {
  checkKeys,
  get,
  keyPos,
  readInteger,
  readMap,
  readString,
  type RefusedKey,
  report,
  type Scope,
} from "./_fields.ts";
import type { PathCheck } from "./_paths.ts";
import { validateBatching } from "./_validate_batching.ts";
import { endpointProblem, normalizeEndpoint } from "./_endpoint.ts";
import {
  type ApiDraft,
  readApiName,
  readEndpoint,
  readEnv,
  readInferencePath,
  readPlainMap,
  readTracker,
  REFUSED_FRAMEWORKS,
} from "./_validate_api.ts";
import { ignoreKeys, readPythonPath, validateScaling } from "./_validate_predictor.ts";
import { readModels } from "./_validate_models.ts";
import type { YamlMap } from "./_yaml_nodes.ts";

/** The later kindless dialect or the `kind:` one. */
export type RealtimeDialect = "0.17" | "0.19";

/** Most `processes_per_replica` (Cortex allowed 1-100). */
export const MAX_PROCESSES = 100;

const _IMAGE = "workers run the interpreter chosen with --python (or CORTEX_PYTHON)";
const _THREADS = "each worker runs one request at a time; processes_per_replica and min_replicas add " +
  "workers, server_side_batching groups requests into one predict call";
const _IGNORED_PREDICTOR: Readonly<Record<string, string>> = {
  image: _IMAGE,
  shm_size: "workers share the machine's /dev/shm",
  log_level: "the worker's log level follows serve --log-level",
};
const _IGNORED_DEPENDENCIES: Readonly<Record<string, string>> = {
  conda: "conda is not used: requirements.txt is installed with pip into the API's virtual environment",
};
const _IGNORED_NETWORKING: Readonly<Record<string, string>> = {
  api_gateway: "the server answers on --host/--port itself, there is no gateway",
  local_port: "the server answers on --port for every api",
};
const _IGNORED_COMPUTE: Readonly<Record<string, string>> = {
  inf: "Inferentia chips are not managed on one machine",
  node_groups: "there are no node groups on one machine",
};

const _REFUSED_PREDICTOR: Readonly<Record<string, RefusedKey>> = {
  model: {
    problem: "is refused for type: python",
    fix: "put the model's path in config, or use multi_model_reloading with load_model(self, model_path)",
  },
  protobuf_path: {
    problem: "asks for a gRPC server (Cortex 0.32+), which is not served: predictions are HTTP only",
    fix: "remove protobuf_path and send the requests over HTTP to the api's endpoint",
  },
  signature_key: {
    problem: "belongs to TensorFlow predictors, which are out of scope",
    fix: "remove it and load the model in a PythonPredictor",
  },
};

/** Validates one api resource of the Cortex 0.17-0.35 dialects. */
export function validateRealtimeApi(
  scope: Scope,
  map: YamlMap,
  dialect: RealtimeDialect,
  ignored: IgnoredField[],
): ApiDraft {
  const before = scope.issues.length;
  const keys = [
    "name",
    "predictor",
    "handler",
    "compute",
    "autoscaling",
    "update_strategy",
    "networking",
    "monitoring",
  ];
  if (dialect === "0.19") keys.push("kind");
  else keys.push("endpoint", "local_port", "tracker");
  ignoreKeys(
    scope,
    map,
    "",
    dialect === "0.17" ? { local_port: _IGNORED_NETWORKING.local_port! } : {},
    ignored,
  );
  if (get(map, "pod") !== undefined) {
    // Cortex 0.36-0.42: the API is the user's own containers, no Python predictor.
    report(
      scope,
      keyPos(map, "pod"),
      "pod",
      "is Cortex 0.36+ syntax: the API runs your own containers, and there is no Python predictor to serve",
      'serve the container image itself, or write the API as Cortex 0.35 did: "predictor:" with ' +
        '"type: python" and "path: <file with class PythonPredictor>"',
    );
    const { name, pos: namePos } = readApiName(scope, map);
    return { scope, name, namePos, endpoint: "invalid", rest: undefined, pathChecks: [] };
  }
  checkKeys(scope, map, "", keys, {
    ...REFUSED_FRAMEWORKS,
    endpoint: {
      problem: "moved under networking: in Cortex 0.18",
      fix: "write it as networking.endpoint",
    },
  });
  const { name, pos: namePos } = readApiName(scope, map);
  const checks: PathCheck[] = [];
  const predictor = _predictor(scope, map, ignored, checks);
  const tracker = get(map, "tracker") !== undefined
    ? readTracker(scope, map)
    : readTracker(scope, map, "monitoring");
  const compute = validateScaling(scope, map, "0.13", ignored, _IGNORED_COMPUTE);
  const endpoint = get(map, "networking") !== undefined
    ? readNetworking(scope, map, ignored)
    : dialect === "0.17"
    ? readEndpoint(scope, map)
    : "default";
  const ok = scope.issues.length === before;
  const kind = get(map, "kind")?.value;
  const async = kind?.kind === "scalar" && kind.value === "AsyncAPI";
  return {
    scope,
    name,
    namePos,
    endpoint,
    rest: ok && predictor !== undefined && tracker !== null && compute !== undefined
      ? {
        ...predictor.fields,
        tracker,
        compute: _multiply(compute, predictor.processes),
        ...(async ? { async: true } : {}),
      }
      : undefined,
    pathChecks: checks,
  };
}

/** Reads `networking:` (`endpoint`; `api_gateway` and `local_port` ignored). */
export function readNetworking(scope: Scope, map: YamlMap, ignored: IgnoredField[]): ApiDraft["endpoint"] {
  const entry = get(map, "networking")!;
  const networking = readMap(
    scope,
    entry,
    "networking",
    'write "networking:" with "endpoint: /path" below it',
  );
  if (networking === undefined) return "invalid";
  ignoreKeys(scope, networking, "networking", _IGNORED_NETWORKING, ignored);
  checkKeys(scope, networking, "networking", ["endpoint", ...Object.keys(_IGNORED_NETWORKING)]);
  const endpoint = get(networking, "endpoint");
  if (endpoint === undefined) return "default";
  const raw = readString(scope, endpoint, "networking.endpoint", '"/iris-classifier"');
  if (raw === undefined) return "invalid";
  const problem = endpointProblem(raw);
  if (problem !== undefined) {
    report(
      scope,
      endpoint.value.pos,
      "networking.endpoint",
      problem,
      'write a path such as "/iris-classifier"',
    );
    return "invalid";
  }
  return { path: normalizeEndpoint(raw), pos: endpoint.value.pos };
}

type _Fields = Omit<NonNullable<ApiDraft["rest"]>, "tracker" | "compute" | "async">;

function _predictor(
  scope: Scope,
  map: YamlMap,
  ignored: IgnoredField[],
  checks: PathCheck[],
): { fields: _Fields; processes: number } | undefined {
  // Cortex 0.34-0.35 renamed predictor: to handler: (and PythonPredictor to Handler).
  const handler = get(map, "handler");
  const key = handler !== undefined && get(map, "predictor") === undefined ? "handler" : "predictor";
  if (handler !== undefined && key === "predictor") {
    report(scope, handler.keyPos, "handler", "cannot be used together with predictor", "keep one of them");
    return undefined;
  }
  const entry = get(map, key);
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
  const predictor = readMap(scope, entry, key, `write "${key}:" with "type: python" below it`);
  if (predictor === undefined) return undefined;
  const before = scope.issues.length;
  ignoreKeys(scope, predictor, key, _IGNORED_PREDICTOR, ignored);
  const known = [
    "type",
    "path",
    "config",
    "python_path",
    "env",
    "processes_per_replica",
    "threads_per_process",
    "server_side_batching",
    "dependencies",
    "multi_model_reloading",
    "models",
    "model_path",
    ...Object.keys(_IGNORED_PREDICTOR),
  ];
  checkKeys(scope, predictor, key, known, _REFUSED_PREDICTOR);
  _type(scope, predictor, key);
  const inference = readInferencePath(scope, predictor, "path", checks);
  const pythonPath = readPythonPath(scope, predictor, checks);
  const metadata = readPlainMap(scope, predictor, "config", `${key}.config`);
  const env = readEnv(scope, predictor, `${key}.env`);
  _cortexEnv(scope, predictor, key);
  const batching = validateBatching(scope, predictor, key);
  const processesEntry = get(predictor, "processes_per_replica");
  const processes = processesEntry === undefined
    ? 1
    : readInteger(scope, processesEntry, `${key}.processes_per_replica`, 1);
  if (processes !== undefined && processes > MAX_PROCESSES) {
    report(
      scope,
      processesEntry!.value.pos,
      `${key}.processes_per_replica`,
      `must be at most ${MAX_PROCESSES}, got ${processes}`,
      "use fewer processes per replica, or more replicas",
    );
  }
  const threads = get(predictor, "threads_per_process");
  if (threads !== undefined && !(threads.value.kind === "scalar" && threads.value.value === 1)) {
    // One thread per process is what every worker does; more is reported.
    ignoreKeys(scope, predictor, key, { threads_per_process: _THREADS }, ignored);
  }
  _dependencies(scope, predictor, ignored, key);
  const models = readModels(scope, predictor, checks, key);
  if (
    scope.issues.length > before || inference === undefined || metadata === undefined ||
    env === undefined || batching === null || processes === undefined || models === null
  ) {
    return undefined;
  }
  return {
    fields: {
      inference,
      env,
      metadata,
      pythonInterface: key === "handler" ? "realtime_handler" : "realtime_predictor",
      model: undefined,
      pythonPath,
      batching,
      ...(models === undefined ? {} : { models }),
    },
    processes,
  };
}

/** Every replica count times `processes_per_replica`: each process is one worker here. */
function _multiply(compute: ResolvedCompute, processes: number): ResolvedCompute {
  if (processes === 1) return compute;
  return {
    ...compute,
    minReplicas: compute.minReplicas * processes,
    maxReplicas: compute.maxReplicas * processes,
    initReplicas: compute.initReplicas * processes,
  };
}

function _type(scope: Scope, predictor: YamlMap, key: string): void {
  const entry = get(predictor, "type");
  if (entry === undefined) {
    report(scope, keyPos(predictor, "type"), `${key}.type`, "is required", 'add "type: python"');
    return;
  }
  const value = readString(scope, entry, `${key}.type`, '"python"');
  if (value === undefined || value === "python") return;
  const framework = value === "tensorflow" || value === "onnx";
  report(
    scope,
    entry.value.pos,
    `${key}.type`,
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

/** Cortex refused `env` names starting with `CORTEX_`: they are the server's. */
function _cortexEnv(scope: Scope, predictor: YamlMap, prefix: string): void {
  const env = get(predictor, "env");
  if (env?.value.kind !== "map") return;
  for (const { key: name, keyPos } of env.value.entries) {
    if (!name.startsWith("CORTEX_")) continue;
    report(
      scope,
      keyPos,
      `${prefix}.env.${name}`,
      'names starting with "CORTEX_" are reserved for the server',
      "rename the variable",
    );
  }
}

/**
 * `dependencies: {pip, conda, shell}` (Cortex 0.30+): the server installs the
 * default files (`requirements.txt`, `dependencies.sh` at the root); other
 * names, and `conda`, are accepted and reported as ignored.
 */
function _dependencies(scope: Scope, predictor: YamlMap, ignored: IgnoredField[], prefix: string): void {
  const entry = get(predictor, "dependencies");
  if (entry === undefined) return;
  const deps = readMap(
    scope,
    entry,
    `${prefix}.dependencies`,
    'write "dependencies:" with "pip: requirements.txt"',
  );
  if (deps === undefined) return;
  ignoreKeys(scope, deps, `${prefix}.dependencies`, _IGNORED_DEPENDENCIES, ignored);
  checkKeys(scope, deps, `${prefix}.dependencies`, ["pip", "shell", "conda"]);
  for (const [key, wanted] of [["pip", "requirements.txt"], ["shell", "dependencies.sh"]] as const) {
    const value = get(deps, key);
    const text = value && readString(scope, value, `${prefix}.dependencies.${key}`, `"${wanted}"`);
    if (text === undefined || text.replace(/^\.\//, "") === wanted) continue;
    // Accepted, so the project runs unchanged where its packages are already installed.
    ignored.push({
      resource: scope.resource,
      path: `${prefix}.dependencies.${key}`,
      ...value!.keyPos,
      reason: `only ${wanted} at the project root is ${key === "pip" ? "installed" : "run"}, not ` +
        `${JSON.stringify(text)}: ${
          key === "pip"
            ? "merge its packages into requirements.txt, or install them into the interpreter (--python)"
            : "merge it into dependencies.sh"
        }`,
    });
  }
}
