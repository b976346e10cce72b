/**
 * Validates one `kind: api` resource. Checks that need the other resources
 * (duplicate names and endpoints, the default endpoint) are left to
 * `validate.ts`; checks that need the disk are returned as path checks.
 */

import type { ResolvedApi, ResolvedTracker } from "./types.ts";
import {
  checkKeys,
  describe,
  get,
  keyPos,
  readMap,
  readString,
  type RefusedKey,
  report,
  type Scope,
  suggest,
} from "./_fields.ts";
import { normalizeProjectPath, type PathCheck } from "./_paths.ts";
import { validateCompute } from "./_validate_compute.ts";
import { validateBatching } from "./_validate_batching.ts";
import { endpointProblem, normalizeEndpoint } from "./_endpoint.ts";
import { type Position, toPlain, type YamlMap } from "./_yaml_nodes.ts";

const _API_KEYS = [
  "kind",
  "name",
  "python",
  "metadata",
  "endpoint",
  "tracker",
  "compute",
  "server_side_batching",
  "async",
];
const _PYTHON_KEYS = ["inference", "env"];
const _TRACKER_KEYS = ["key", "model_type"];
const _MODEL_TYPES = ["classification", "regression"];
const _ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

const _OUT_OF_SCOPE = (framework: string, runtime: string): RefusedKey => ({
  problem: `out of scope: only Python inference files are supported, not ${framework} predictors`,
  fix: `load the model with ${runtime} in init() of a Python file and set python.inference to it`,
});

/** Framework keys of an api that are out of scope, in every dialect. */
export const REFUSED_FRAMEWORKS: Readonly<Record<string, RefusedKey>> = {
  tensorflow: _OUT_OF_SCOPE("TensorFlow", "tensorflow"),
  onnx: _OUT_OF_SCOPE("ONNX", "onnxruntime"),
};

const _REFUSED: Readonly<Record<string, RefusedKey>> = {
  ...REFUSED_FRAMEWORKS,
  predictor: {
    problem: "is the Cortex 0.10+ way to name the inference file, and this api has python: too",
    fix: "keep one: python.inference for the file, or predictor.path (then remove python:)",
  },
};

/** An API with everything that can be checked on its own. */
export interface ApiDraft {
  readonly scope: Scope;
  /** `name` if it is a string (valid or not). */
  readonly name: string | undefined;
  readonly namePos: Position;
  /** `"default"` when not set, `"invalid"` after an issue, else the normalized endpoint. */
  readonly endpoint: { readonly path: string; readonly pos: Position } | "default" | "invalid";
  /** Everything but name and endpoint; `undefined` when an issue was reported. */
  readonly rest: Omit<ResolvedApi, "name" | "endpoint"> | undefined;
  readonly pathChecks: readonly PathCheck[];
}

/** Checks an API name: lower-case DNS-1035 label, at most 63 characters. */
export function apiNameProblem(name: string): string | undefined {
  if (name.length > 63) return `must be at most 63 characters, got ${name.length}`;
  if (/^[a-z]([-a-z0-9]*[a-z0-9])?$/.test(name)) return undefined;
  return `must start with a lower-case letter, end with a letter or digit and hold only ` +
    `lower-case letters, digits and "-", got ${JSON.stringify(name)}`;
}

/** Validates one API resource (its `kind` has been checked). */
export function validateApi(scope: Scope, map: YamlMap): ApiDraft {
  const before = scope.issues.length;
  checkKeys(scope, map, "", _API_KEYS, _REFUSED);

  const { name, pos: namePos } = readApiName(scope, map);

  const pathChecks: PathCheck[] = [];
  const python = _python(scope, map, pathChecks);
  const metadata = readPlainMap(scope, map, "metadata", "metadata");
  const tracker = readTracker(scope, map);
  const computeEntry = get(map, "compute");
  const computeMap = computeEntry &&
    readMap(scope, computeEntry, "compute", 'write "compute:" followed by indented keys');
  const compute = computeEntry !== undefined && computeMap === undefined
    ? undefined
    : validateCompute(scope, computeMap, "compute");
  const batching = validateBatching(scope, map, "");
  const endpoint = readEndpoint(scope, map);
  const asyncApi = readAsync(scope, map);

  const ok = scope.issues.length === before;
  return {
    scope,
    name,
    namePos,
    endpoint,
    rest: ok && python !== undefined && metadata !== undefined && tracker !== null &&
        compute !== undefined && batching !== null
      ? {
        ...python,
        metadata,
        tracker,
        compute,
        batching,
        pythonInterface: "init_metadata",
        model: undefined,
        pythonPath: undefined,
        ...(asyncApi ? { async: true } : {}),
      }
      : undefined,
    pathChecks,
  };
}

/**
 * Reads `async:` of an api (any dialect): `true` submits its predictions as
 * durable jobs (docs/async.md). False when absent or after an issue.
 */
export function readAsync(scope: Scope, map: YamlMap): boolean {
  const entry = get(map, "async");
  if (entry === undefined) return false;
  const node = entry.value;
  if (node.kind === "scalar" && typeof node.value === "boolean") return node.value;
  report(
    scope,
    node.pos,
    "async",
    `must be true or false, got ${describe(node)}`,
    node.kind === "scalar" && typeof node.value === "string" && /^(true|false)$/i.test(node.value)
      ? `remove the quotes: write async: ${node.value.toLowerCase()}`
      : "write async: true to answer POST with 202 and a job id (see docs/async.md)",
  );
  return false;
}

/** Reads `name` of an api resource and checks it; `undefined` after an issue or when absent. */
export function readApiName(scope: Scope, map: YamlMap): { name: string | undefined; pos: Position } {
  const nameEntry = get(map, "name");
  const name = nameEntry && readString(scope, nameEntry, "name", '"classifier"');
  if (nameEntry === undefined) {
    report(scope, keyPos(map, "name"), "name", "is required", 'add a name such as "name: classifier"');
  } else if (name !== undefined) {
    const problem = apiNameProblem(name);
    if (problem !== undefined) {
      report(scope, nameEntry.value.pos, "name", problem, `use e.g. "${sanitizeName(name)}"`);
    }
  }
  return { name, pos: nameEntry?.value.pos ?? map.pos };
}

/** Turns any text into a plausible API name, for a fix suggestion. */
export function sanitizeName(name: string): string {
  const cleaned = name.toLowerCase().replace(/[^a-z0-9-]+/g, "-").replace(/^[^a-z]+/, "")
    .replace(/-+$/, "").slice(0, 63).replace(/-+$/, "");
  return cleaned === "" ? "my-api" : cleaned;
}

function _python(
  scope: Scope,
  map: YamlMap,
  checks: PathCheck[],
): { inference: string; env: Record<string, string> } | undefined {
  const entry = get(map, "python");
  if (entry === undefined) {
    report(
      scope,
      keyPos(map, "python"),
      "python",
      "is required",
      'add "python:" with "inference: <path of your .py file>" indented below it',
    );
    return undefined;
  }
  const python = readMap(scope, entry, "python", 'write "python:" with "inference: <path>" below it');
  if (python === undefined) return undefined;
  checkKeys(scope, python, "python", _PYTHON_KEYS);
  const inference = readInferencePath(scope, python, "inference", checks);
  const env = readEnv(scope, python, "python.env");
  return inference === undefined || env === undefined ? undefined : { inference, env };
}

/**
 * Reads the inference file path at `key` of `parent` (`python.inference`,
 * `predictor.path`): required, inside the project, ending in `.py`.
 */
export function readInferencePath(
  scope: Scope,
  parent: YamlMap,
  key: "inference" | "path",
  checks: PathCheck[],
): string | undefined {
  const entry = get(parent, key);
  const path = key === "inference" ? "python.inference" : "predictor.path";
  if (entry === undefined) {
    report(scope, keyPos(parent, key), path, "is required", `add "${key}: src/inference.py"`);
    return undefined;
  }
  const raw = readString(scope, entry, path, '"src/inference.py"');
  if (raw === undefined) return undefined;
  const normalized = normalizeProjectPath(raw);
  if (!normalized.ok) {
    report(scope, entry.value.pos, path, normalized.problem, normalized.fix);
    return undefined;
  }
  if (!normalized.path.endsWith(".py")) {
    report(
      scope,
      entry.value.pos,
      path,
      `must be a Python file ending in ".py", got "${normalized.path}"`,
      key === "inference"
        ? "give the path of the file that defines predict(sample, metadata)"
        : "give the path of the file that defines predict() or class PythonPredictor",
    );
    return undefined;
  }
  checks.push({
    resource: scope.resource,
    key: path,
    pos: entry.value.pos,
    path: normalized.path,
    want: "file",
  });
  return normalized.path;
}

/** Reads `env` of `parent` (`python.env`, `predictor.env`): names to strings; `{}` when absent. */
export function readEnv(scope: Scope, parent: YamlMap, prefix: string): Record<string, string> | undefined {
  const entry = get(parent, "env");
  if (entry === undefined) return {};
  const env = readMap(scope, entry, prefix, 'write "env:" with "NAME: value" lines below it');
  if (env === undefined) return undefined;
  const before = scope.issues.length;
  const result: [string, string][] = [];
  for (const { key, keyPos, value } of env.entries) {
    const path = `${prefix}.${key}`;
    if (!_ENV_NAME.test(key)) {
      report(
        scope,
        keyPos,
        path,
        "is not a valid environment variable name",
        "use letters, digits and underscores, not starting with a digit",
      );
    } else if (value.kind === "scalar" && typeof value.value === "string") {
      result.push([key, value.value]);
    } else {
      const fix = value.kind !== "scalar"
        ? "write a single value"
        : value.value === null
        ? `write ${key}: "" for an empty value`
        : `quote the value: ${key}: "${value.source ?? ""}"`;
      report(scope, value.pos, path, `must be a string, got ${describe(value)}`, fix);
    }
  }
  return scope.issues.length === before ? Object.fromEntries(result) : undefined;
}

/** Reads the map at `key` of `parent` as plain data (`metadata`, `config`); `{}` when absent. */
export function readPlainMap(
  scope: Scope,
  parent: YamlMap,
  key: string,
  path: string,
): Record<string, unknown> | undefined {
  const entry = get(parent, key);
  if (entry === undefined) return {};
  const value = readMap(scope, entry, path, `write "${key}:" with "key: value" lines below it`);
  return value === undefined ? undefined : toPlain(value) as Record<string, unknown>;
}

/** The tracker (`tracker:`, `monitoring:` in Cortex 0.17+); `undefined` when absent, `null` after an issue. */
export function readTracker(
  scope: Scope,
  map: YamlMap,
  key: "tracker" | "monitoring" = "tracker",
): ResolvedTracker | undefined | null {
  const entry = get(map, key);
  if (entry === undefined) return undefined;
  const tracker = readMap(scope, entry, key, `write "${key}:" with "model_type: classification"`);
  if (tracker === undefined) return null;
  const before = scope.issues.length;
  checkKeys(scope, tracker, key, _TRACKER_KEYS);
  const typeEntry = get(tracker, "model_type");
  let modelType: ResolvedTracker["modelType"] | undefined;
  if (typeEntry === undefined) {
    report(
      scope,
      keyPos(tracker, "model_type"),
      `${key}.model_type`,
      "is required",
      'add "model_type: classification" or "model_type: regression"',
    );
  } else {
    const value = readString(scope, typeEntry, `${key}.model_type`, '"classification"');
    if (value === "classification" || value === "regression") modelType = value;
    else if (value !== undefined) {
      const close = suggest(value, _MODEL_TYPES);
      report(
        scope,
        typeEntry.value.pos,
        `${key}.model_type`,
        `must be "classification" or "regression", got ${JSON.stringify(value)}`,
        close === undefined ? 'write "classification" or "regression"' : `write "${close}"`,
      );
    }
  }
  const keyEntry = get(tracker, "key");
  const tracked = keyEntry && readString(scope, keyEntry, `${key}.key`, '"label"');
  if (scope.issues.length > before || modelType === undefined) return null;
  return { key: tracked, modelType };
}

/** Reads `endpoint`: `"default"` when absent, `"invalid"` after an issue. */
export function readEndpoint(scope: Scope, map: YamlMap): ApiDraft["endpoint"] {
  const entry = get(map, "endpoint");
  if (entry === undefined) return "default";
  const raw = readString(scope, entry, "endpoint", '"/iris/classifier"');
  if (raw === undefined) return "invalid";
  const problem = endpointProblem(raw);
  if (problem !== undefined) {
    report(scope, entry.value.pos, "endpoint", problem, 'write a path such as "/iris/classifier"');
    return "invalid";
  }
  return { path: normalizeEndpoint(raw), pos: entry.value.pos };
}
